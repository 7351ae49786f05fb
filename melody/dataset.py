"""Training data from a token cache: a split by file, random windows, transposition, tf.data.

* The split is by file (piece): no file gives tokens to both sides. It is fixed
  by the random seed.
* Training windows of ``seq_len + 1`` tokens start anywhere inside a run of
  consecutive training pieces (a window may run from one piece into the next,
  as a piece ends with End and the next begins with Begin). Each batch is drawn
  from a generator seeded by (seed, epoch, step), so a resumed run sees exactly
  the batches an uninterrupted run would.
* Each training window is transposed by a random number of semitones that keeps
  all its pitched notes inside 0..127 (drum notes stay).
* Validation windows are fixed: consecutive, non-overlapping, over the
  validation pieces, so every validation token is predicted once.

Tokens are read from the memory-mapped cache one batch at a time: memory stays
bounded by the batch, not the corpus.
"""

from __future__ import annotations

import numpy as np

from melody.corpus import TokenCache


def split_pieces(count: int, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training piece indices, validation piece indices), sorted; at least one piece on each side
    when ``val_split`` > 0 and there are two pieces or more; none for validation when it is 0."""
    order = np.random.default_rng(seed).permutation(count)
    validation = 0 if val_split <= 0 else min(count - 1, max(1, round(count * val_split)))
    return np.sort(order[validation:]), np.sort(order[:validation])


def segments(cache: TokenCache, pieces: np.ndarray) -> list[tuple[int, int]]:
    """Token ranges [start, end) covering ``pieces``, adjacent pieces merged into one range."""
    ranges: list[tuple[int, int]] = []
    for piece in pieces:
        start, end = int(cache.offsets[piece]), int(cache.offsets[piece + 1])
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


class WindowSampler:
    """Random training windows of ``seq_len + 1`` tokens from ``segments`` of ``cache``."""

    def __init__(self, cache: TokenCache, ranges: list[tuple[int, int]], seq_len: int, max_transpose: int = 0):
        self.cache, self.seq_len, self.max_transpose = cache, seq_len, max_transpose
        usable = [(start, end) for start, end in ranges if end - start > seq_len]
        self.starts = np.array([start for start, _ in usable], dtype=np.int64)
        self.counts = np.array([end - start - seq_len for start, end in usable], dtype=np.int64)
        self.cumulative = np.cumsum(self.counts)
        self.tokens_total = sum(end - start for start, end in ranges)

    @property
    def windows(self) -> int:
        """How many distinct windows there are (0: too few tokens)."""
        return int(self.cumulative[-1]) if len(self.cumulative) else 0

    def batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """(batch_size, seq_len + 1) int32 token windows, transposed at random."""
        picks = rng.integers(0, self.windows, size=batch_size)
        segment = np.searchsorted(self.cumulative, picks, side="right")
        before = self.cumulative[segment] - self.counts[segment]
        first = self.starts[segment] + (picks - before)
        index = first[:, None] + np.arange(self.seq_len + 1)[None, :]
        tokens = np.asarray(self.cache.tokens[index], dtype=np.int32)
        if self.max_transpose:
            tokens = self._transpose(tokens, np.asarray(self.cache.drums[index]), rng)
        return tokens

    def _transpose(self, tokens: np.ndarray, drums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shift each window's pitched notes by a random amount that keeps them inside 0..127."""
        tokenizer = self.cache.tokenizer
        pitched = (tokens >= tokenizer.note) & (tokens < tokenizer.note + 128) & ~drums
        pitches = tokens - tokenizer.note
        low = np.where(pitched, pitches, 127).min(axis=1)
        high = np.where(pitched, pitches, 0).max(axis=1)
        down = np.minimum(self.max_transpose, low)      # how far each window may go down ...
        up = np.minimum(self.max_transpose, 127 - high)  # ... and up
        shift = np.floor(rng.random(len(tokens)) * (down + up + 1)).astype(np.int32) - down
        return tokens + np.where(pitched, shift[:, None], 0)


def validation_windows(cache: TokenCache, ranges: list[tuple[int, int]], seq_len: int,
                       max_windows: int = 2048) -> np.ndarray:
    """(windows, seq_len + 1) int32: consecutive windows overlapping by one token (the next input)."""
    windows = []
    for start, end in ranges:
        for first in range(start, end - seq_len, seq_len):
            windows.append(np.asarray(cache.tokens[first:first + seq_len + 1], dtype=np.int32))
            if len(windows) == max_windows:
                return np.stack(windows)
    return np.stack(windows) if windows else np.zeros((0, seq_len + 1), dtype=np.int32)


def training_dataset(sampler: WindowSampler, batch_size: int, steps: int, seed: int, epoch: int,
                     first_step: int = 0):
    """A tf.data pipeline of ``steps`` (inputs, targets) batches for ``epoch``, prefetched."""
    import tensorflow as tf

    length = sampler.seq_len

    def make(step):
        rng = np.random.default_rng([seed, epoch, int(step)])
        window = sampler.batch(rng, batch_size)
        return window[:, :-1], window[:, 1:]

    def load(step):
        inputs, targets = tf.numpy_function(make, [step], (tf.int32, tf.int32), stateful=False)
        inputs.set_shape((batch_size, length))
        targets.set_shape((batch_size, length))
        return inputs, targets

    return tf.data.Dataset.range(first_step, steps).map(load).prefetch(tf.data.AUTOTUNE)
