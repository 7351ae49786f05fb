"""How well does the model read a real seed? The primer ``generate`` builds, teacher-forced.

    python benchmarks/primer_nll.py --wild DIR [--model melody/default_model]

For each MIDI file of MidiTok's test folders (as the tests fetch them: multi-track pop songs,
piano pieces, POP909 songs), the primer ``melody generate --seed FILE`` would prime with, run
through the model token by token: the mean negative log-likelihood (nats) of its body's tokens,
each given the ones before it. Two sides in one process: the primer held to what the model
learned (its model folder's ``tracks``, ``velocities`` and ``pitches``: ``continuation.Learned``),
and the same model told it learned anything (as before those were recorded). Prints both per file,
the median of each and the ratio; a chorale's primer costs the shipped model about 0.7.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from melody.bundle import DEFAULT_MODEL, read_manifest
from melody.errors import MelodyError
from melody.generate import GenerateConfig, _request, numpy_network
from melody.midi_read import read_midi


def primer_nll(manifest, network, path: Path) -> tuple[float, int]:
    """(mean NLL per body token, tracks) of the primer ``generate`` builds from ``path``."""
    tokens = _request(read_midi(path), manifest, GenerateConfig(), 0).primer.tokens
    header = manifest.tokenizer.header_length(tokens)
    logits, state = network.prime(tokens[:header])
    costs = []
    for index in range(header, len(tokens)):
        shifted = logits[0] - logits[0].max()
        costs.append(np.log(np.exp(shifted).sum()) - shifted[tokens[index]])
        logits, state = network.step(tokens[index:index + 1], state)
    return float(np.mean(costs)), len(manifest.tokenizer.tracks(tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wild", required=True, help="the MidiTok test files folder")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    args = parser.parse_args()
    learned = read_manifest(args.model)
    anything = dataclasses.replace(learned, tracks=None, velocities=None, pitches=None)
    network = numpy_network(learned)
    files = [path for folder in ("MIDIs_multitrack", "MIDIs_one_track")
             for path in sorted(Path(args.wild).glob(f"{folder}/*.mid"))]
    print(f"{'seed':32} {'tracks':>11} {'anything':>9} {'learned':>8}")
    sides = {"anything": [], "learned": []}
    for path in files:
        try:
            (before, tracks_before), (after, tracks_after) = (primer_nll(m, network, path) for m in (anything, learned))
        except MelodyError as error:
            print(f"{path.name[:32]:32} skipped: {error}")
            continue
        sides["anything"].append(before)
        sides["learned"].append(after)
        print(f"{path.name[:32]:32} {tracks_before:>4} -> {tracks_after:<4} {before:9.2f} {after:8.2f}")
    medians = {side: float(np.median(values)) for side, values in sides.items()}
    print(f"median of {len(sides['learned'])} files: {medians['anything']:.2f} nats/token told nothing, "
          f"{medians['learned']:.2f} held to what the model learned ({medians['anything'] / medians['learned']:.2f}x)")


if __name__ == "__main__":
    main()
