"""Ingestion: ``melody prepare`` (1 and 2 workers) against the loop a user would otherwise write,
``pretty_midi.PrettyMIDI`` per file plus tokenization, over the same files in one process.

    python benchmarks/ingestion.py [--files 2000]

Prints files/s for each and the ratio, and checks that the plain loop's tokens are
identical to the cache's, file by file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pretty_midi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from melody.corpus import TokenCache, prepare  # noqa: E402
from melody.score import Instrument, Note, Score, Tempo, TimeSignature  # noqa: E402
from melody.tokenizer import Tokenizer  # noqa: E402


def score_from_pretty_midi(midi: pretty_midi.PrettyMIDI) -> Score:
    """What a user would write: pretty_midi's seconds turned back into ticks for the tokenizer."""
    tick = midi.time_to_tick
    instruments = [Instrument(i.program, i.is_drum, i.name, tuple(sorted(
        Note(tick(n.start), n.pitch, max(tick(n.end) - tick(n.start), 1), n.velocity) for n in i.notes)))
        for i in midi.instruments]
    times, bpms = midi.get_tempo_changes()
    tempos = [Tempo(tick(t), round(60_000_000 / bpm)) for t, bpm in zip(times, bpms)]
    signatures = [TimeSignature(tick(s.time), s.numerator, s.denominator) for s in midi.time_signature_changes]
    return Score(midi.resolution, tuple(instruments), tuple(tempos), tuple(signatures))


def plain_loop(files: list[Path], tokenizer: Tokenizer) -> list[np.ndarray]:
    return [tokenizer.encode(score_from_pretty_midi(pretty_midi.PrettyMIDI(str(path)))) for path in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="folk songs and chorales to read")
    args = parser.parse_args()
    files = sorted((ROOT / "corpora" / "chorales").glob("*.mid"))[:args.files // 5]
    files += sorted((ROOT / "corpora" / "folk").glob("*.mid"))[:args.files - len(files)]
    for path in files:
        path.read_bytes()  # warm the page cache for every side alike
    tokenizer = Tokenizer()
    rows, caches = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        loop_tokens = plain_loop(files, tokenizer)
        loop_seconds = time.perf_counter() - started
        for workers in (1, 2):
            started = time.perf_counter()
            prepare(files, Path(scratch) / f"cache-{workers}", workers=workers)
            seconds = time.perf_counter() - started
            caches[workers] = TokenCache(Path(scratch) / f"cache-{workers}")
            rows.append((f"melody prepare, {workers} worker{'s' * (workers > 1)}", seconds))
        cache = caches[2]
        identical = sum(np.array_equal(cache.piece(i), tokens) for i, tokens in enumerate(loop_tokens))
        same_caches = np.array_equal(np.asarray(caches[1].tokens), np.asarray(caches[2].tokens))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"pretty_midi {pretty_midi.__version__}; {len(files)} files "
          f"({sum(p.stat().st_size for p in files) / 1e6:.1f} MB)")
    print(f"{'method':34} {'files/s':>9} {'x plain loop':>13}")
    print(f"{'pretty_midi loop + tokenize':34} {len(files) / loop_seconds:>9.0f} {1.0:>13.2f}")
    for name, seconds in rows:
        print(f"{name:34} {len(files) / seconds:>9.0f} {loop_seconds / seconds:>13.2f}")
    print(f"tokens identical to the plain loop: {identical}/{len(files)} files; "
          f"1 and 2 workers give the same cache: {same_caches}")


if __name__ == "__main__":
    main()
