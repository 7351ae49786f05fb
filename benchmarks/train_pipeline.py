"""Does the training pipeline keep the cell's gain? ``melody train`` end to end against the bare
model's train step and against a ``keras.layers.LSTM`` model's ``fit``, side by side in one process.

    python benchmarks/train_pipeline.py [--units 512] [--layers 2] [--rounds 2] [--precision float32]

Three ways of training the same 2 x 512 network (embedding 256, melody's 608-token vocabulary,
dropout 0.2, Adam with clipping) at batch 64 x 128:

* ``melody train``: the real command's code (``melody.train.train``) on the shipped folk corpus
  (prepared once beforehand), with random windows, transposition, the tf.data pipeline,
  progress reporting, validation and checkpoints. Its step time is taken as
  (time for 24 steps - time for 4 steps) / 20, so start-up, validation and checkpoints,
  the same in both runs, cancel;
* the bare step: the same model's ``train_on_batch`` on one batch held in memory;
* ``keras.layers.LSTM``: the same network built on Keras's LSTM, ``fit`` on in-memory arrays.

Prints tokens/s for each and the ratios, with the CPU's flags.
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
from melody.train import TrainConfig, native_bfloat16, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BATCH, LENGTH = 64, 128


def melody_train(cache: Path, config: ModelConfig, precision: str, steps: int, folder: Path) -> float:
    out = folder / f"model-{steps}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    train(cache, out, config, TrainConfig(epochs=1, steps_per_epoch=steps, batch_size=BATCH, seq_len=LENGTH,
                                          precision=precision))
    return time.perf_counter() - started


def melody_step_rate(cache, config, precision, folder) -> float:
    short = melody_train(cache, config, precision, 4, folder)
    long = melody_train(cache, config, precision, 24, folder)
    return 20 * BATCH * LENGTH / (long - short)


def bare_step_rate(config, vocabulary, layer, steps=8, fit=False) -> float:
    model = build_model(config, vocabulary, **({"recurrent_layer": layer} if layer else {}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocabulary, size=(BATCH * steps, LENGTH)).astype("int32")
    y = rng.integers(0, vocabulary, size=(BATCH * steps, LENGTH)).astype("int32")
    if fit:
        model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # trace and warm up
        started = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    else:
        model.train_on_batch(x[:BATCH], y[:BATCH])
        started = time.perf_counter()
        for step in range(steps):
            model.train_on_batch(x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH])
    return steps * BATCH * LENGTH / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="float32", help="comma-separated: float32, bfloat16")
    args = parser.parse_args()
    config = ModelConfig(units=args.units, layers=args.layers, embedding=args.embedding, dropout=0.2)
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
                ours = melody_step_rate(cache, config, precision, folder)
                keras.mixed_precision.set_global_policy(policy)
                bare = bare_step_rate(config, vocabulary, None)
                theirs = bare_step_rate(config, vocabulary,
                                        lambda units, name: keras.layers.LSTM(units, return_sequences=True,
                                                                              name=name), fit=True)
                keras.mixed_precision.set_global_policy("float32")
                print(f"{precision:>9} {ours:13,.0f} {bare:10,.0f} {theirs:15,.0f} {ours / bare:11.2f} "
                      f"{ours / theirs:12.2f}", flush=True)


if __name__ == "__main__":
    main()
