"""Form: do continuations bring bars back as the tunes they continue do?

    python benchmarks/form.py [--model DIR ...] [--bars 16] [--seed-bars 8] [--tunes 120]

Seeds: a model's held-out folk tunes (files it never trained on) of at least
seed-bars + bars bars, cut after their first ``--seed-bars`` bars. Each is continued
for ``--bars`` bars at temperature 1 (random seed = its number). The reference is the
same tunes' own next bars (bars 9-24 by default): what the tune did next. With
``--after-whole-tune`` each whole tune is continued past its end (what ``melody generate
--seed tune.mid`` does), against the same reference.

Reported per model, with ``melody.evaluate.compare_music`` (the yardstick of
``melody evaluate`` and ``benchmarks/quality.py``): the distinct-bar ratio (distinct
bars / non-empty bars; 1: no bar comes back) of the continuations and of the
reference, mean +- sd; whether the continuations' mean is within one reference sd;
the share of continuations inside the reference's 5th-95th percentile; and the
longest passage of any continuation found verbatim in the training corpus
(complete bars), over all tunes and over the tunes whose own next bars are not in the
training corpus (the folk collections hold some tunes twice, under other names, and a
held-out twin can be continued from memory of the other). Bars of issue 14: within one
sd, at least 80% inside, at most 4 bars copied.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody.bundle import corpus_files, read_manifest  # noqa: E402
from melody.evaluate import compare_music  # noqa: E402
from melody.generate import DEFAULT_MODEL, GenerateConfig, generate  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402
from melody.midi_write import write_midi  # noqa: E402
from melody.score import Score  # noqa: E402

COPY_BAR = 4  # complete bars copied from the training corpus, at most


def bars_between(score: Score, first: int, last: int) -> Score:
    """The notes starting in bars ``first``..``last - 1`` (0-based bar lines), cut at bar ``last``'s line, where it
    now ends."""
    lines = score.bar_lines()
    start, end = lines[first], lines[last]
    parts = [dataclasses.replace(part, notes=[dataclasses.replace(note, duration=min(note.duration, end - note.start))
                                              for note in part.notes if start <= note.start < end])
             for part in score.instruments]
    return score.replace(instruments=parts, end=end)


def tunes(model: Path, seed_bars: int, bars: int, count: int) -> list[tuple[Path, Score]]:
    """Held-out folk tunes with at least ``seed_bars + bars`` bars (and a bar line after them)."""
    chosen = []
    for name in corpus_files(model)[1]:
        path = ROOT / name
        if path.parent.name != "folk" or not path.is_file():
            continue
        score = read_midi(path)
        lines = score.bar_lines()
        if len(lines) > seed_bars + bars and score.notes[-1].start >= lines[seed_bars + bars - 1]:
            chosen.append((path, score))
    return chosen[:count]


def measure(manifest, chosen, seed_bars: int, bars: int, folder: Path, network=None, whole: bool = False) -> dict:
    """Continue every tune's first ``seed_bars`` bars (``whole``: the whole tune) by ``bars`` bars;
    ``compare_music`` of the continuations against the tunes' own bars after ``seed_bars``."""
    generated, reference, seeds = folder / "generated", folder / "reference", folder / "seeds"
    for path in (generated, reference, seeds):
        path.mkdir(parents=True, exist_ok=True)
    for number, (path, score) in enumerate(chosen):
        seed = seeds / f"{number:03d}-{path.name}"
        write_midi(score if whole else bars_between(score, 0, seed_bars), seed, force=True)
        write_midi(bars_between(score, seed_bars, seed_bars + bars), reference / seed.name, force=True)
        generate(manifest, seed=seed, out=generated / seed.name, force=True, network=network,
                 config=GenerateConfig(bars=bars, random_seed=number, continuation_only=True))
    result = compare_music(generated, reference, manifest)
    # The folk collections hold some tunes twice under other names: a held-out tune whose own next bars are
    # in the training corpus (more than 4 bars verbatim) can be continued from memory of its twin.
    twins = {Path(copy["path"]).name for copy in compare_music(reference, None, manifest)["copies"]
             if copy["bars"] > COPY_BAR}
    result["twins"] = len(twins)
    result["longest_copy_bars_new_tunes"] = max(copy["bars"] for copy in result["copies"]
                                                if Path(copy["path"]).name not in twins)
    return result


def summary_line(label: str, result: dict) -> str:
    ours = result["generated"]["metrics"]["distinct_bar_ratio"]
    theirs = result["reference"]["metrics"]["distinct_bar_ratio"]
    values = [v["distinct_bar_ratio"] for v in result["generated"]["per_file"].values()]
    return (f"{label:28} distinct-bar ratio {ours['mean']:.3f} +- {ours['std']:.3f} "
            f"(reference {theirs['mean']:.3f} +- {theirs['std']:.3f}, "
            f"p5..p95 {theirs['p5']:.2f}..{theirs['p95']:.2f}); "
            f"within one sd: {result['within']['distinct_bar_ratio']}; "
            f"inside p5..p95: {result['inside']['distinct_bar_ratio']:.0%} "
            f"({sum(v < theirs['p5'] for v in values):d} under, {sum(v > theirs['p95'] for v in values):d} over); "
            f"longest copy: {result['longest_copy_bars']} bars, {result['longest_copy_bars_new_tunes']} "
            f"leaving out the {result['twins']} tunes whose own next bars are in the training corpus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="a model folder (repeat to compare)")
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seed-bars", type=int, default=8)
    parser.add_argument("--tunes", type=int, default=120)
    parser.add_argument("--after-whole-tune", action="store_true",
                        help="continue each whole tune (after its last bar) instead of its first --seed-bars bars")
    args = parser.parse_args()
    for model in args.model or [str(DEFAULT_MODEL)]:
        manifest = read_manifest(model)
        chosen = tunes(Path(model), args.seed_bars, args.bars, args.tunes)
        with tempfile.TemporaryDirectory() as scratch:
            result = measure(manifest, chosen, args.seed_bars, args.bars, Path(scratch), whole=args.after_whole_tune)
        print(f"{len(chosen)} held-out folk tunes of at least {args.seed_bars + args.bars} bars")
        print(summary_line(Path(model).name, result))


if __name__ == "__main__":
    main()
