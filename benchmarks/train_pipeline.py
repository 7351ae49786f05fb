"""Does the training pipeline keep the cell's gain? ``melody train`` end to end against the bare
model's train step and against a ``keras.layers.LSTM`` model's ``fit``, side by side in one process.

    python benchmarks/train_pipeline.py [--units 512] [--layers 2] [--rounds 2] [--precision float32]

Three ways of training the same 2 x 512 network (embedding 256, melody's 608-token vocabulary,
dropout 0.2, Adam with clipping) at batch 64 x 128:

* ``melody train``: the real command's code (``melody.train.train``) on the shipped folk corpus
  (prepared once beforehand), with random windows, transposition, the tf.data pipeline,
  progress reporting, validation and checkpoints;
* the bare step: the same model's ``train_on_batch`` on batches held in memory;
* ``keras.layers.LSTM``: the same network built on Keras's LSTM, ``fit`` on in-memory arrays.

Each side's step time is the median of the times between consecutive finished steps
(after the first two), so start-up, tracing, validation and checkpoints do not count. This
machine's speed drifts by up to 2x over minutes, so the three are measured in alternating
rounds and each round's ratios come from steps minutes apart at most. Prints tokens/s for
each and the ratios, with the CPU's flags.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from melody.corpus import prepare  # noqa: E402
from melody.model import ModelConfig, build_model  # noqa: E402
from melody.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402
from melody.distribute import native_bfloat16  # noqa: E402
from melody.train import Report, TrainConfig, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BATCH, LENGTH = 64, 128


class StepTimes(Report):
    """The wall-clock time of every finished step, from melody's own progress report."""

    def __init__(self):
        self.times = []

    def step(self, step, loss, tokens_per_second):
        self.times.append(time.perf_counter())


def rate(times: list[float]) -> float:
    """Tokens/s from the median gap between finished steps, the first two left out."""
    return BATCH * LENGTH / float(np.median(np.diff(times[2:])))


def melody_rate(cache: Path, config: ModelConfig, precision: str, steps: int, folder: Path) -> float:
    out = folder / "model"
    shutil.rmtree(out, ignore_errors=True)
    report = StepTimes()
    train(cache, out, config, TrainConfig(epochs=1, steps_per_epoch=steps, batch_size=BATCH, seq_len=LENGTH,
                                          precision=precision), report=report)
    return rate(report.times)


def keras_rate(config: ModelConfig, vocabulary: int, layer, steps: int, fit: bool) -> float:
    """The network (melody's cell, or ``layer``) trained on random in-memory batches: ``train_on_batch``
    one batch at a time, or ``fit`` over all of them."""
    model = build_model(config, vocabulary, **({"recurrent_layer": layer} if layer else {}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocabulary, size=(BATCH * steps, LENGTH)).astype("int32")
    y = rng.integers(0, vocabulary, size=(BATCH * steps, LENGTH)).astype("int32")
    times = []
    if fit:
        def finished(batch, logs=None):
            times.append(time.perf_counter())

        callback = keras.callbacks.LambdaCallback(on_train_batch_end=finished)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    else:
        for step in range(steps):
            model.train_on_batch(x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH])
            times.append(time.perf_counter())
    return rate(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="steps per side and round")
    parser.add_argument("--precision", default="float32", help="comma-separated: float32, bfloat16")
    args = parser.parse_args()
    config = ModelConfig(units=args.units, layers=args.layers, embedding=args.embedding, dropout=0.2, lookback=(),
                         ahead=False)  # the cell against the cell: no lookback or ahead inputs on any side
    vocabulary = len(Tokenizer())
    print(f"# {platform.machine()}, {os.cpu_count()} cores, keras {keras.__version__}, {args.layers} x {args.units} "
          f"units, embedding {args.embedding}, dropout 0.2, vocabulary {vocabulary}, batch {BATCH} x {LENGTH}; "
          f"native bfloat16: {native_bfloat16() or 'none (emulated)'}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        cache = folder / "folk-cache"
        prepare([ROOT / "corpora" / "folk"], cache, TokenizerConfig(), workers=2)
        print(f"{'precision':>9} {'melody train':>13} {'bare step':>10} {'keras LSTM fit':>15} "
              f"{'train/bare':>11} {'train/keras':>12}", flush=True)
        for precision in args.precision.split(","):
            policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
            for _ in range(args.rounds):
                ours = melody_rate(cache, config, precision, args.steps, folder)
                keras.mixed_precision.set_global_policy(policy)
                bare = keras_rate(config, vocabulary, None, args.steps, fit=False)
                theirs = keras_rate(config, vocabulary, lambda units, name: keras.layers.LSTM(
                    units, return_sequences=True, name=name), args.steps, fit=True)
                keras.mixed_precision.set_global_policy("float32")
                print(f"{precision:>9} {ours:13,.0f} {bare:10,.0f} {theirs:15,.0f} {ours / bare:11.2f} "
                      f"{ours / theirs:12.2f}", flush=True)


if __name__ == "__main__":
    main()
