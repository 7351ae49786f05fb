"""``melody generate``: continue a seed (or start from scratch) and write MIDI files.

    check the request -> read the seed -> read the model's manifest (a wrong folder is
    reported at once) -> the primer (``continuation.make_primer``) -> load the network's
    weights (``bundle.load_weights``; NumPy, no TensorFlow: ``numpy_lstm``) -> sample
    exactly ``bars`` bars in the seed's meter (``sampler.Sampler``) -> arrange the new
    music after the seed, the band playing on (``continuation.arrange``) -> write the
    files, all or none.

From scratch, the primer is the opening (header and first bar line) of a piece the
model trained on, picked by the random seed: the key, density and band of music it
knows.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.bundle import Manifest, load_corpus, load_weights, read_manifest
from melody.continuation import ACCOMPANIMENTS, arrange, make_primer, primer_from_opening
from melody.errors import MelodyError
from melody.files import atomic_write_all, check_writable
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes
from melody.numpy_lstm import NumpyLSTM
from melody.sampler import Sampler, SamplingConfig
from melody.keys import parse_key
from melody.score import Score

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
TOKENS_PER_BAR_CAP = 256
MAX_BARS = 256  # at most 256 tokens a bar: 65,536 tokens in one run
RETRIES = 3  # draws for a sample that came out without a note
KEY_STRENGTH = 1.5  # nats off an out-of-key note: 4.5x less likely (measured in BENCHMARKS.md, "Musical fit")


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


def generate(model: str | os.PathLike | Manifest | None = None, seed: str | os.PathLike | None = None,
             out: str | os.PathLike | None = None, bars: int = 8, sampling: SamplingConfig = SamplingConfig(),
             num_samples: int = 1, random_seed: int | None = None, primer_bars: int | None = None,
             continuation_only: bool = False, force: bool = False, write: bool = True, key: str | None = None,
             time_signature: tuple[int, int] | None = None, density: float | None = None,
             accompaniment: str = "loop", key_strength: float = KEY_STRENGTH, network=None) -> Generation:
    """Continue ``seed`` (a MIDI file; None starts from scratch) with ``num_samples`` samples of ``bars`` bars.

    Without a seed, ``key`` (a key name such as 'Eb' or 'F#m') and ``time_signature`` ((4, 4))
    choose what the music starts in (default: those of the training piece it opens like);
    ``density`` (note onsets per quarter note) asks for busier or calmer music (default: as the
    seed's last bars). ``key_strength`` (nats, >= 0) makes notes outside the key (the seed's, or
    ``key``) that much less likely on pitched tracks: 0 leaves the model alone, the default
    keeps continuations in key while allowing chromatic notes. ``accompaniment``: 'loop' keeps the
    seed's tracks that the model leaves silent playing their last bars, 'none' lets them stop.
    Writes the files unless ``write`` is False and returns them with their scores and a summary
    (``files``, ``bars``, ``notes``, ``accompaniment_notes``, ``silent_samples``, ``seconds`` of
    music, ``tokens``, ``tokens_per_second`` of sampling, ``wall_seconds`` of each stage: read,
    load, prime, sample, write; ``random_seed``). A sample that comes out without a note is
    drawn again (``RETRIES`` times, with the random seed plus 1, 2, 3), and counted in
    ``silent_samples`` if it stays silent. ``network``: a model with ``prime`` and ``step`` (``melody.sampler``)
    to sample from instead of the folder's network (benchmarks compare other networks this way).
    Existing files are never replaced unless ``force``; nothing is written when any would be.
    """
    _check_request(bars, num_samples, primer_bars, seed, key, time_signature, density, accompaniment, key_strength)
    clock = _Clock()
    paths = output_paths(out, seed, num_samples) if write else []
    for path in paths:
        check_writable(path, force)
    seed_score = read_midi(seed) if seed else None
    manifest = model if isinstance(model, Manifest) else read_manifest(model or DEFAULT_MODEL)
    tokenizer = manifest.tokenizer
    random_seed = secrets.randbelow(2**31) if random_seed is None else random_seed
    if seed_score is not None:
        primer = make_primer(seed_score, tokenizer, primer_bars, set(manifest.programs), density)
    else:
        opening = tokenizer.opening(_opening(manifest, random_seed), key, density, time_signature)
        primer = primer_from_opening(opening, tokenizer)
    clock.lap("read")

    sampler = _sampler(manifest) if network is None else Sampler(network, tokenizer.token_table())
    clock.lap("load")
    primed = sampler.prime(primer.tokens)
    clock.lap("prime")
    tracks = tokenizer.tracks(primer.tokens)
    allowed = tokenizer.sampling_mask(len(tracks))
    constraints = {"penalty": key_strength * tokenizer.out_of_key(primer.tokens),
                   "pitched": [not is_drum for is_drum, _ in tracks]}
    max_tokens = TOKENS_PER_BAR_CAP * bars
    generated, complete = sampler.sample(primed, num_samples, allowed, max_tokens, bars, random_seed, sampling,
                                         **constraints)
    for attempt in range(1, RETRIES + 1):  # a sample without a single note is drawn again (reproducibly)
        silent = [row for row, tokens in enumerate(generated) if not tokenizer.is_note(tokens).any()]
        if not silent:
            break
        again, done = sampler.sample(primed, len(silent), allowed, max_tokens, bars, random_seed + attempt,
                                     sampling, **constraints)
        for row, tokens, finished in zip(silent, again, done):
            generated[row], complete[row] = tokens, finished
    sampled = clock.lap("sample")

    arranged = [arrange(seed_score, primer, row, tokenizer, bars, continuation_only, accompaniment)
                for row in generated]
    scores = [score for score, _ in arranged]
    old_notes = 0 if seed_score is None or continuation_only else len(seed_score.notes)
    atomic_write_all({path: midi_bytes(score) for path, score in zip(paths, scores)}, force=force)
    clock.lap("write")
    tokens = int(sum(len(row) for row in generated))
    summary = {"files": [str(path) for path in paths], "samples": num_samples, "bars": bars,
               "bars_short": [int(bars - 1 - tokenizer.is_bar(row).sum()) for row, done in zip(generated, complete)
                              if not done],
               "notes": sum(len(score.notes) - old_notes for score in scores),
               "silent_samples": sum(not tokenizer.is_note(tokens).any() for tokens in generated),
               "accompaniment_notes": sum(looped for _, looped in arranged),
               "seconds": round(max(score.duration_seconds for score in scores), 2), "tokens": tokens,
               "tokens_per_second": round(tokens / max(sampled, 1e-9), 1), "wall_seconds": clock.laps,
               "random_seed": random_seed, "model": str(manifest.path), "seed": str(seed) if seed else None}
    starts = [None if seed_score is None or continuation_only else _first_new_tick(score, seed_score)
              for score in scores]
    return Generation(scores, paths, summary, starts)


def _check_request(bars, num_samples, primer_bars, seed, key, time_signature, density, accompaniment,
                   key_strength) -> None:
    """MelodyError for a request that cannot be met, before anything is read."""
    for name, value, top in (("bars", bars, MAX_BARS), ("num_samples", num_samples, 256)):
        if not isinstance(value, int) or not 1 <= value <= top:
            raise MelodyError(f"{name.replace('_', '-')} must be in 1..{top}, got {value}")
    if primer_bars is not None and primer_bars < 1:
        raise MelodyError(f"primer-bars must be at least 1, got {primer_bars}")
    if seed is not None and (key is not None or time_signature is not None):
        raise MelodyError("key and time signature come from the seed; give them only without one")
    if key is not None:
        try:
            parse_key(key)
        except ValueError as error:
            raise MelodyError(str(error)) from None
    if density is not None and not (0 < density <= 16):
        raise MelodyError(f"density must be above 0 and at most 16 note onsets per quarter note, got {density}")
    if accompaniment not in ACCOMPANIMENTS:
        raise MelodyError(f"accompaniment must be one of {', '.join(ACCOMPANIMENTS)}, got {accompaniment!r}")
    if not (0 <= key_strength <= 20):
        raise MelodyError(f"key strength must be in 0..20 nats, got {key_strength}")


def _opening(manifest: Manifest, random_seed: int) -> np.ndarray:
    """The opening of a training piece picked by ``random_seed``."""
    pieces = load_corpus(manifest.path, len(manifest.tokenizer))[0]
    if not pieces:
        raise MelodyError(f"{manifest.path}: its corpus holds no training pieces to start from")
    piece = pieces[np.random.default_rng(random_seed).integers(len(pieces))]
    return manifest.tokenizer.opening(piece)


def _first_new_tick(score: Score, seed: Score) -> int | None:
    old = {(note.start, note.pitch) for note in seed.notes}
    return min((note.start for note in score.notes if (note.start, note.pitch) not in old), default=None)


class _Clock:
    """Wall time of each stage of a generation, in seconds (``laps``)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        self.laps[stage] = round(seconds, 3)
        return seconds


@functools.lru_cache(maxsize=4)
def _network(path: Path, stamp: tuple) -> NumpyLSTM:
    """The network of a model folder, read once per version of its model.keras (``stamp``)."""
    return numpy_network(read_manifest(path))


def numpy_network(manifest: Manifest) -> NumpyLSTM:
    """The network of a model folder, in NumPy (``numpy_lstm``)."""
    return NumpyLSTM(manifest.network, load_weights(manifest), manifest.tokenizer.bar_tokens())


def _sampler(manifest: Manifest) -> Sampler:
    stamp = manifest.network_stamp()
    network = _network(manifest.path, stamp) if stamp else numpy_network(manifest)
    return Sampler(network, manifest.tokenizer.token_table())
