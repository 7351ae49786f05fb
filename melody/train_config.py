"""How to train (``TrainConfig``): read without TensorFlow or the training loop, by the model folder
(``bundle``, which keeps it in config.json) and by the command line (each field's ``help`` is its option)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from melody.distribute import PRECISIONS
from melody.errors import SettingError
from melody.settings import setting

MAX_BATCH_TOKENS = 1 << 20  # e.g. 256 x 4096 tokens a step: past that, memory runs out before a step ends


LOWEST_RATE = 1 / 8  # of the starting learning rate: with decay 0.5, three plateaus are cut before the fourth stops


@dataclass(frozen=True)
class TrainConfig:
    """How to train; defaults suit a laptop CPU. ``max_steps`` caps all steps (quick runs)."""

    epochs: int = setting(30, "Most epochs to train.")
    batch_size: int = setting(32, "Windows per batch.")
    seq_len: int = setting(128, "Tokens per training window.")
    learning_rate: float = setting(2e-3, "Adam learning rate.")
    val_split: float = setting(0.1, "Share of files held out for validation.")
    max_steps: int | None = setting(None, "Stop after this many steps in all (quick runs).")
    steps_per_epoch: int | None = setting(None, "Steps between validations and checkpoints (default: one pass "
                                                "over the training tokens); shorter on a large corpus.")
    patience: int = setting(3, "Epochs without improvement before stopping.")
    decay: float = setting(0.5, "At a plateau (patience epochs without improvement) multiply the learning rate "
                           f"by this and go on, down to {LOWEST_RATE} of the start; then stop (1: stop at the first).")
    clip_norm: float = 1.0
    max_transpose: int = 5
    random_seed: int = setting(0, "Seed for the split, batches and weights.")
    precision: str = setting("auto", "Arithmetic: auto is bfloat16 mixed precision where the CPU (avx512_bf16, "
                              "amx_bf16) or a GPU computes it natively, else float32. Saved weights are float32 "
                              "either way.", choices=PRECISIONS)

    def __post_init__(self):
        positive = ("epochs", "batch_size", "seq_len", "patience")
        for name in positive + ("max_steps", "steps_per_epoch"):
            value = getattr(self, name)
            if value is None and name not in positive:
                continue
            if not isinstance(value, int) or value < 1:
                raise SettingError(f"{name} must be a positive integer, got {value!r}")
        if self.batch_size * self.seq_len > MAX_BATCH_TOKENS:
            raise SettingError(f"batch_size x seq_len must be at most {MAX_BATCH_TOKENS:,} tokens, got "
                             f"{self.batch_size} x {self.seq_len}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise SettingError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 < self.decay <= 1.0:
            raise SettingError(f"decay must be in (0, 1], got {self.decay!r}")
        if not 0.0 < self.val_split < 1.0:
            raise SettingError(f"val_split must be between 0 and 1, got {self.val_split!r}")
        if not 0 <= self.max_transpose <= 12:
            raise SettingError(f"max_transpose must be in 0..12 semitones, got {self.max_transpose!r}")
        if self.precision not in PRECISIONS:
            raise SettingError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
