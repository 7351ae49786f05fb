"""Density on real pop and piano songs: each written part held to its pace against the model's own.

    python benchmarks/density.py --wild DIR [--model melody/default_model] [--samples 2] [--bars 8] [--seed 1000]

Seeds: every file of MidiTok's test set (``--wild DIR``, as the tests fetch it) with notes:
multi-track pop arrangements with drums (9-16 tracks), POP909 songs (melody, bridge, piano
in one track) and solo piano (MAESTRO performances and two piano pieces). Each is continued
after its end for ``--bars`` bars, ``--samples`` times, once with ``pace`` (the
default: each written part held to its seed part's onsets per quarter note in its last 4 bars
that play) and once without (the model's own pace, as before), with the same random seeds.

Per seed and side: the lead's ``density_ratio`` (``melody.metrics.continuation_fit``: the new
lead's onsets per quarter over the seed lead's in its last 4 bars, onsets on melody's grid);
then for each side the share of continuations within 1.5x of the seed lead's density, the
same for the other pitched parts (``parts_density``: of those playing in the seed and the new
bars, written or looped), and, to see what holding the pace costs, the mean in-key share and
clash of the new music.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody.bundle import read_manifest  # noqa: E402
from melody.errors import MelodyError  # noqa: E402
from melody.generate import DEFAULT_MODEL, GenerateConfig, generate  # noqa: E402
from melody.metrics import continuation_fit  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402


def songs(wild: Path) -> list[Path]:
    """The MidiTok test files with notes: the pop arrangements, then the one-track songs and pieces."""
    found = sorted((wild / "MIDIs_multitrack").glob("*.mid")) + sorted((wild / "MIDIs_one_track").glob("*.mid"))
    kept = []
    for path in found:
        try:
            read_midi(path)
        except MelodyError:
            continue
        kept.append(path)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wild", required=True, help="the MidiTok test files folder")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1000, help="random seed of the first continuation")
    args = parser.parse_args()
    bundle = read_manifest(args.model)
    sides = {"paced": True, "free": False}
    fits = {side: [] for side in sides}
    print(f"{'seed':30} {'tracks':>6}  " + "  ".join(f"{side + ' density':>22}" for side in sides))
    with tempfile.TemporaryDirectory() as folder:
        for number, path in enumerate(songs(Path(args.wild))):
            seed = read_midi(path)
            row = {}
            for side, paced in sides.items():
                row[side] = []
                for sample in range(args.samples):
                    out = Path(folder) / f"{number}-{side}-{sample}.mid"
                    config = GenerateConfig(bars=args.bars, random_seed=args.seed + 100 * number + sample,
                                            pace=paced)
                    generate(bundle, seed=path, out=out, force=True, config=config)
                    fit = continuation_fit(seed, read_midi(out), args.bars)
                    fits[side].append(fit)
                    row[side].append(fit["density_ratio"])
            print(f"{path.name[:30]:30} {len(seed.instruments):>6}  " + "  ".join(
                f"{' '.join(f'{r:5.2f}' for r in row[side]):>22}" for side in sides), flush=True)
    for side in sides:
        ratios = [f["density_ratio"] for f in fits[side] if not math.isnan(f["density_ratio"])]
        within = np.mean([1 / 1.5 <= r <= 1.5 for r in ratios])
        print(f"{side}: lead density within 1.5x of the seed lead's in {within:.0%} of {len(ratios)} continuations; "
              f"median ratio {np.median(ratios):.2f}; other parts within 1.5x "
              f"{np.nanmean([f['parts_density'] for f in fits[side]]):.0%}; in key {np.nanmean([f['in_key'] for f in fits[side]]):.2f}; "
              f"clash {np.nanmean([f['clash'] for f in fits[side]]):.2f}")


if __name__ == "__main__":
    main()
