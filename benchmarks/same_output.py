"""Pin behaviour across a refactor: the shipped model's output on real seeds, byte for byte, and its NLL.

    python benchmarks/same_output.py [--wild DIR] [--save before.json | --check before.json]

Continues ten real seeds (chorales, folk in 4/4, 3/4, 6/8 and 2/4, and with ``--wild`` the
MidiTok test files: multi-track pop songs with drums, a POP909 piano song) for 8 bars with a
fixed random seed, one sample and four in a batch, and prints the SHA-256 of every MIDI file
written, then the shipped model's held-out NLL. ``--save`` keeps the figures; ``--check``
compares with kept ones and exits 1 on any difference (NLL to 1e-6).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody.generate import GenerateConfig, generate  # noqa: E402

SEEDS = ("chorales/bwv187.7.mid", "chorales/bwv26.6.mid", "chorales/bwv393.mid")
FOLK_METERS = ("4/4", "3/4", "6/8", "2/4")
WILD = ("MIDIs_multitrack/Aicha.mid", "MIDIs_multitrack/Funkytown.mid", "MIDIs_one_track/POP909_010.mid")


def folk_seeds() -> list[Path]:
    """The first folk file of the shipped corpus in each of FOLK_METERS (by file name)."""
    from melody.midi_read import read_midi

    found: dict[str, Path] = {}
    for path in sorted((ROOT / "corpora" / "folk").glob("*.mid")):
        signatures = read_midi(path).time_signatures
        meter = f"{signatures[0].numerator}/{signatures[0].denominator}" if len(signatures) == 1 else None
        if meter in FOLK_METERS and meter not in found:
            found[meter] = path
        if len(found) == len(FOLK_METERS):
            break
    return [found[meter] for meter in FOLK_METERS if meter in found]


def outputs(wild: Path | None) -> dict[str, str]:
    seeds = [ROOT / "corpora" / name for name in SEEDS] + folk_seeds()
    seeds += [wild / name for name in WILD] if wild else []
    digests = {}
    with tempfile.TemporaryDirectory() as folder:
        for number, seed in enumerate(seeds):
            for samples in (1, 4):
                result = generate(seed=seed, out=Path(folder) / f"{number}-{samples}.mid",
                                  config=GenerateConfig(bars=8, num_samples=samples, random_seed=number))
                for path in result.files:
                    digests[f"{seed.name} x{samples} {path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def held_out_nll() -> float:
    """The shipped model's mean NLL per token on its validation files, unrounded."""
    from melody.bundle import load_bundle, load_corpus
    from melody.evaluate import model_nll
    from melody.generate import DEFAULT_MODEL

    model = load_bundle(DEFAULT_MODEL)
    _, validation = load_corpus(model.path, len(model.tokenizer))
    return model_nll(model.model, validation) / sum(len(piece) - 1 for piece in validation)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wild", type=Path, default=None)
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--check", type=Path, default=None)
    parser.add_argument("--no-nll", action="store_true", help="Skip the held-out NLL (it takes minutes).")
    args = parser.parse_args()
    figures = {"files": outputs(args.wild)}
    if not args.no_nll:
        figures["nll"] = held_out_nll()
    for name, digest in figures["files"].items():
        print(f"{digest[:16]}  {name}")
    print(f"held-out NLL {figures.get('nll')}")
    if args.save:
        args.save.write_text(json.dumps(figures, indent=1) + "\n")
    if args.check:
        kept = json.loads(args.check.read_text())
        differ = [name for name in kept["files"] if kept["files"][name] != figures["files"].get(name)]
        nll_moved = "nll" in kept and "nll" in figures and abs(kept["nll"] - figures["nll"]) > 1e-6
        print(f"{len(kept['files']) - len(differ)} of {len(kept['files'])} files byte-identical"
              + (f"; differ: {', '.join(differ)}" if differ else "")
              + (f"; NLL {kept['nll']} -> {figures['nll']}" if nll_moved else "; NLL unchanged to 1e-6"
                 if "nll" in figures and "nll" in kept else ""))
        return 1 if differ or nll_moved else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
