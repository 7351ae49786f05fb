"""bfloat16 training against float32 with the real command: speed, and the validation loss at the same step.

    python benchmarks/bfloat16.py [--corpus corpora/chorales] [--epochs 3] [--steps 100] [--units 256]

``melody train`` (``melody.train.train``) runs twice on the same prepared corpus with the default model's
network (2 x 256, embedding 128, lookback and ahead inputs; ``--units 512``: 2 x 512, embedding 256, the
size issue 25's target was set at) and training settings (16 windows of 256 tokens, Adam at
2e-3, the same random seed, so the same split, batches and initial weights): once ``--precision float32``,
once ``--precision bfloat16`` (Keras's ``mixed_bfloat16`` policy: bfloat16 products, float32 weights).
Prints, for each, tokens/s (the median gap between finished steps, the first two left out) and the
validation loss after every epoch of ``--steps`` steps; then the speed ratio and how far bfloat16's
validation loss lies from float32's at each epoch, in percent.

Where the CPU has no bfloat16 units (no ``avx512_bf16`` or ``amx_bf16``) bfloat16 is emulated and slower:
the header line says which this machine is, and ``melody train --precision auto`` picks accordingly.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from melody.corpus import prepare  # noqa: E402
from melody.distribute import native_bfloat16  # noqa: E402
from melody.model import ModelConfig  # noqa: E402
from melody.tokenizer import TokenizerConfig  # noqa: E402
from melody.train import Report, TrainConfig, train  # noqa: E402

BATCH, LENGTH = 16, 256  # the shipped model's


class Progress(Report):
    """When each step finished and each epoch's validation loss, from melody's own progress report."""

    def __init__(self):
        self.times, self.val_losses = [], []

    def step(self, step, loss, tokens_per_second):
        self.times.append(time.perf_counter())

    def epoch(self, entry, improved):
        self.val_losses.append(entry["val_loss"])


def run(cache: Path, out: Path, network: ModelConfig, precision: str, epochs: int, steps: int):
    """(tokens/s, validation loss after each epoch) of ``melody train`` in ``precision``."""
    progress = Progress()
    train(cache, out, network, TrainConfig(epochs=epochs, steps_per_epoch=steps, batch_size=BATCH,
                                                 seq_len=LENGTH, precision=precision, patience=epochs),
          report=progress)
    gaps = np.diff(progress.times[2:])
    return BATCH * LENGTH / float(np.median(gaps)), progress.val_losses


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "chorales")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--units", type=int, default=256, help="units per layer (embedding: half as wide)")
    args = parser.parse_args()
    network = ModelConfig(units=args.units, embedding=args.units // 2)
    flags = " ".join(flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
                     if flag in Path("/proc/cpuinfo").read_text(errors="replace").split())
    print(f"# {platform.machine()}, {os.cpu_count()} cores ({flags}); native bfloat16: "
          f"{native_bfloat16() or 'none (emulated)'}; 2 x {args.units}; {args.corpus.name}, {args.epochs} epochs of {args.steps} "
          f"steps of {BATCH} x {LENGTH}; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "cache"
        prepare([args.corpus], cache, TokenizerConfig(), workers=2)
        results = {precision: run(cache, Path(folder) / precision, network, precision, args.epochs, args.steps)
                   for precision in ("float32", "bfloat16")}
    (fast32, losses32), (fast16, losses16) = results["float32"], results["bfloat16"]
    for precision, (speed, losses) in results.items():
        print(f"{precision:>9}: {speed:8,.0f} tokens/s; validation loss by epoch: "
              + ", ".join(f"{loss:.4f}" for loss in losses))
    print(f"bfloat16 / float32: {fast16 / fast32:.2f}x the tokens/s; validation loss off float32's by "
          + ", ".join(f"{100 * (b - a) / a:+.2f}%" for a, b in zip(losses32, losses16)))


if __name__ == "__main__":
    main()
