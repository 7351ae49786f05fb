"""Sampling speed: melody's sampler, 1 sample against 32, for three networks, with where the time goes;
and against the sliding-window ``model.predict`` loop of many tutorials. One process.

    python benchmarks/sampling.py [--tokens 512] [--window-tokens 20] [--threads N]

Networks: 2 x 256 and 2 x 512 (embedding 128 and 256, lookback 1, 2, 4, 8 bars, ahead inputs:
the default structure) with random weights (speed does not depend on what was learned), and
the shipped default model (melody/default_model). Vocabulary: melody's 608 tokens. Primer: the
first 100 tokens of a shipped folk song. Sampling keeps the meter and the note grammar as
``melody generate`` does but never stops early (no bar limit), so every run draws exactly
``--tokens`` tokens per sample; best of 3 runs.

Per network, side by side:

    sampler          Sampler.sample, 1 and 32 samples: tokens/s (32: in aggregate)
    step alone       NumpyLSTM.step, nothing around it (no masks, no draw)
    products alone   the step's three matrix products (first layer h U; second layer [x, h] [W; U];
                     logits h W_out), nothing else: the bound OpenBLAS puts on any loop here
    32 / 1           what a batch of 32 buys over one row, for each of the three

then, for 2 x 512, where the time of a sample goes (cProfile, by function: the network's
products and gates, the lookback's memory (``remember``), masks and bookkeeping (grammar, kept
notes, chords, pace), the draw, the loop itself).

``--threads N`` sets OpenBLAS's threads for the run (default: as NumPy starts, one per core).
Sampling runs in float32 on every machine: NumPy has no bfloat16 or int8 matrix product. The
CPU's flags are printed with the results.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from melody import ahead  # noqa: E402
from melody.bundle import read_manifest  # noqa: E402
from melody.generate import DEFAULT_MODEL, numpy_network  # noqa: E402
from melody.midi_read import read_midi  # noqa: E402
from melody.model import ModelConfig, Network  # noqa: E402
from melody.numpy_lstm import NumpyLSTM, blas_threads  # noqa: E402
from melody.sampler import Sampler  # noqa: E402
from melody.tokenizer import Tokenizer  # noqa: E402

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
BUCKETS = {"network: products and gates": ("numpy_lstm.py:step", "numpy_lstm.py:lstm_step", "numpy_lstm.py:sigmoid",
                                           "numpy_lstm.py:_logits", "numpy_lstm.py:_told"),
           "lookback memory (remember)": ("numpy_lstm.py:remember",),
           "draw (temperature, top-k/p, choice)": ("sampler.py:_draw",),
           "masks and bookkeeping": ("sampler.py:may", "sampler.py:_parallel", "sampler.py:played",
                                     "sampler.py:turn", "sampler.py:took", "sampler.py:steps_to_next",
                                     "sampler.py:pace_bias", "sampler.py:_lag", "sampler.py:upcoming")}


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unknown"
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split()}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    return model + ", " + " ".join(flag if flag in flags else f"no {flag}" for flag in FLAGS)


def random_network(config: ModelConfig, tokenizer: Tokenizer, seed: int = 0) -> NumpyLSTM:
    """The network of ``config`` with random weights (scaled as Glorot's), stepped in NumPy."""
    rng = np.random.default_rng(seed)
    network = Network(config, len(tokenizer))
    weights = {}
    for weight in network.weights():
        fan = sum(weight.shape[:1]) + sum(weight.shape[1:2]) if len(weight.shape) > 1 else 1
        scale = np.sqrt(6 / fan) if len(weight.shape) > 1 else 0.0
        weights[weight.name] = rng.uniform(-scale, scale, weight.shape).astype(np.float32)
    return NumpyLSTM(network, weights, tokenizer.bar_tokens())


def sampled(sampler, primer, samples, tokens, rounds=3):
    """Sampler.sample: the best tokens/s of ``rounds`` runs (all rows together)."""
    allowed = np.ones(sampler.vocabulary, dtype=bool)
    primed = sampler.prime(primer)
    best = 0.0
    for seed in range(rounds):
        started = time.perf_counter()
        rows, _ = sampler.sample(primed, samples, allowed, tokens, 10**6, seed)
        best = max(best, sum(len(row) for row in rows) / (time.perf_counter() - started))
    return best


def stepped(network, primer, samples, tokens, rounds=3):
    """The network's step alone, ``tokens`` times, for ``samples`` rows: tokens/s."""
    _, state = network.prime(primer)
    best = 0.0
    for _ in range(rounds):
        rows = _repeat(state, samples)
        token = np.full(samples, primer[-1])
        started = time.perf_counter()
        for _ in range(tokens):
            _, rows = network.step(token, rows)
        best = max(best, samples * tokens / (time.perf_counter() - started))
    return best


def multiplied(network, samples, tokens, rounds=3):
    """The step's three matrix products alone, ``tokens`` times, for ``samples`` rows: tokens/s."""
    units = network.units
    rng = np.random.default_rng(1)
    h, both = rng.standard_normal((samples, units), np.float32), rng.standard_normal((samples, 2 * units), np.float32)
    stacked = network.stacked[0][0]
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(tokens):
            network.first_recurrent.times(h), stacked.times(both), network.logits_kernel.times(h)
        best = max(best, samples * tokens / (time.perf_counter() - started))
    return best


def _repeat(state, samples):
    if isinstance(state, (list, tuple)):
        return type(state)(_repeat(part, samples) for part in state)
    return np.repeat(state, samples, axis=0)


def where_time_goes(sampler, primer, samples, tokens) -> dict[str, float]:
    """Shares of one sampling run's time by ``BUCKETS`` (the rest: the loop itself)."""
    profile = cProfile.Profile()
    allowed = np.ones(sampler.vocabulary, dtype=bool)
    primed = sampler.prime(primer)
    profile.enable()
    sampler.sample(primed, samples, allowed, tokens, 10**6, 0)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(entry[2] for entry in stats.values())  # own time of every function
    shares = {name: 0.0 for name in BUCKETS}
    for (path, _, function), entry in stats.items():
        where = f"{Path(path).name}:{function}"
        bucket = next((name for name, members in BUCKETS.items() if where in members), None)
        if bucket:
            shares[bucket] += entry[2] / total
    shares["the loop and the rest"] = 1 - sum(shares.values())
    return shares


def sliding_window(units, embedding, primer, tokens, window=100):
    """The tutorial pattern: predict on the last ``window`` tokens, sample, append, repeat (a Keras model of the
    plain LSTM of this size)."""
    from melody.model import build_model

    config = ModelConfig(units, 2, embedding, 0.0, lookback=(), ahead=False)
    model = build_model(config, len(Tokenizer()))
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
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--window-tokens", type=int, default=20, help="tokens for the slow sliding window")
    parser.add_argument("--threads", type=int, default=None, help="OpenBLAS threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        blas_threads(args.threads)
    tokenizer = Tokenizer()
    primer = tokenizer.encode(read_midi(ROOT / "corpora" / "folk" / "altdeu10-1.mid"))[:100].astype(np.intp)
    shipped = read_manifest(DEFAULT_MODEL)
    networks = {"2 x 256": random_network(ModelConfig(256, 2, 128, 0.0), tokenizer),
                "2 x 512": random_network(ModelConfig(512, 2, 256, 0.0), tokenizer),
                f"shipped ({shipped.model_config.layers} x {shipped.model_config.units})": numpy_network(shipped)}
    print(f"# {platform.machine()}, {os.cpu_count()} cores, {cpu_flags()}; numpy {np.__version__}, "
          f"OpenBLAS threads {blas_threads()}; vocabulary {len(tokenizer)}, primer 100 tokens, "
          f"{args.tokens} tokens per sample, float32, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"\n{'network':<20} {'':>16} {'1 row':>10} {'32 rows':>10} {'32 / 1':>7}")
    for name, network in networks.items():
        sampler = Sampler(network, tokenizer.token_table())
        for label, measure in (("sampler", lambda n: sampled(sampler, primer, n, args.tokens)),
                               ("step alone", lambda n: stepped(network, primer, n, args.tokens)),
                               ("products alone", lambda n: multiplied(network, n, args.tokens))):
            one, many = measure(1), measure(32)
            print(f"{name if label == 'sampler' else '':<20} {label:>16} {one:10,.0f} {many:10,.0f} "
                  f"{many / one:7.2f}")
    sampler = Sampler(networks["2 x 512"], tokenizer.token_table())
    print(f"\nwhere the time of sampling goes, 2 x 512 (cProfile, own time):")
    print(f"{'':<40} {'1 row':>8} {'32 rows':>8}")
    one, many = (where_time_goes(sampler, primer, n, args.tokens) for n in (1, 32))
    for bucket in one:
        print(f"{bucket:<40} {one[bucket]:8.0%} {many[bucket]:8.0%}")
    window = sliding_window(512, 256, primer, args.window_tokens)
    ours = sampled(sampler, primer, 1, args.tokens)
    print(f"\nsliding-window model.predict, 2 x 512 plain LSTM, 1 sample: {window:,.1f} tokens/s; melody's sampler "
          f"(2 x 512 with lookback and ahead) {ours:,.0f}: {ours / window:,.0f}x")


if __name__ == "__main__":
    main()
