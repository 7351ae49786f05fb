"""Training throughput: melody's LSTM (hoisted input projection, hand-written backward pass)
against the same-size model built on ``keras.layers.LSTM``, side by side in one process.

    python benchmarks/train_throughput.py [--units 512] [--layers 2] [--steps 12] [--precision float32,bfloat16]

Prints tokens/s for both at batch 64 x 128 tokens and 8 x 64, and the ratio, once per
precision (the same Keras policy on both sides: ``mixed_bfloat16`` for bfloat16), with the
CPU's bfloat16 flags. The two models are measured in alternating rounds so that drift in
machine load falls on both alike. Where the CPU has no native bfloat16 it is emulated,
and slower: that row shows why melody's ``--precision auto`` picks float32 there.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from melody.model import ModelConfig, build_model  # noqa: E402

VOCABULARY = 400  # the size our measurements used; melody's own vocabulary is 608 (most of it rare)


def keras_lstm(units, name):
    return keras.layers.LSTM(units, return_sequences=True, name=name)


def compiled(config, layer):
    model = build_model(config, VOCABULARY, **({"recurrent_layer": layer} if layer else {}))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def tokens_per_second(model, batch, length, steps, rng):
    x = rng.integers(0, VOCABULARY, size=(batch, length)).astype("int32")
    y = rng.integers(0, VOCABULARY, size=(batch, length)).astype("int32")
    model.train_on_batch(x, y)  # trace and warm up
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch * length / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="float32,bfloat16", help="comma-separated: float32, bfloat16")
    args = parser.parse_args()
    config = ModelConfig(units=args.units, layers=args.layers, embedding=args.embedding, dropout=0.0, lookback=(),
                         ahead=False)  # the cell against the cell: no lookback or ahead inputs on either side
    from melody.distribute import native_bfloat16

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, keras {keras.__version__}, "
          f"{args.layers} x {args.units} units, embedding {args.embedding}, vocabulary {VOCABULARY}; "
          f"native bfloat16: {native_bfloat16() or 'none (emulated)'}")
    print(f"{'precision':>9} {'batch x tokens':>15} {'melody tok/s':>13} {'keras LSTM tok/s':>17} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for precision in args.precision.split(","):
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
        for batch, length in ((64, 128), (8, 64)):
            ours, theirs = compiled(config, None), compiled(config, keras_lstm)
            ours_rates, their_rates = [], []
            for _ in range(args.rounds):
                ours_rates.append(tokens_per_second(ours, batch, length, args.steps, rng))
                their_rates.append(tokens_per_second(theirs, batch, length, args.steps, rng))
            best_ours, best_theirs = max(ours_rates), max(their_rates)
            print(f"{precision:>9} {f'{batch} x {length}':>15} {best_ours:13,.0f} {best_theirs:17,.0f} "
                  f"{best_ours / best_theirs:6.2f}", flush=True)
    keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":
    main()
