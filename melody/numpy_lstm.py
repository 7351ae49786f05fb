"""The trained network run in NumPy, one token at a time: what ``melody generate`` samples from.

Training needs TensorFlow (``melody.cell``, ``melody.model``); running a trained
network forward does not. Importing TensorFlow alone takes 3-6 s, far longer than
sampling eight bars, so generation reads the saved weights (``bundle.load_weights``)
and steps the same network here, in plain NumPy:

    embedding    x_t = E[token]
    each layer   z = x_t W + b + h U, then the LSTM cell's gates exactly as ``melody.cell`` defines them:
                 input_gate = sigmoid(z_i), forget_gate = sigmoid(z_f), candidate = tanh(z_g),
                 output_gate = sigmoid(z_o), c = forget_gate * c + input_gate * candidate,
                 h = output_gate * tanh(c); the next layer's x_t is this h
    logits       h W_out + b_out of the last layer

The structured model (``lookback`` distances, ``melody.cell.Lookback`` and ``Repeat``) adds,
per token, what ``Lookback`` computes over a whole sequence, here kept up to date one
token at a time (``remember``): the first layer's z gains matched_k W_matched, and
the logits are mixed with exp(s_k), s_k = h W_repeat + b_repeat, at the token repeat_at_k
(what followed the token k bars ago).

``melody.cell`` is the definition; this is a second implementation of the same
step, and ``tests/test_generate.py`` pins the two together (the same logits as the
Keras model, to 1e-5, on real sequences). Dropout is not applied: it is off at
inference.

For speed the first layer's x_t W + b is looked up per token (precomputed for the
whole vocabulary), and a deeper layer's two products are one: [x_t, h] [W; U]. Each kernel a
step multiplies by is kept twice (``Kernel``), as W for one row and as Wᵀ for several: OpenBLAS
computes the same numbers either way, fastest in those two layouts.

``NumpyLSTM`` has the prime/step protocol ``melody.sampler`` samples from.

The products run in NumPy's OpenBLAS, on as many threads as the machine has cores free
(``spare_threads``, around every ``melody.generate.generate``): on an idle machine of 2 cores two
threads are faster (2 x 512, 32 rows: 82 against 51 GFLOP/s), beside a training run one is (a
chorale's 8 bars in 0.9 s against 2.9 s with two).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
from pathlib import Path

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written through tanh so that no value overflows."""
    return 0.5 * np.tanh(0.5 * z) + 0.5


