"""``melody generate``: continue a seed (or start from scratch) and write MIDI files.

    read the seed -> read the model's manifest (no TensorFlow yet: a wrong folder is
    reported at once) -> the primer (``continuation.make_primer``) -> load the network
    -> sample (``sampler.Sampler``) -> arrange the new music after the seed
    (``continuation.arrange``) -> write the files, all or none.

From scratch, the primer is the opening (header and first bar line) of a piece the
model trained on, picked by the random seed: the key, density and band of music it
knows.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.bundle import Bundle, Manifest, load_bundle, load_corpus, read_manifest
from melody.continuation import Primer, arrange, make_primer, primer_from_opening
from melody.errors import MelodyError
from melody.files import atomic_write, check_writable
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes
from melody.sampler import Sampler, SamplingConfig
from melody.score import Score

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
TOKENS_PER_BAR_CAP = 256
MAX_BARS = 256  # at most 256 tokens a bar: 65,536 tokens in one run


@dataclass
class Generation:
    """What ``generate`` made: the scores, the files written (if any) and a summary."""

    scores: list[Score]
    files: list[Path]
    summary: dict
    continuation_starts: list[int | None]  # tick of each score's first new note (None: no seed before it)

    def pretty_midi(self) -> list:
        """The scores as ``pretty_midi.PrettyMIDI`` objects."""
        from melody.midi_write import to_pretty_midi

        return [to_pretty_midi(score) for score in self.scores]


def output_paths(out: str | os.PathLike | None, seed: str | os.PathLike | None, num_samples: int) -> list[Path]:
    """``out`` (default: '<seed>-continued.mid' or 'melody.mid'); with several samples out-1.mid, out-2.mid ..."""
    out = Path(out) if out else Path(f"{Path(seed).stem}-continued.mid" if seed else "melody.mid")
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{number}{out.suffix or '.mid'}") for number in range(1, num_samples + 1)]


def generate(model: str | os.PathLike | Bundle | None = None, seed: str | os.PathLike | None = None,
             out: str | os.PathLike | None = None, bars: int = 8, sampling: SamplingConfig = SamplingConfig(),
             num_samples: int = 1, random_seed: int | None = None, primer_bars: int | None = None,
             continuation_only: bool = False, force: bool = False, write: bool = True) -> Generation:
    """Continue ``seed`` (a MIDI file; None starts from scratch) with ``num_samples`` samples of ``bars`` bars.

    Writes the files unless ``write`` is False and returns them with their scores and a
    summary (``files``, ``bars``, ``notes``, ``seconds``, ``tokens``, ``tokens_per_second``, ``random_seed``).
    Existing files are never replaced unless ``force``; nothing is written when any would be.
    """
    for name, value, top in (("bars", bars, MAX_BARS), ("num_samples", num_samples, 256)):
        if not isinstance(value, int) or not 1 <= value <= top:
            raise MelodyError(f"{name.replace('_', '-')} must be in 1..{top}, got {value}")
    if primer_bars is not None and primer_bars < 1:
        raise MelodyError(f"primer-bars must be at least 1, got {primer_bars}")
    paths = output_paths(out, seed, num_samples) if write else []
    for path in paths:
        check_writable(path, force)
    seed_score = read_midi(seed) if seed else None
    manifest = model if isinstance(model, Manifest) else read_manifest(model or DEFAULT_MODEL)
    tokenizer = manifest.tokenizer
    random_seed = secrets.randbelow(2**31) if random_seed is None else random_seed
    primer = make_primer(seed_score, tokenizer, primer_bars, set(manifest.programs)) if seed_score is not None \
        else primer_from_opening(_opening(manifest, random_seed), tokenizer)

    bundle = model if isinstance(model, Bundle) else load_bundle(manifest.path)  # TensorFlow loads here
    sampler, batch = _sampler(bundle), np.tile(primer.tokens, (num_samples, 1))
    allowed = tokenizer.sampling_mask(len(tokenizer.tracks(primer.tokens)))
    max_tokens = TOKENS_PER_BAR_CAP * bars
    sampler.sample(batch, allowed, max_tokens, 0, 0, sampling)  # compile (stops at the first bar line)
    started = time.perf_counter()                               # tokens/s: sampling alone
    generated = sampler.sample(batch, allowed, max_tokens, bars, random_seed, sampling)
    seconds = time.perf_counter() - started

    scores = [arrange(seed_score, primer, row, tokenizer, bars, continuation_only) for row in generated]
    old_notes = 0 if seed_score is None or continuation_only else len(seed_score.notes)
    for path, score in zip(paths, scores):
        atomic_write(path, midi_bytes(score), force=force)
    tokens = int(sum(len(row) for row in generated))
    summary = {"files": [str(path) for path in paths], "samples": num_samples, "bars": bars,
               "notes": sum(len(score.notes) - old_notes for score in scores),
               "seconds": round(max(score.duration_seconds for score in scores), 2), "tokens": tokens,
               "tokens_per_second": round(tokens / max(seconds, 1e-9), 1), "random_seed": random_seed,
               "model": str(manifest.path), "seed": str(seed) if seed else None}
    starts = [None if seed_score is None or continuation_only else _first_new_tick(score, seed_score)
              for score in scores]
    return Generation(scores, paths, summary, starts)


def _opening(manifest: Manifest, random_seed: int) -> np.ndarray:
    """The opening of a training piece picked by ``random_seed``."""
    pieces = load_corpus(manifest.path)[0]
    if not pieces:
        raise MelodyError(f"{manifest.path}: its corpus holds no training pieces to start from")
    piece = pieces[np.random.default_rng(random_seed).integers(len(pieces))]
    return manifest.tokenizer.opening(piece)


def _first_new_tick(score: Score, seed: Score) -> int | None:
    old = {(note.start, note.pitch) for note in seed.notes}
    return min((note.start for note in score.notes if (note.start, note.pitch) not in old), default=None)


_SAMPLERS: dict[int, tuple[object, Sampler]] = {}


def _sampler(bundle: Bundle) -> Sampler:
    """One compiled sampler per model object, so repeated calls do not trace again
    (the model is held with it, so its id cannot be reused by another)."""
    from melody.model import LSTMStepper

    key = id(bundle.model)
    if key not in _SAMPLERS:
        is_bar = bundle.tokenizer.is_bar(np.arange(len(bundle.tokenizer)))
        _SAMPLERS[key] = (bundle.model, Sampler(LSTMStepper(bundle.model), is_bar))
    return _SAMPLERS[key][1]
