"""Musical fit: does a continuation belong to its seed? Measured on real seeds in many meters and styles.

    python benchmarks/musical_fit.py [--model melody/default_model] [--bars 8] [--out fit-outputs]
                                     [--wild DIR] [--draws N] [--score-only DIR]

Seeds (none of them a file the default model trained on):
* held-out folk songs and chorales of the shipped corpora (the model's own validation
  files) in every meter they have: 4/4, 2/4, 3/4, 6/8, 3/8, 2/2, 3/2, 6/4 and meter changes;
* for meters the corpora lack (9/8, 12/8, 5/4, 7/8, 1/4), a held-out folk song re-barred
  in that meter (its notes unchanged, its time signature replaced): real melodies, new bar
  lines, to check that bars follow the meter the file says;
* with ``--wild DIR`` (the MidiTok source package's test files, as the tests fetch them):
  multi-track pop songs with drums, POP909 and MAESTRO piano, a type 0 file.

Each seed is continued for ``--bars`` bars (temperature 1, random seed = its number; with
``--draws N``, N times, random seeds N * number + 0..N-1, for rules that one draw cannot judge) and
measured with ``melody.metrics.continuation_fit``. ``--score-only DIR`` measures files already
generated into DIR (named like the seeds), e.g. by an older melody, so two versions are
compared with the same yardstick.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody.bundle import corpus_files  # noqa: E402
from melody.evaluate import fit_table, fit_to_seeds  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402
from melody.midi_write import write_midi  # noqa: E402
from melody.score import TimeSignature  # noqa: E402

REBARRED = ((9, 8), (12, 8), (5, 4), (7, 8), (1, 4))
WILD = ("MIDIs_multitrack/Aicha.mid", "MIDIs_multitrack/Funkytown.mid", "MIDIs_multitrack/Mr. Blue Sky.mid",
        "MIDIs_multitrack/d6caebd1964d9e4a3c5ea59525230e2a.mid", "MIDIs_multitrack/In Too Deep.mid",
        "MIDIs_one_track/POP909_010.mid", "MIDIs_one_track/Maestro_1.mid")


def seeds(model: Path, folder: Path, wild: Path | None) -> list[tuple[str, Path]]:
    """(label, path) of every seed, written into ``folder`` where they are made."""
    chosen, meters = [], {}
    for name in corpus_files(model)[1]:
        path = ROOT / name
        if not path.is_file():
            continue
        signatures = read_midi(path).time_signatures
        meter = "change" if len(signatures) > 1 else \
            f"{signatures[0].numerator}/{signatures[0].denominator}" if signatures else "4/4"
        kind = (meter, path.parent.name)
        if meters.get(kind, 0) < (3 if meter in ("4/4", "3/4", "6/8", "2/4") else 1):
            meters[kind] = meters.get(kind, 0) + 1
            chosen.append((f"{meter} {path.parent.name.rstrip('s')}", path))
    plain = [path for label, path in chosen if label == "4/4 folk"]
    for (numerator, denominator), source in zip(REBARRED, plain * 2):
        score = read_midi(source)
        rebarred = score.replace(time_signatures=[TimeSignature(0, numerator, denominator)])
        target = folder / f"rebarred-{numerator}-{denominator}-{source.name}"
        write_midi(rebarred, target, force=True)
        chosen.append((f"{numerator}/{denominator} re-barred folk", target))
    if wild is not None:
        chosen += [(f"{_meter(wild / name)} {name.split('/')[-1][:18]}", wild / name) for name in WILD
                   if (wild / name).is_file()]
    return chosen


def _meter(path: Path) -> str:
    signatures = read_midi(path).time_signatures
    return "change" if len(signatures) > 1 else \
        f"{signatures[0].numerator}/{signatures[0].denominator}" if signatures else "4/4"


def generate_all(model: str, chosen, out: Path, bars: int, options: dict, draws: int = 1) -> None:
    """Each seed continued ``draws`` times (random seeds number * draws + 0, 1, ...; one draw: its number)."""
    from melody.bundle import read_manifest
    from melody.generate import GenerateConfig, generate

    bundle = read_manifest(model)
    for number, (_, path) in enumerate(chosen):
        for draw in range(draws):
            name = f"{number:02d}-{path.stem}" + (f"-{draw + 1}" if draws > 1 else "")
            generate(bundle, seed=path, out=out / f"{name}.mid", force=True,
                     config=GenerateConfig(bars=bars, random_seed=number * draws + draw, **options))


def report(chosen, seeds: Path, out: Path, bars: int) -> None:
    """One row per seed (its meter and kind beside ``melody evaluate``'s numbers), then the totals."""
    result = fit_to_seeds(out, seeds, bars)
    labels = {f"{number:02d}-{path.stem}": label for number, (label, path) in enumerate(chosen)}
    print(f"{'seed':34} {'bars':>5} {'key':>4} {'seed in key':>11} {'in key':>7} {'lead':>5} {'density':>8} "
          f"{'tracks kept':>11} {'distinct':>8}")
    for p in result["pairs"]:
        print(f"{labels.get(Path(p['seed']).stem, Path(p['seed']).stem):34} {p['bars_written']:>5} {p['key']:>4} "
              f"{p['seed_in_key']:>11.2f} {p['in_key']:>7.2f} {p['lead_in_key']:>5.2f} {p['density_ratio']:>8.2f} "
              f"{p['tracks_kept']:>5}/{p['tracks_before']:<5} {p['distinct_bar_ratio']:>8.2f}")
    print(fit_table(result).split("\n\n", 1)[1])
    multi = [p for p in result["pairs"] if p["tracks_before"] > 1]
    print(f"multi-track seeds: {sum(p['tracks_kept'] for p in multi)}/{sum(p['tracks_before'] for p in multi)} "
          f"tracks still sounding after the seed")


def main() -> None:
    from melody.generate import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--out", default=None, help="folder for seeds/ and continued/ (default: a temporary one)")
    parser.add_argument("--wild", default=None, help="the MidiTok test files folder (real pop and piano files)")
    parser.add_argument("--key-strength", type=float, default=None, help="as melody generate's")
    parser.add_argument("--accompaniment", default="band", help="as melody generate's")
    parser.add_argument("--draws", type=int, default=1, help="continuations of each seed (default 1)")
    parser.add_argument("--score-only", default=None,
                        help="measure the continuations in this folder (NN-<seed name>.mid, made from --out's seeds/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.out or scratch)
        (base / "seeds").mkdir(parents=True, exist_ok=True)
        chosen = seeds(Path(args.model), base / "seeds", Path(args.wild) if args.wild else None)
        for number, (label, path) in enumerate(chosen):  # numbered copies: what another melody is run on
            target = base / "seeds" / f"{number:02d}-{path.stem}.mid"
            target.write_bytes(path.read_bytes())
        (base / "seeds" / "labels.txt").write_text("".join(f"{label}\n" for label, _ in chosen))
        out = Path(args.score_only) if args.score_only else base / "continued"
        out.mkdir(parents=True, exist_ok=True)
        if not args.score_only:
            options = {"accompaniment": args.accompaniment}
            if args.key_strength is not None:
                options["key_strength"] = args.key_strength
            generate_all(args.model, chosen, out, args.bars, options, args.draws)
        report(chosen, base / "seeds", out, args.bars)


if __name__ == "__main__":
    main()
