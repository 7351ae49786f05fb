"""Sampling speed: melody's sampler (the trained LSTM stepped in NumPy, state carried) against the
sliding-window ``model.predict`` loop of many tutorials, side by side in one process, on the same
2 x 512 network.

    python benchmarks/sampling.py [--units 512] [--layers 2] [--tokens 512]

The network has random weights (speed does not depend on what it learned) and melody's own
608-token vocabulary; the primer is the first 100 tokens of a shipped folk song; sampling
keeps the meter and the note grammar as ``melody generate`` does but never stops early (no
bar limit), so every run draws exactly ``--tokens`` tokens. Also printed: the network step
alone (no masking or drawing), to show what the loop around it costs, and the lookback
model of the same size (``ModelConfig.lookback`` 1, 2, 4, 8 bars) against the plain one,
measured in alternating rounds (ratio of the medians; issue 14's bar: at least 0.70).

Sampling runs in float32 on every machine: NumPy has no bfloat16 matrix product, and a model
trained under bfloat16 saves float32 weights. The CPU's flags are printed with the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from melody.midi_read import read_midi  # noqa: E402
from melody.model import ModelConfig, Network, build_model, network_weights  # noqa: E402
from melody.numpy_lstm import NumpyLSTM  # noqa: E402
from melody.sampler import Sampler  # noqa: E402
from melody.tokenizer import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unknown"
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    return " ".join(flag if flag in flags else f"no {flag}" for flag in FLAGS)


def ours(sampler, primer, samples, tokens, rounds=3):
    allowed = np.ones(sampler.vocabulary, dtype=bool)
    primed = sampler.prime(primer)
    best = 0.0
    for seed in range(rounds):
        started = time.perf_counter()
        rows, _ = sampler.sample(primed, samples, allowed, tokens, 10**6, seed)
        best = max(best, sum(len(row) for row in rows) / (time.perf_counter() - started))
    return best


def steps_only(network, primer, samples, tokens, rounds=3):
    """The network's step alone, ``tokens`` times, for ``samples`` rows: tokens/s."""
    _, state = network.prime(primer)
    state = [tuple(np.repeat(part, samples, 0) for part in layer) for layer in state]
    token = np.full(samples, primer[-1])
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(tokens):
            _, state = network.step(token, state)
        best = max(best, samples * tokens / (time.perf_counter() - started))
    return best


def sliding_window(model, primer, tokens, window=100):
    """The tutorial pattern: predict on the last ``window`` tokens, sample, append, repeat."""
    sequence = list(primer)
    rng = np.random.default_rng(0)
    model.predict(np.array([sequence[-window:]]), verbose=0)  # warm up
    started = time.perf_counter()
    for _ in range(tokens):
        logits = model.predict(np.array([sequence[-window:]]), verbose=0)[0, -1]
        probabilities = np.exp(logits - logits.max())
        sequence.append(int(rng.choice(len(probabilities), p=probabilities / probabilities.sum())))
    return tokens / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--window-tokens", type=int, default=30, help="tokens for the slow sliding window")
    args = parser.parse_args()
    tokenizer = Tokenizer()
    vocabulary = len(tokenizer)
    plain_config = ModelConfig(args.units, args.layers, args.embedding, 0.0, lookback=())
    model = build_model(plain_config, vocabulary)
    network = NumpyLSTM(Network(plain_config, vocabulary), network_weights(model, plain_config))
    sampler = Sampler(network, tokenizer.token_table())
    lookback_config = ModelConfig(args.units, args.layers, args.embedding, 0.0)
    lookback = build_model(lookback_config, vocabulary, bar_tokens=tokenizer.bar_tokens())
    lookback_sampler = Sampler(NumpyLSTM(Network(lookback_config, vocabulary),
                                         network_weights(lookback, lookback_config), tokenizer.bar_tokens()),
                               tokenizer.token_table())
    primer = tokenizer.encode(read_midi(ROOT / "corpora" / "folk" / "altdeu10-1.mid"))[:100].astype(np.intp)
    print(f"# {platform.machine()}, {os.cpu_count()} cores, {cpu_flags()}; numpy {np.__version__}, "
          f"keras {keras.__version__}; {args.layers} x {args.units} units, embedding {args.embedding}, "
          f"vocabulary {vocabulary}, primer 100 tokens, float32")
    rows = []
    for samples in (1, 32):
        rows.append((f"melody sampler, {samples} sample(s)", ours(sampler, primer, samples, args.tokens)))
        rows.append((f"  (network step alone, {samples})", steps_only(network, primer, samples, args.tokens)))
    window = sliding_window(model, primer, args.window_tokens)
    print(f"{'method':<40} {'tokens/s':>10} {'x sliding window':>17}")
    for name, rate in rows:
        print(f"{name:<40} {rate:10,.0f} {rate / window:17,.0f}")
    print(f"{'sliding-window model.predict, 1 sample':<40} {window:10,.1f} {1:17,.0f}")
    print(f"\n{'same size, 5 alternating rounds':<40} {'plain':>10} {'lookback':>10} {'ratio':>7}")
    for samples in (1, 32):
        plain, looking = [], []
        for _ in range(5):
            plain.append(ours(sampler, primer, samples, args.tokens, rounds=1))
            looking.append(ours(lookback_sampler, primer, samples, args.tokens, rounds=1))
        plain, looking = float(np.median(plain)), float(np.median(looking))
        print(f"{f'{samples} sample(s), tokens/s':<40} {plain:10,.0f} {looking:10,.0f} {looking / plain:7.2f}")


if __name__ == "__main__":
    main()
