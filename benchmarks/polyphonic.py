"""melody's network on a polyphonic benchmark (the JSB chorales), against published results.

    python benchmarks/polyphonic.py --data jsb-chorales-quarter.json [--epochs 400] [--units 512] [--patience 8]
                                    [--dropout 0.4] [--batch-size 32] [--seq-len 128] [--random-seed 0] [--transpose 5]
                                    [--out DIR | --model DIR [--model DIR ...]]

The data, in Boulanger-Lewandowski et al.'s (2012) format: their split of 382 Bach chorales (229 train, 76
valid, 77 test) as quarter-note frames, each frame the set of MIDI pitches sounding
(the JSON holds {"train": [piece, ...], "valid": ..., "test": ...}, a piece a list of
frames, a frame a list of pitches). Published test results are in nats per frame:

    LSTM 8.67, GRU 8.54 (Chung et al. 2014); LSTM 8.45, TCN 8.10 (Bai et al. 2018);
    RNN-NADE about 5.6 (Boulanger-Lewandowski et al. 2012)

How melody is scored the same way: each piece becomes a MIDI file of one track where
every frame's pitches are quarter notes struck at that frame (4/4 bar lines; the frame
data has no meter), so frames <-> tokens is one-to-one and the token sequence's
likelihood is the frames' likelihood. A network of the default model's shape (melody's
own LSTM, lookback and ahead inputs, told nothing ahead) is trained on the train split
only (a tenth of it held out for early stopping). Scored as the published results are:
-log p(frame t | frames before t) summed over each piece's frames after its first, divided
by the number of those frames. The first frame's tokens are given and not counted; nor is the
End token: the frames are scored, not where the piece stops (the network still gives the End
some probability at every frame's end, which the frames pay: the score is an upper bound). The
header tokens are counted (the key and density tokens are derived from the whole piece, so they
are scored, not given). The score with every token counted, first frames and End included, is
printed beside it in brackets. ``--model DIR`` scores a model folder kept by an earlier ``--out``
instead of training one; several ``--model`` score the models together, and ``--transpose N``
each model heard at every transposition from -N to N semitones as well: the next token's
probability is the average of what every model says in every transposition (moving the sequence
and the token to be scored alike). An average of next-token distributions is itself a model,
scored as above; the training data are the same (training transposes by up to 5 semitones).

The shipped default model is not scored here: its chorales include the test pieces.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from melody.bundle import load_bundle  # noqa: E402
from melody.evaluate import token_nll  # noqa: E402
from melody.midi_write import write_midi  # noqa: E402
from melody.model import ModelConfig  # noqa: E402
from melody.score import Instrument, Note, Score, TimeSignature  # noqa: E402
from melody.tokenizer import END  # noqa: E402
from melody.train import TrainConfig, train  # noqa: E402

TICKS = 480
PUBLISHED = {"LSTM (Chung et al. 2014)": 8.67, "GRU (Chung et al. 2014)": 8.54, "LSTM (Bai et al. 2018)": 8.45,
             "TCN (Bai et al. 2018)": 8.10, "RNN-NADE (Boulanger-Lewandowski et al. 2012)": 5.6}
MAX_FRAMES, MAX_PITCHES = 10_000, 16  # bounds on what the JSON may hold per piece and per frame


def read_split(path: Path) -> dict[str, list[list[list[int]]]]:
    """The JSON's three splits, each a list of pieces of frames of MIDI pitches; ValueError if it is not that."""
    if path.stat().st_size > 50 * 1024**2:
        raise ValueError(f"{path}: over 50 MB, not the JSB chorales")
    data = json.loads(path.read_text())
    splits = {}
    for name in ("train", "valid", "test"):
        pieces = data[name]
        if not all(isinstance(piece, list) and len(piece) <= MAX_FRAMES for piece in pieces):
            raise ValueError(f"{path}: {name} is not a list of pieces of at most {MAX_FRAMES} frames")
        splits[name] = [[sorted({int(p) for p in frame if 0 <= int(p) <= 127})[:MAX_PITCHES] for frame in piece]
                        for piece in pieces]
    return splits


def frames_to_score(frames: list[list[int]], voices: int = 0) -> Score:
    """One track of every frame's pitches; with ``voices``, that many tracks, a frame's highest pitch on the
    first, its next on the second, and so on (a frame is still the set of its pitches: one to one)."""
    if not voices:
        notes = [Note(index * TICKS, pitch, TICKS, 80) for index, frame in enumerate(frames) for pitch in frame]
        return Score(TICKS, [Instrument(52, name="Chorale", notes=notes)], time_signatures=[TimeSignature(0, 4, 4)])
    parts = [[] for _ in range(voices)]
    for index, frame in enumerate(frames):
        for voice, pitch in enumerate(sorted(frame, reverse=True)[:voices]):
            parts[voice].append(Note(index * TICKS, pitch, TICKS, 80))
    return Score(TICKS, [Instrument(52, name=f"Voice {voice + 1}", notes=notes) for voice, notes in enumerate(parts)],
                 time_signatures=[TimeSignature(0, 4, 4)])


def scored_as_published(tokens: np.ndarray, tokenizer) -> np.ndarray:
    """Which tokens of a piece count in its score as the published results count frames: every one but those of
    its first frame (from the header's end to the first time shift or bar line after it), which is given, and the
    End token (the frames are scored, not where the piece stops: the count of frames is given). The header counts:
    its key and density are read from the whole piece."""
    table, header = tokenizer.token_table(), tokenizer.header_length(tokens)
    moves = np.flatnonzero((table["shift_steps"][tokens] > 0) | tokenizer.is_bar(tokens))
    first_end = next((int(k) for k in moves if k > header), len(tokens))
    scored = tokens != END
    scored[header:first_end] = False
    return scored


