"""Does the band play together? New bars against the real next bars of real multi-part music.

    python benchmarks/ensemble.py [--model melody/default_model] [--wild DIR] [--pieces 12] [--bars 8]
                                  [--accompaniment band|loop|none] [--ending | --keep-lead | --whole]
                                  [--draws 1] [--every-song]

Seeds: multi-part pieces the model did not train on (its validation files: chorales,
Palestrina, madrigals, quartets), and with ``--wild DIR`` (MidiTok's test files, as the
tests fetch them) POP909 songs (melody, bridge, piano) and multi-track pop songs. Each
piece is continued after its middle bar (``generate --after``: a chorale of 14 bars after 7) for as many
bars as it really has there, up to ``--bars`` (random seed = its number; with ``--draws N``, N
continuations, random seeds N x its number + 0..N-1, each measured), and the new bars
are measured against the piece's real bars there (with ``--ending``: cut before its last
bars, so that the real side is the piece's own close, and the model asked to close) with
``melody.ensemble`` and ``melody.metrics.continuation_fit``:

    clash       clashing share of the time two parts sound together (2nds, 7ths, tritones)
    on_others   the lead's notes on a pitch class another part sounds
    copied      the other parts' bars that copy one of their seed bars
    crossings   share of the time two parts sound together that the lower (in the file's order) sounds above
    silent      share of the pitched parts' bars in which the part sounds nothing (a voice resting a whole bar)
    closes      the last bar's downbeat on the tonic triad over the tonic (see --ending), the key
                estimated from all the seed's notes (Krumhansl-Schmuckler)
    closes in its key   the same in the key the file declares, where its scale holds 70% of the notes
                (``Tokenizer.trusted_key``: what melody reads), else that estimate. The estimate
                takes many minor chorales for their relative major (bwv10.7 in G minor for B-flat)
    bars, in_key, density   as musical_fit.py

With ``--keep-lead`` the bars after the cut are written again under the piece's own lead instead
(``generate --keep LEAD --from-bar --bars`` on the whole piece: every other part rewritten there, the
lead and the bars before and after kept), so that the other parts are judged against the real ones
under the same melody: their clashes with it and each other, and how often they carry the lead's
pitch class (``on_others``); the pop songs are then all of the multi-track ones.

With ``--whole`` each piece is continued after its last bar instead, as a user continuing the
whole file does (a song's outro, where parts drop out); only the generated side is measured.

Printed per group (the corpus folder, or "pop"): the mean of each, generated against real.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody.bundle import corpus_files, read_manifest  # noqa: E402
from melody.ensemble import clash_share, copied_bars, crossings, ends_on_tonic, on_others, silent_bars  # noqa: E402
from melody.errors import SettingError  # noqa: E402
from melody.generate import DEFAULT_MODEL, GenerateConfig, generate  # noqa: E402
from melody.keys import estimate_key, key_name  # noqa: E402
from melody.metrics import continuation_fit  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402
from melody.midi_write import write_midi  # noqa: E402
from melody.score import Score, cut, lead_index  # noqa: E402

WILD = ["MIDIs_one_track/POP909_008.mid", "MIDIs_one_track/POP909_010.mid", "MIDIs_one_track/POP909_022.mid",
        "MIDIs_one_track/POP909_191.mid", "MIDIs_multitrack/Aicha.mid", "MIDIs_multitrack/Mr. Blue Sky.mid",
        "MIDIs_multitrack/In Too Deep.mid", "MIDIs_multitrack/What a Fool Believes.mid"]


def measure(music: Score, seed_end: int, end: int, key: str, declared: str) -> dict:
    """The ensemble numbers of ``music`` over [seed_end, end); ``key`` estimated, ``declared`` the file's."""
    lead = lead_index(cut(music, seed_end))
    others = [k for k, part in enumerate(music.instruments) if k != lead and not part.is_drum and part.notes]
    copies = [copied_bars(music, k, seed_end, end) for k in others]
    return {"clash": clash_share(music, seed_end, end),
            "on_others": math.nan if lead is None else on_others(music, lead, seed_end, end),
            "copied": np.nanmean(copies) if any(not math.isnan(c) for c in copies) else math.nan,
            "crossings": crossings(music, seed_end, end),
            "silent": silent_bars(music, seed_end, end),
            "closes": ends_on_tonic(music, key, seed_end, end),
            "closes in its key": ends_on_tonic(music, declared, seed_end, end)}


