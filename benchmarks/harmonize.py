"""Harmonizing held-out chorale sopranos: melody's alto, tenor and bass against Bach's.

    python benchmarks/harmonize.py [--model melody/default_model] [--samples 2] [--pieces 40] [--random-seed 0]

Sopranos: the four-part chorales among the model's validation files (held out by piece from
its training). Each soprano alone is harmonized as `melody harmonize` does (every bar, the
soprano kept, Alto, Tenor and Bass added, the ending told; soprano k with random seed 1000 x
``--random-seed`` + k), and
each harmonization, and Bach's own, is measured over the whole piece:

    clash        clashing share of the time two parts sound together (2nds, 7ths, tritones)
    parallels    parallel fifths and octaves per 100 moves of a pair of parts
    on_others    the soprano's notes on a pitch class a lower part sounds
    crossings    share of the time two parts sound together that the lower sounds above
    range        per lower voice: mean pitch, and the span holding 90% of its notes (semitones)
    density      onsets per quarter note of the lower voices together

The likelihood of Bach's own lower parts given his soprano: the nats per token of the lower
parts' tokens (their Track, Velocity, Note and Duration tokens) of each whole chorale,
(a) told what the soprano does next and where the piece ends (``melody.ahead``, as
harmonizing tells the model), and (b) told nothing (plain forcing: the soprano's notes are
only in the stream). (a) below (b) means the look-ahead helps the lower parts prepare.

The same sopranos are also harmonized with plain forcing (``--plain``: the network is told
nothing ahead; the soprano's notes are only played into the stream), for the features and the
classifier side by side.

A classifier two-sample test: a logistic regression on those features (standardized) tells
Bach's harmonization from melody's for the same sopranos, each soprano's pieces held out in
turn (leave-one-soprano-out); its accuracy (weighted so both sides count equally) near 0.5
means the features cannot tell them apart; the issue's bar is at most 0.65. Beside each feature, the
accuracy of the same test on that feature alone: what gives a harmonization away.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody import ahead  # noqa: E402
from melody.bundle import corpus_files, read_manifest  # noqa: E402
from melody.ensemble import clash_share, crossings, on_others, parallels  # noqa: E402
from melody.generate import DEFAULT_MODEL, generate, harmonizing, numpy_network  # noqa: E402
from melody.keys import estimate_key, in_key_share  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402
from melody.midi_write import write_midi  # noqa: E402
from melody.score import Score  # noqa: E402

FEATURES = ("clash", "parallels", "on_others", "crossings", "alto_mean", "tenor_mean", "bass_mean", "alto_span",
            "tenor_span", "bass_span", "density", "in_key", "leap")


def features(music: Score) -> dict:
    """The measures above of a four-part ``music`` (soprano first), over the whole piece."""
    end = music.end_tick
    lower = music.instruments[1:4]
    row = {"clash": clash_share(music, 0, end), "parallels": parallels(music, 0, end),
           "on_others": on_others(music, 0, 0, end), "crossings": crossings(music, 0, end)}
    for name, part in zip(("alto", "tenor", "bass"), lower):
        pitches = np.array([n.pitch for n in part.notes] or [math.nan], float)
        row[f"{name}_mean"] = float(np.mean(pitches))
        row[f"{name}_span"] = float(np.subtract(*np.nanpercentile(pitches, [95, 5])))
    onsets = {n.start for part in lower for n in part.notes}
    row["density"] = len(onsets) / max(end / music.ticks_per_quarter, 1)
    key = estimate_key([n for part in music.instruments for n in part.notes])
    notes = [n for part in lower for n in part.notes]
    row["in_key"] = in_key_share(notes, key) if notes else math.nan
    leaps = [abs(b.pitch - a.pitch) for part in lower for a, b in zip(part.notes, part.notes[1:])]
    row["leap"] = float(np.mean(leaps)) if leaps else math.nan
    return row


def lower_parts_nll(manifest, network, path: Path) -> tuple[float, float, int]:
    """Nats per token of the lower parts' tokens of the chorale at ``path``: told (soprano kept, ending) and
    told nothing; and how many tokens were counted."""
    tokenizer = manifest.tokenizer
    table = tokenizer.token_table()
    tokens = tokenizer.encode(read_midi(path)).astype(np.intp)
    header = tokenizer.header_length(tokens)
    drums = [is_drum for is_drum, _ in tokenizer.tracks(tokens)]
    told = ahead.piece_features(tokens, table, header, drums, frozenset({0}), True)
    both = np.stack([told, np.zeros_like(told)], axis=1)  # (time, 2 rows, WIDTH)
    track = np.maximum.accumulate(np.where(table["track_of"][tokens] >= 0, np.arange(len(tokens)), -1))
    in_force = np.where(track >= 0, table["track_of"][tokens[np.maximum(track, 0)]], -1)
    lower = (in_force > 0) & ((table["track_of"][tokens] > 0) | (table["pitch_of"][tokens] >= 0)
                              | tokenizer.kinds["Duration"].holds(tokens) | (table["velocity_of"][tokens] >= 0))
    logits, state = network.prime(tokens[:header], told[:header])
    logits, state = np.repeat(logits, 2, axis=0), twice(state)
    total = np.zeros(2)
    for t in range(header, len(tokens)):
        if lower[t]:
            shifted = logits - logits.max(axis=1, keepdims=True)
            total -= shifted[:, tokens[t]] - np.log(np.exp(shifted).sum(axis=1))
        logits, state = network.step(np.repeat(tokens[t], 2), state, both[t])
    count = int(lower[header:].sum())
    return total[0] / count, total[1] / count, count


class Plain:
    """A network that is told nothing ahead: plain forcing, for comparison."""

    def __init__(self, network):
        self.network = network
        self.lookback = getattr(network, "lookback", ())  # phrase returns as the told side has them

    def prime(self, tokens, ahead=None):
        return self.network.prime(tokens)

    def step(self, tokens, state, ahead=None, **returns):
        return self.network.step(tokens, state, **returns)


def twice(state):
    """A network state (nested lists and tuples of arrays, batch first) for two rows."""
    if isinstance(state, (list, tuple)):
        return type(state)(twice(part) for part in state)
    return np.repeat(state, 2, axis=0)


def classify(bach: list[dict], made: list[list[dict]], names=FEATURES) -> float:
    """Leave-one-soprano-out accuracy of a logistic regression on the features ``names`` telling ``bach``'s rows
    from ``made``'s (per soprano, its harmonizations), each side weighted to count equally."""
    x, y, group, weight = [], [], [], []
    for number, (real, ours) in enumerate(zip(bach, made)):
        for row, label, w in [(real, 1, 1.0)] + [(row, 0, 1.0 / len(ours)) for row in ours]:
            x.append([row[name] for name in names])
            y.append(label), group.append(number), weight.append(w)
    x, y, group, weight = (np.array(v, float) for v in (x, y, group, weight))
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    right = 0.0
    for held in np.unique(group):
        train, test = group != held, group == held
        mean, scale = x[train].mean(0), x[train].std(0) + 1e-9
        z = (x - mean) / scale
        w, b = np.zeros(x.shape[1]), 0.0
        for _ in range(2000):  # gradient descent on the weighted log loss, L2 0.1
            p = 1 / (1 + np.exp(-(z[train] @ w + b)))
            error = (p - y[train]) * weight[train]
            w -= 0.1 * (z[train].T @ error / weight[train].sum() + 0.1 * w)
            b -= 0.1 * error.sum() / weight[train].sum()
        guess = (z[test] @ w + b) > 0
        right += ((guess == y[test]) * weight[test]).sum()
    return right / weight.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--samples", type=int, default=2, help="harmonizations per soprano")
    parser.add_argument("--pieces", type=int, default=40)
    parser.add_argument("--plain", action="store_true", help="also harmonize with plain forcing")
    parser.add_argument("--random-seed", type=int, default=0,
                        help="soprano k is harmonized with random seed 1000 * this + k (default 0)")
    arguments = parser.parse_args()
    manifest = read_manifest(arguments.model)
    network = numpy_network(manifest)
    chorales = [ROOT / name for name in corpus_files(arguments.model)[1] if "chorales" in name]
    chorales = [path for path in chorales if path.is_file() and len(read_midi(path).instruments) == 4]
    chorales = chorales[:arguments.pieces]
    bach, made, forced, told, plain, started = [], [], [], [], [], time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for number, path in enumerate(chorales):
            real = read_midi(path)
            soprano = Path(scratch) / f"{path.stem}.mid"
            write_midi(real.replace(instruments=real.instruments[:1]), soprano, force=True)
            config = harmonizing(soprano, ending=manifest.model_config.ahead, num_samples=arguments.samples,
                                 random_seed=1000 * arguments.random_seed + number)
            scores = generate(manifest, soprano, config=config, write=False).scores
            bach.append(features(real))
            made.append([features(score) for score in scores])
            if arguments.plain:
                forced.append([features(score) for score in generate(manifest, soprano, config=config, write=False,
                                                                     network=Plain(network)).scores])
            with_told, without, count = lower_parts_nll(manifest, network, path)
            told.append((with_told, count)), plain.append((without, count))
            print(f"{path.name}: clash {bach[-1]['clash']:.2f} Bach, "
                  f"{np.nanmean([m['clash'] for m in made[-1]]):.2f} melody; lower parts' NLL {with_told:.3f} told, "
                  f"{without:.3f} plain ({count} tokens)", flush=True)
    print(f"\nmodel {arguments.model}: {len(chorales)} held-out chorale sopranos, {arguments.samples} harmonizations "
          f"each ({time.perf_counter() - started:.0f} s)")
    print(f"{'feature':12} {'Bach':>7} {'melody':>7}" + (f" {'plain':>7}" if forced else "") + "  alone")
    for name in FEATURES:
        ours = [np.nanmean([row[name] for rows in side for row in rows]) for side in ([made, forced] if forced
                                                                                       else [made])]
        print(f"{name:12} {np.nanmean([row[name] for row in bach]):7.2f}" + "".join(f" {v:7.2f}" for v in ours)
              + f"  {classify(bach, made, (name,)):5.2f}")
    tokens = sum(count for _, count in told)
    print(f"Bach's lower parts given his soprano: {sum(v * c for v, c in told) / tokens:.3f} nats/token told what "
          f"comes (soprano ahead, the ending), {sum(v * c for v, c in plain) / tokens:.3f} plain forcing "
          f"({tokens} tokens)")
    print(f"classifier two-sample test (logistic regression, {len(FEATURES)} features, leave-one-soprano-out): "
          f"accuracy {classify(bach, made):.2f} (0.5: cannot tell; bar: at most 0.65)"
          + (f"; with plain forcing {classify(bach, forced):.2f}" if forced else ""))


if __name__ == "__main__":
    main()