def lstm_step(z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cell's gates from z = x W + b + h U (gate order input, forget, candidate, output): new (h, c)."""
    units = c.shape[-1]
    input_gate = sigmoid(z[..., :units])
    forget_gate = sigmoid(z[..., units:2 * units])
    candidate = np.tanh(z[..., 2 * units:3 * units])
    output_gate = sigmoid(z[..., 3 * units:])
    c = forget_gate * c + input_gate * candidate
    h = output_gate * np.tanh(c)
    return h, c


class Kernel:
    """A weight matrix W (in, out) the step multiplies by, kept twice: OpenBLAS multiplies one row fastest by W as
    stored, several rows by a contiguous Wᵀ, as (Wᵀ xᵀ)ᵀ. A 2 x 512 step's three products: one row 250 us against
    290 with Wᵀ; 32 rows 1,250 us against 1,520 with W (BENCHMARKS.md, "Sampling"). The numbers are the same."""

    def __init__(self, plain: np.ndarray):
        self.plain, self.transposed = plain, np.ascontiguousarray(plain.T)

    def times(self, x: np.ndarray) -> np.ndarray:
        """x W: x (rows, in) -> (rows, out)."""
        return x @ self.plain if len(x) == 1 else (self.transposed @ x.T).T


class NumpyLSTM:
    """The ``network`` (``melody.model.Network``) from its named weights (``bundle.load_weights``); with
    lookback also the ids of the bar lines, ``bar_tokens``."""

    def __init__(self, network, weights: dict[str, np.ndarray], bar_tokens=()):
        first, *deeper = [layer.name for layer in network.recurrent()]
        embedding = weights["embedding"]
        self.units = network.config.units
        self.lookback = tuple(network.config.lookback)
        self.is_bar = np.zeros(len(embedding), bool)
        self.is_bar[list(bar_tokens)] = True
        if self.lookback and not self.is_bar.any():
            raise ValueError("a lookback model needs the ids of the bar lines")
        width, distances = embedding.shape[1], len(self.lookback)
        # The rows of the first kernel past the embedding's take the lookback's ``matched``, then the ahead
        # features (``melody.ahead``; none for a network without them).
        self.matched_kernel = weights[f"{first}/kernel"][width:width + distances]
        self.ahead_kernel = weights[f"{first}/kernel"][width + distances:]
        self.repeat = (weights["repeat/kernel"], weights["repeat/bias"]) if self.lookback else None
        # First layer: x_t W + b for every token of the vocabulary, looked up per step.
        self.first_projection = embedding @ weights[f"{first}/kernel"][:width] + weights[f"{first}/bias"]
        self.first_recurrent = Kernel(weights[f"{first}/recurrent_kernel"])
        # Deeper layers: one product of [x_t, h] with [W; U].
        self.stacked = [(Kernel(np.concatenate([weights[f"{name}/kernel"], weights[f"{name}/recurrent_kernel"]])),
                         weights[f"{name}/bias"]) for name in deeper]
        self.logits_kernel, self.logits_bias = Kernel(weights["logits/kernel"]), weights["logits/bias"]

    def prime(self, tokens: np.ndarray, ahead: np.ndarray | None = None) -> tuple[np.ndarray, list]:
        """tokens (time,) -> (logits after the last token (1, vocabulary), state: [(h, c)] per layer); ``ahead``:
        float32 (time, ahead.WIDTH) features of the tokens (None: zeros). Each layer's input products for all
        steps are one matrix product before its recurrence."""
        tokens = np.asarray(tokens, dtype=np.intp)
        if tokens.ndim != 1 or not len(tokens):
            raise ValueError("prime needs a non-empty sequence of tokens")
        projected, state = self._told(self.first_projection[tokens], ahead), []
        recurrent = self.first_recurrent.plain
        if self.lookback:
            history, matched, repeat_at = recall(tokens, self.is_bar, self.lookback)
            projected = projected + matched @ self.matched_kernel
        # [W; U] split back into views: a deeper layer's W is its first ``units`` rows.
        deeper = [(stacked.plain[:self.units], stacked.plain[self.units:], bias) for stacked, bias in self.stacked]
        for kernel, next_recurrent, bias in [*deeper, (None, None, None)]:
            h = c = np.zeros((1, self.units), np.float32)
            outputs = np.empty((len(tokens), self.units), np.float32)
            for t in range(len(tokens)):
                h, c = lstm_step(projected[t:t + 1] + h @ recurrent, c)
                outputs[t] = h[0]
            state.append((h, c))
            if kernel is not None:  # the next layer's inputs, all steps in one product
                projected, recurrent = outputs @ kernel + bias, next_recurrent
        if self.lookback:
            return self._logits(h, repeat_at), [*state, history]
        return self._logits(h, None), state

    def step(self, tokens: np.ndarray, state: list, ahead: np.ndarray | None = None,
             returns: np.ndarray | None = None) -> tuple[np.ndarray, list]:
        """One token per row (batch,) through the network, carrying each layer's (h, c) (and, with lookback,
        the tokens so far: a state is stepped once, its history grows in place): (logits, new state).
        ``ahead``: float32 (batch, ahead.WIDTH), what each row's token is told (None: nothing). ``returns``:
        float32 (distances,), nats added to each lookback distance's repeat score s_k (None: the model's own)."""
        repeat_at = None
        if self.lookback:
            *state, history = state
            history, matched, repeat_at = remember(history, tokens, self.is_bar, self.lookback)
        (h, c), *deeper = state
        projected = self._told(self.first_projection[tokens], ahead)
        if self.lookback:
            projected = projected + matched @ self.matched_kernel
        h, c = lstm_step(projected + self.first_recurrent.times(h), c)
        new_state = [(h, c)]
        for (stacked, bias), (h_before, c_before) in zip(self.stacked, deeper):
            h, c = lstm_step(stacked.times(np.concatenate([h, h_before], axis=1)) + bias, c_before)
            new_state.append((h, c))
        return self._logits(h, repeat_at, returns), new_state + ([history] if self.lookback else [])

    def _told(self, projected: np.ndarray, ahead: np.ndarray | None) -> np.ndarray:
        """The first layer's input product with the ahead features' share added (nothing for zeros)."""
        if ahead is None or not len(self.ahead_kernel) or not np.any(ahead):
            return projected
        return projected + np.asarray(ahead, np.float32) @ self.ahead_kernel

    def _logits(self, h: np.ndarray, repeat_at: np.ndarray | None, returns: np.ndarray | None = None) -> np.ndarray:
        """h W_out + b_out, mixed (with lookback) with exp(s_k) at each row's token ``repeat_at_k`` (s_k raised by
        ``returns``, if given)."""
        logits = self.logits_kernel.times(h) + self.logits_bias
        if repeat_at is None:
            return logits
        scores = h @ self.repeat[0] + self.repeat[1]
        if returns is not None:
            scores = scores + returns
        row, k = np.nonzero(repeat_at >= 0)
        np.logaddexp.at(logits, (row, repeat_at[row, k]), scores[row, k])  # one token twice: mixed in twice
        return logits


def empty_history(distances: int, batch: int = 1, capacity: int = 256) -> tuple:
    """No tokens yet: (tokens (batch, capacity), bar line places (batch, capacity), length (batch,),
    bar lines so far (batch,)); ``remember`` grows it."""
    return (np.zeros((batch, capacity), np.int32), np.zeros((batch, capacity), np.int64),
            np.zeros(batch, np.int64), np.zeros(batch, np.int64))


def recall(tokens: np.ndarray, is_bar: np.ndarray, distances) -> tuple:
    """``remember`` over a whole sequence (time,) at once, as ``melody.cell.Lookback`` computes it: (the history
    after its last token (batch 1), matched float32 (time, K) of every token, ahead (1, K) of the last one)."""
    tokens = np.asarray(tokens, np.intp)
    length, places = len(tokens), np.arange(len(tokens))
    opened = is_bar[tokens]
    bar = np.cumsum(opened) - 1                                          # which bar line each token follows
    lines = np.append(places[opened], length)                            # bar line j's place (length: none)

    def line(j):
        return lines[np.minimum(np.maximum(j, 0), len(lines) - 1)]

    back = bar[:, None] - np.asarray(distances)[None, :]
    there = back >= 0
    aligned = line(back) + (places - line(bar))[:, None]                 # same place, k bars ago
    end = line(back + 1)                                                 # the bar line closing that bar
    same = tokens[np.minimum(np.maximum(aligned, 0), length - 1)] == tokens[:, None]
    matched = (there & (aligned <= end) & same).astype(np.float32)
    following = there[-1:] & (aligned[-1:] + 1 <= end[-1:])
    ahead = np.where(following, tokens[np.minimum(np.maximum(aligned[-1:] + 1, 0), length - 1)], -1)
    capacity = max(256, 2 * length)
    buffer, line_places = np.zeros((1, capacity), np.int32), np.zeros((1, capacity), np.int64)
    buffer[0, :length], line_places[0, :int(opened.sum())] = tokens, places[opened]
    history = (buffer, line_places, np.array([length], np.int64), np.array([int(opened.sum())], np.int64))
    return history, matched, ahead


def remember(history: tuple, tokens: np.ndarray, is_bar: np.ndarray, distances) -> tuple:
    """Append one token per row (batch,) to ``history``; returns (history, matched float32 (batch, K),
    ahead int (batch, K), -1: nothing there), as ``melody.cell.Lookback`` defines them for that token."""
    buffer, lines, length, bars = history
    rows, place = np.arange(len(tokens)), int(length[0])
    if place == buffer.shape[1]:  # full: double (writes stay in place otherwise)
        buffer = np.concatenate([buffer, np.zeros_like(buffer)], axis=1)
    buffer[:, place] = tokens
    opened = is_bar[tokens]
    if opened.any():
        if bars.max() == lines.shape[1]:
            lines = np.concatenate([lines, np.zeros_like(lines)], axis=1)
        lines[rows[opened], bars[opened]] = place
    bars = bars + opened
    bar = bars - 1
    start = lines[rows, np.maximum(bar, 0)]
    back = bar[:, None] - np.asarray(distances)[None, :]              # (batch, K): the bar k bars ago
    there, column = back >= 0, rows[:, None]
    aligned = lines[column, np.maximum(back, 0)] + (place - start)[:, None]
    end = lines[column, np.maximum(back + 1, 0)]                      # the bar line closing that bar
    same = buffer[column, np.minimum(np.maximum(aligned, 0), place)] == tokens[:, None]
    matched = (there & (aligned <= end) & same).astype(np.float32)
    following = there & (aligned + 1 <= end)
    ahead = np.where(following, buffer[column, np.minimum(np.maximum(aligned + 1, 0), place)], -1)
    return (buffer, lines, length + 1, bars), matched, ahead


def blas_threads(count: int | None = None) -> int:
    """The threads OpenBLAS gives NumPy's matrix products, set to ``count`` first when given; 0 where NumPy's BLAS
    is not an OpenBLAS found in this process (another BLAS, or a system without /proc): nothing is changed."""
    found = _openblas()
    if found is None:
        return 0
    set_threads, get_threads = found
    if count:
        set_threads(int(count))
    return int(get_threads())


def spare_cores() -> int:
    """The cores the last minute's load average leaves free, at least one (all of them where it is unknown)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, round(cores - load)))


@contextlib.contextmanager
def spare_threads():
    """Within the block, OpenBLAS runs NumPy's products on ``spare_cores`` threads, then as before. Its threads
    wait for each other spinning, so beside another busy process (a training run) two threads made
    ``melody generate`` 3-6x slower than one; on an idle machine two are faster (BENCHMARKS.md, "Sampling")."""
    before = blas_threads()
    if before:
        blas_threads(spare_cores())
    try:
        yield
    finally:
        if before:
            blas_threads(before)


@functools.cache
def _openblas():
    """(set, get) thread-count functions of the OpenBLAS NumPy loaded (NumPy's wheels bundle one whose symbols
    carry a prefix and a suffix), or None."""
    try:
        maps = Path("/proc/self/maps").read_text(errors="replace")
    except OSError:
        return None
    for path in dict.fromkeys(re.findall(r"(/\S*openblas\S*\.so\S*)", maps)):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", "")):
            try:
                set_threads = getattr(library, f"{prefix}_set_num_threads{suffix}")
                get_threads = getattr(library, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            set_threads.argtypes, get_threads.restype = [ctypes.c_int], ctypes.c_int
            return set_threads, get_threads
    return None