def pieces(model: Path, wild: Path | None, count: int, every_band: bool = False) -> list[tuple[str, Path]]:
    """(group, path) of the seeds: held-out multi-part files of each corpus folder, then the wild songs (with
    ``every_band``, every multi-track one instead: a song of one track has nothing to rewrite under its lead)."""
    chosen, per_group = [], defaultdict(int)
    for name in corpus_files(model)[1]:
        path = ROOT / name
        if path.is_file() and per_group[path.parent.name] < count and len(read_midi(path).instruments) > 1:
            per_group[path.parent.name] += 1
            chosen.append((path.parent.name, path))
    if wild and every_band:
        chosen += [("pop", path) for path in sorted((wild / "MIDIs_multitrack").glob("*.mid"))]
    elif wild:
        chosen += [("pop", wild / name) for name in WILD if (wild / name).is_file()]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--wild", type=Path)
    parser.add_argument("--pieces", type=int, default=12, help="seeds per corpus folder")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--accompaniment", default="band", choices=("band", "loop", "none"))
    parser.add_argument("--ending", action="store_true")
    parser.add_argument("--keep-lead", action="store_true", help="rewrite the other parts under the real lead")
    parser.add_argument("--whole", action="store_true",
                        help="continue each piece after its last bar, as from a whole file (no real bars to compare)")
    parser.add_argument("--clash-strength", type=float, default=GenerateConfig().clash_strength,
                        help="nats off a note per clash with a sounding note of another part")
    parser.add_argument("--draws", type=int, default=1,
                        help="continuations of each piece (random seeds number x draws + 0..draws-1)")
    parser.add_argument("--every-song", action="store_true",
                        help="pop: every multi-track song of --wild (12) instead of 4 of them and 4 POP909 pieces")
    arguments = parser.parse_args()
    manifest = read_manifest(arguments.model)
    rows = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as scratch:
        chosen = pieces(arguments.model, arguments.wild, arguments.pieces, arguments.keep_lead or arguments.every_song)
        for number, (group, path) in enumerate(chosen):
            seed_path = Path(scratch) / f"{number}.mid"
            write_midi(read_midi(path), seed_path, force=True)
            real = read_midi(seed_path)  # in the ticks melody writes (480 a quarter), as the continuations come back
            lines = [line for line in real.bar_lines(until=real.end_tick) if line < real.end_tick] + [real.end_tick]
            middle = len(lines) // 2
            bars = min(arguments.bars, len(lines) - 1 - middle)
            if arguments.ending:  # the piece's real last bars against an ending asked for
                middle = len(lines) - 1 - bars
            if arguments.whole:  # after the last bar: no real bars to compare with
                middle, bars = len(lines) - 1, arguments.bars
            if middle < 4 or bars < 4:
                continue
            seed_end, end = lines[middle], lines[min(middle + bars, len(lines) - 1)]
            seed = cut(real, seed_end)
            around = {"keep": (str(lead_index(seed) + 1),), "from_bar": middle + 1} if arguments.keep_lead else \
                {} if arguments.whole else {"after": middle}
            key = key_name(*estimate_key([n for p in seed.instruments if not p.is_drum for n in p.notes]))
            trusted = manifest.tokenizer.trusted_key(seed)
            declared = trusted.key if trusted else key
            for draw in range(arguments.draws):
                config = GenerateConfig(bars=bars, random_seed=number * arguments.draws + draw,
                                        accompaniment=arguments.accompaniment, clash_strength=arguments.clash_strength,
                                        ending=arguments.ending, **around)
                try:
                    made = generate(manifest, seed_path, config=config, write=False).scores[0]
                except SettingError as error:  # e.g. a lead alone: nothing to write under it
                    print(f"{group} {path.name}: skipped ({error})")
                    break
                new_end = max(line for line in made.bar_lines(until=made.end_tick + 1) if line <= made.end_tick) \
                    if made.end_tick > seed_end else seed_end
                sides = (("generated", made, end if arguments.keep_lead else max(new_end, end)), ("real", real, end))
                for side, music, stop in sides[:1 if arguments.whole or draw else 2]:  # the real bars once
                    for name, value in measure(music, seed_end, stop, key, declared).items():
                        rows[group][(name, side)].append(value)
                if not arguments.keep_lead:  # a continuation: as musical_fit.py measures it
                    fit = continuation_fit(seed, made, bars)
                    rows[group][("bars exact", "generated")].append(float(fit["bars_exact"]))
                    rows[group][("in key", "generated")].append(fit["in_key"])
                print(f"{group} {path.name}: " + ", ".join(f"{name} {values[-1]:.2f}" for (name, side), values
                                                           in rows[group].items() if side == "generated"), flush=True)
    print(f"\nmodel {arguments.model}, up to {arguments.bars} bars from the middle of each piece, accompaniment "
          f"{arguments.accompaniment}{', --ending' if arguments.ending else ''}"
          f"{', the other parts rewritten under the real lead' if arguments.keep_lead else ''}"
          f"{', after the whole piece' if arguments.whole else ''}, clash strength "
          f"{arguments.clash_strength}")
    for group, table in rows.items():
        count = len(next(iter(table.values())))
        cells = []
        for name in ("clash", "on_others", "copied", "crossings", "silent", "closes", "closes in its key",
                     "bars exact", "in key"):
            made, real = table.get((name, "generated"), []), table.get((name, "real"), [])
            cell = f"{name} {np.nanmean(made):.2f}" if made else ""
            cells.append(cell + (f" vs {np.nanmean(real):.2f} real" if real else ""))
        print(f"{group} ({count} pieces): " + "; ".join(cells))


if __name__ == "__main__":
    main()
