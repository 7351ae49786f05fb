"""A plain RNN, the LSTM and the lookback LSTM, compared like with like.

    python benchmarks/structure.py [--cache DIR] [--steps 1500] [--tunes 120]

Data: the default model's (the shipped folk songs and chorale soprano lines, melody
only, the same split: its 887 held-out files are held out here). ``--cache``: a
``melody prepare corpora/folk corpora/chorales --melody-only`` cache (made in a
temporary folder if not given). Three networks of about the same size (embedding 64):

    rnn        2 x 228 tanh units, no gates (``keras.layers.SimpleRNN``)   the article's starting point
    lstm       2 x 128 (``melody.cell.LSTM``)                               the gates
    lookback   2 x 128 with lookback 1, 2, 4, 8 bars (``melody.cell``)     the gates and the piece's past bars

each trained on the very same batches (32 x 128 tokens, Adam 0.002, gradients
clipped to norm 1, dropout 0.2, transposition as ``melody train``) for ``--steps`` steps.

Reported for each: held-out NLL (nats/token) and bits per note; the NLL by position
in 128-token windows (a network that remembers gets better later in the window);
how far back a change of one input token still moves the prediction (mean KL
divergence of the last position's distribution when the token d places back is
swapped for the one another window has there); and 16-bar continuations of
held-out folk tunes (``benchmarks/form.py``): distinct-bar ratio against the tunes'
own, longest copy from the training corpus.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from form import measure, summary_line, tunes  # noqa: E402
from melody.bundle import corpus_files, read_manifest  # noqa: E402
from melody.corpus import TokenCache, prepare  # noqa: E402
from melody.evaluate import model_nll  # noqa: E402
from melody.generate import DEFAULT_MODEL  # noqa: E402
from melody.model import ModelConfig, Network, build_model, load_keras, network_weights, parameter_count  # noqa: E402
from melody.numpy_lstm import NumpyLSTM  # noqa: E402
from melody.tokenizer import TokenizerConfig  # noqa: E402
from melody.train import TrainConfig, training_data  # noqa: E402

POSITIONS = ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128))
DISTANCES = (1, 2, 4, 8, 16, 32, 64, 96, 120)


class NumpyRNN:
    """The SimpleRNN network stepped in NumPy (prime/step, as ``melody.sampler`` wants):
    h = tanh(x W + h U + b) per layer, no gates."""

    def __init__(self, model):
        self.embedding = model.get_layer("embedding").embeddings.numpy()
        self.layers = [tuple(w.numpy() for w in layer.cell.weights) for layer in model.layers
                       if layer.name.startswith("lstm_")]
        self.logits = [w.numpy() for w in model.get_layer("logits").weights]

    def step(self, tokens, state):
        x, new = self.embedding[tokens], []
        for (kernel, recurrent, bias), h in zip(self.layers, state):
            x = np.tanh(x @ kernel + h @ recurrent + bias)
            new.append(x)
        return x @ self.logits[0] + self.logits[1], new

    def prime(self, tokens):
        state = [np.zeros((1, recurrent.shape[0]), np.float32) for _, recurrent, _ in self.layers]
        for token in tokens:
            logits, state = self.step(np.array([token]), state)
        return logits, state


def networks(vocabulary: int, bar_tokens) -> dict:
    keras = load_keras()

    def simple_rnn(units, name):
        return keras.layers.SimpleRNN(units, return_sequences=True, name=name)

    return {"rnn": build_model(dataclasses.replace(PLAIN, units=228), vocabulary, recurrent_layer=simple_rnn),
            "lstm": build_model(PLAIN, vocabulary),
            "lookback": build_model(LOOKBACK, vocabulary, bar_tokens=bar_tokens)}


PLAIN = ModelConfig(units=128, layers=2, embedding=64, dropout=0.2, lookback=())
LOOKBACK = dataclasses.replace(PLAIN, lookback=(1, 2, 4, 8))


def train_all(models: dict, data, steps: int, config: TrainConfig) -> dict:
    """Every model on the same batches; seconds per model."""
    keras = load_keras()
    seconds = {}
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=config.clip_norm),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        start = time.perf_counter()
        for step in range(steps):
            window = data.sampler.batch(np.random.default_rng([config.random_seed, 1, step]), config.batch_size)[0]
            loss = model.train_on_batch(window[:, :-1], window[:, 1:])
            if step % 250 == 0 or step == steps - 1:
                print(f"  {name} step {step}: loss {float(loss):.4f}", flush=True)
        seconds[name] = time.perf_counter() - start
    return seconds


def by_position(model, windows: np.ndarray) -> list[float]:
    """Mean NLL (nats/token) of the validation windows over each span of POSITIONS."""
    import tensorflow as tf

    losses = []
    for first in range(0, len(windows), 256):
        batch = windows[first:first + 256]
        logits = model(batch[:, :-1], training=False)
        losses.append(tf.nn.sparse_softmax_cross_entropy_with_logits(batch[:, 1:], logits).numpy())
    losses = np.concatenate(losses)
    return [float(losses[:, low:high].mean()) for low, high in POSITIONS]


def reach(model, windows: np.ndarray, rng: np.random.Generator) -> list[float]:
    """Mean KL(p || p') at each window's last position when the token DISTANCES places back is swapped for
    the one another window has there."""
    inputs = windows[:512, :-1]
    original = _log_softmax(model(inputs, training=False).numpy()[:, -1])
    result = []
    for distance in DISTANCES:
        changed = inputs.copy()
        place = inputs.shape[1] - 1 - distance
        changed[:, place] = inputs[rng.permutation(len(inputs)), place]
        moved = _log_softmax(model(changed, training=False).numpy()[:, -1])
        result.append(float((np.exp(original) * (original - moved)).sum(axis=1).mean()))
    return result


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=None)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--tunes", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cache_folder = args.cache or str(Path(scratch) / "cache")
        if args.cache is None:
            prepare([ROOT / "corpora" / "folk", ROOT / "corpora" / "chorales"], cache_folder,
                    TokenizerConfig(melody_only=True))
        cache = TokenCache(cache_folder)
        config = TrainConfig()
        data = training_data(cache, config)
        default = read_manifest(DEFAULT_MODEL)
        if [Path(name).name for name in data.names[1]] != [Path(name).name for name in corpus_files(DEFAULT_MODEL)[1]]:
            raise SystemExit("the cache's held-out files are not the default model's; prepare corpora/folk and "
                             "corpora/chorales with --melody-only")
        tokenizer = cache.tokenizer
        models = networks(len(tokenizer), tokenizer.bar_tokens())
        seconds = train_all(models, data, args.steps, config)
        validation = data.pieces[1]
        tokens = sum(len(piece) - 1 for piece in validation)
        notes = sum(int(tokenizer.is_note(piece).sum()) for piece in validation)
        windows = data.validation
        chosen = tunes(DEFAULT_MODEL, 8, 16, args.tunes)
        print(f"\n{args.steps} steps of {config.batch_size} x {config.seq_len} tokens; held out: {len(validation)} "
              f"files, {tokens:,} tokens, {notes:,} notes; {len(windows)} windows by position; {len(chosen)} tunes")
        for name, model in models.items():
            nats = model_nll(model, validation)
            print(f"\n{name}: {parameter_count(model):,} parameters, trained {seconds[name]:.0f} s")
            print(f"  held-out NLL {nats / tokens:.4f} nats/token, {nats / math.log(2) / notes:.3f} bits/note")
            print("  NLL by position " + ", ".join(f"{low}-{high - 1}: {value:.4f}" for (low, high), value
                                                  in zip(POSITIONS, by_position(model, windows))))
            print("  KL when the token d back changes " + ", ".join(
                f"d={d}: {value:.4f}" for d, value in zip(DISTANCES, reach(model, windows, np.random.default_rng(0)))))
            config = LOOKBACK if name == "lookback" else PLAIN
            network = NumpyRNN(model) if name == "rnn" else NumpyLSTM(
                Network(config, len(tokenizer)), network_weights(model, config), tokenizer.bar_tokens())
            manifest = dataclasses.replace(default, model_config=ModelConfig(lookback=()))
            for whole in (False, True):
                with tempfile.TemporaryDirectory() as folder:
                    result = measure(manifest, chosen, 8, 16, Path(folder), network=network, whole=whole)
                print("  " + summary_line(f"{name}, after {'the whole tune' if whole else '8 bars'}", result))


if __name__ == "__main__":
    main()
