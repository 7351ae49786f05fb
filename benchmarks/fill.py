"""Filling bars 9-12 of held-out pieces: a plain forward fill against the best of K candidates.

    python benchmarks/fill.py [--model melody/default_model] [--wild DIR] [--pieces 12] [--candidates 8]

Pieces: multi-part files among the model's validation files (chorales, Palestrina,
madrigals, quartets), and with ``--wild DIR`` (MidiTok's test files, as the tests fetch
them) POP909 songs (melody, bridge, piano). Every part of bars 9-12 is written again
(``generate --from-bar 9 --bars 4``), the rest of the piece kept, once with one candidate
(a plain forward fill: it does not know what follows) and once keeping the likeliest of
``--candidates`` (the one after which the model finds the real bars 13-16 likeliest), both
with the same random seed. Measured against the real bars 9-12:

    following   nats per token of the real bars 13-16 after the fill (lower: leads into them better)
    in_key      share of the fill's pitched notes in the key of the piece's bars 1-8
    density     the fill's onsets per quarter over the real bars' (1.0: as busy)
    register    the fill's mean pitch minus the real bars' (semitones)
    seam        notes of the fill still sounding at bar 13 (the real bars 9-12: how many they hold over)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ensemble import pieces  # noqa: E402  (the held-out multi-part pieces and the wild songs)
from melody.bundle import read_manifest  # noqa: E402
from melody.generate import DEFAULT_MODEL, GenerateConfig, generate  # noqa: E402
from melody.keys import estimate_key, in_key_share  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402
from melody.midi_write import write_midi  # noqa: E402
from melody.score import Score  # noqa: E402

FIRST, BARS = 9, 4


def stretch(score: Score, start: int, end: int) -> list:
    """The pitched notes of ``score`` starting in [start, end)."""
    return [n for part in score.instruments if not part.is_drum for n in part.notes if start <= n.start < end]


def measure(music: Score, real: Score, lines: list[int]) -> dict:
    start, end = lines[FIRST - 1], lines[FIRST - 1 + BARS]
    made, truth = stretch(music, start, end), stretch(real, start, end)
    key = estimate_key(stretch(real, 0, start))
    quarters = (end - start) / music.ticks_per_quarter
    return {"in_key": in_key_share(made, key) if made else np.nan,
            "density": (len({n.start for n in made}) / quarters) / max(len({n.start for n in truth}) / quarters, 1e-9),
            "register": np.mean([n.pitch for n in made]) - np.mean([n.pitch for n in truth]) if made else np.nan,
            "seam": sum(n.start < end < n.end for n in made)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--wild", type=Path)
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--candidates", type=int, default=8)
    arguments = parser.parse_args()
    manifest = read_manifest(arguments.model)
    rows = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as scratch:
        for number, (group, path) in enumerate(pieces(arguments.model, arguments.wild, arguments.pieces)):
            real = read_midi(path)
            lines = real.bar_lines(until=real.end_tick)
            if len(lines) < FIRST + 2 * BARS:
                continue
            seed = Path(scratch) / f"{number}.mid"
            write_midi(real, seed, force=True)
            rows[group][("seam", "real")].append(measure(real, real, lines)["seam"])
            for side, candidates in (("plain", 1), ("best", arguments.candidates)):
                config = GenerateConfig(bars=BARS, from_bar=FIRST, candidates=candidates, random_seed=number)
                made = generate(manifest, seed, config=config, write=False)
                rows[group][("following", side)].append(-made.summary["following_log_likelihood"][0])
                for name, value in measure(made.scores[0], real, lines).items():
                    rows[group][(name, side)].append(value)
            print(f"{group} {path.name}: following {rows[group][('following', 'plain')][-1]:.3f} plain, "
                  f"{rows[group][('following', 'best')][-1]:.3f} best of {arguments.candidates}", flush=True)
    print(f"\nmodel {arguments.model}: bars {FIRST}-{FIRST + BARS - 1} written again, every part")
    for group, table in rows.items():
        count = len(table[("following", "plain")])
        cells = [f"{name} {np.nanmean(table[(name, 'plain')]):.2f} plain, {np.nanmean(table[(name, 'best')]):.2f} "
                 f"best" for name in ("following", "in_key", "density", "register", "seam")]
        print(f"{group} ({count} pieces): " + "; ".join(cells) + f"; real seam {np.mean(table[('seam', 'real')]):.2f}")


if __name__ == "__main__":
    main()
