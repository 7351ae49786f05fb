"""The default model's quality bar, measured on music it never saw.

    python benchmarks/quality.py [--model melody/default_model] [--pieces 40] [--bars 8]

1. Likelihood on its 887 held-out files (kept in the model folder): the LSTM
   against the Kneser-Ney n-gram baseline fitted on its training corpus.
   Bar: at least 15% lower NLL per token than the n-gram.
2. Music: one continuation of ``--bars`` bars (temperature 1, no top-k/top-p)
   for each of ``--pieces`` held-out files, written without the seed, compared
   with all held-out files (as melodies). Bar: the generated pieces sit within
   the reference spread on pitch-class entropy, scale consistency and empty-bar rate.
3. Copying: the longest passage of each continuation found verbatim in the
   training corpus. Bar: no more than 4 complete bars.
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

from melody.bundle import corpus_files, load_bundle  # noqa: E402
from melody.evaluate import compare_music, evaluate_likelihood, likelihood_table, music_table  # noqa: E402
from melody.generate import DEFAULT_MODEL, GenerateConfig, generate  # noqa: E402

BAR_METRICS = ("pitch_class_entropy", "scale_consistency", "empty_bar_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--pieces", type=int, default=40)
    parser.add_argument("--bars", type=int, default=8)
    args = parser.parse_args()
    bundle = load_bundle(args.model)

    likelihood = evaluate_likelihood(bundle)
    print(likelihood_table(likelihood))
    gain = likelihood["gain"]["ngram"]
    print(f"\nBar 1, at least 15% below the n-gram's NLL per token: {gain:.1%} -> {'met' if gain >= 0.15 else 'MISSED'}")

    held_out = [ROOT / name for name in corpus_files(bundle.path)[1] if (ROOT / name).is_file()]
    with tempfile.TemporaryDirectory() as scratch:
        generated, reference = Path(scratch) / "generated", Path(scratch) / "reference"
        reference.mkdir()
        for index, path in enumerate(held_out):
            (reference / f"{index:04d}-{path.name}").symlink_to(path)
        step = max(1, len(held_out) // args.pieces)
        for number, seed in enumerate(held_out[::step][:args.pieces]):
            generate(bundle, seed=seed, out=generated / f"{number:02d}-{seed.stem}.mid",
                     config=GenerateConfig(bars=args.bars, random_seed=number, continuation_only=True))
        music = compare_music(generated, reference, bundle)
    print()
    print(music_table(music))
    met = all(music["within"][key] for key in BAR_METRICS)
    shares = ", ".join(f"{key} {music['inside'][key]:.0%}" for key in BAR_METRICS)
    print(f"\nBar 2, generated means within one reference standard deviation on {', '.join(BAR_METRICS)}: "
          f"{'met' if met else 'MISSED'} (pieces inside the reference's p5..p95: {shares})")
    longest = music["longest_copy_bars"]
    print(f"Bar 3, at most 4 complete bars copied from the training corpus: longest {longest} "
          f"-> {'met' if longest <= 4 else 'MISSED'}")


if __name__ == "__main__":
    main()