def write_split(pieces, folder: Path, voices: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frames in enumerate(pieces):
        paths.append(write_midi(frames_to_score(frames, voices), folder / f"{index:03d}.mid", force=True))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True,
                        help="a JSON of train, valid and test pieces of frames of pitches (jsb-chorales-quarter.json)")
    parser.add_argument("--epochs", type=int, default=400, help="the most (a plateau ends the run sooner)")
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--patience", type=int, default=8, help="epochs without improvement before the rate is cut")
    parser.add_argument("--dropout", type=float, default=0.4, help="between the layers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=TrainConfig.seq_len, help="tokens per training window")
    parser.add_argument("--random-seed", type=int, default=TrainConfig.random_seed, help="split, batches and weights")
    parser.add_argument("--out", type=Path, help="model folder to keep (default: a temporary one)")
    parser.add_argument("--model", type=Path, action="append",
                        help="score this model folder instead of training one; given more than once, the models "
                             "together (their next-token distributions averaged)")
    parser.add_argument("--transpose", type=int, default=5, metavar="N",
                        help="also average each model heard transposed by -N..N semitones (default 5, as far as "
                             "training transposes; 0: only as it is)")
    parser.add_argument("--voices", action="store_true",
                        help="each frame's pitches on as many tracks as the fullest frame has, highest first")
    arguments = parser.parse_args()
    splits = read_split(arguments.data)
    voices = max(len(frame) for pieces in splits.values() for piece in pieces for frame in piece) \
        if arguments.voices else 0
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name in splits:
            write_split(splits[name], scratch / name, voices)
        folders = arguments.model or [arguments.out or scratch / "model"]
        if not arguments.model:
            train(scratch / "train", folders[0], ModelConfig(units=arguments.units, dropout=arguments.dropout),
                  TrainConfig(epochs=arguments.epochs, val_split=0.1, patience=arguments.patience,
                              batch_size=arguments.batch_size, seq_len=arguments.seq_len,
                              random_seed=arguments.random_seed), force=True)
        bundles = [load_bundle(folder) for folder in folders]
        shifts = range(-arguments.transpose, arguments.transpose + 1)
        for name in ("valid", "test"):
            paths = sorted((scratch / name).glob("*.mid"))
            pieces = encoded(paths, bundles)
            frames, scored = sum(map(len, splits[name])), [scored_as_published(piece, bundles[0].tokenizer)
                                                          for piece in pieces]
            print(f"{name} ({len(pieces)} pieces, {frames} frames, {sum(map(len, pieces))} tokens), nats per frame "
                  f"as published: the first frame of each piece given, the End not scored (every token scored):")
            views = {}
            for folder, bundle in zip(folders, bundles):
                metrics = json.loads((folder / "metrics.json").read_text())
                shape = bundle.model_config
                for shift in shifts:
                    views[folder, shift] = token_nll(bundle.model, [bundle.tokenizer.transpose(piece, shift)
                                                                    for piece in pieces])
                print(f"  {folder.name}: {shape.units}-unit network, dropout {shape.dropout}"
                      f"{f', {voices} voices' if voices else ''}, trained {metrics['steps']} steps in "
                      f"{metrics['training_seconds']:.0f} s ({metrics['stopped']}): "
                      f"{score(views[folder, 0], scored, frames)}")
                if len(shifts) > 1:
                    print(f"    heard at {len(shifts)} transpositions together: "
                          f"{score(mixture([views[folder, shift] for shift in shifts]), scored, frames)}")
            if len(views) > len(shifts):
                print(f"  the {len(bundles)} models together: {score(mixture(views.values()), scored, frames)}")
    for name, value in PUBLISHED.items():
        print(f"  published {name}: {value:.2f}")


def encoded(paths: list[Path], bundles) -> list[np.ndarray]:
    """Each file's tokens, the same for every model (ValueError if their tokenizers differ)."""
    from melody.midi_read import read_midi

    scores = [read_midi(path) for path in paths]
    pieces = [bundles[0].tokenizer.encode(score).astype(np.int32) for score in scores]
    for bundle in bundles[1:]:
        if not all(np.array_equal(bundle.tokenizer.encode(score), piece) for score, piece in zip(scores, pieces)):
            raise ValueError("the models tokenize the chorales differently: they cannot be scored together")
    return pieces


def mixture(views) -> list[np.ndarray]:
    """Per piece, each token's NLL under the average of several views' next-token distributions (a model in its
    own right: an average of distributions is one). ``views``: per view, per piece, each token's NLL."""
    views = list(views)
    return [np.log(len(views)) - np.logaddexp.reduce([-view[piece] for view in views], axis=0)
            for piece in range(len(views[0]))]


def score(losses: list[np.ndarray], scored: list[np.ndarray], frames: int) -> str:
    """Nats per frame as published (``scored_as_published``), and (in brackets) with every token scored."""
    published = sum(loss[counted].sum() for loss, counted in zip(losses, scored)) / (frames - len(losses))
    return f"{published:.3f} ({sum(loss.sum() for loss in losses) / frames:.3f})"


if __name__ == "__main__":
    from melody.interrupts import Interrupted

    try:
        main()
    except Interrupted as stop:  # a training stopped by Ctrl-C or SIGTERM: its best model so far is in --out
        print(f"Stopped: {stop}", file=sys.stderr)
        sys.exit(stop.exit_code)
