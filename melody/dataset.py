"""Training data from a token cache: a split by file, random windows, transposition, tf.data.

* The split is by file (piece): no file gives tokens to both sides, and a tune held
  twice (the same first 24 notes, under two names or in two keys) falls on one side.
  It is fixed by the random seed.
* A training window of ``seq_len + 1`` tokens is a piece's header (its key and
  tracks, ``Tokenizer.header_length``) followed by that piece's tokens from a
  random place in its body on; a window may run past the piece's End into the
  pieces after it. So every window says what key it is in and what each track
  plays, as a primer does when generating. Each batch is drawn from a generator
  seeded by (seed, epoch, step), so a resumed run sees exactly the batches an
  uninterrupted run would.
* Each training window is transposed by a random number of semitones that keeps
  all its pitched notes inside 0..127 (drum notes stay, the key moves along).
* Validation windows are fixed: each validation piece's header followed by
  consecutive, non-overlapping stretches of its body (the last running on into
  the next validation piece).

Tokens are read from the memory-mapped cache one batch at a time: memory stays
bounded by the batch, not the corpus.
"""

from __future__ import annotations

import numpy as np

from melody import ahead
from melody.corpus import TokenCache


def split_pieces(count: int, val_split: float, seed: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(training piece indices, validation piece indices), sorted; at least one piece on each side
    when ``val_split`` > 0 and there are two pieces or more; none for validation when it is 0.
    ``groups`` (one label per piece, e.g. ``tune_fingerprints``): pieces with the same label fall on the
    same side (a tune a collection holds twice under two names). Without it every piece is its own group."""
    numbers: dict = {}  # each label's group number, in the order of its first piece
    group = np.arange(count) if groups is None else np.array([numbers.setdefault(g, len(numbers)) for g in groups],
                                                             dtype=np.int64)
    order = np.random.default_rng(seed).permutation(int(group.max()) + 1 if count else 0)
    wanted = 0 if val_split <= 0 else min(count - 1, max(1, round(count * val_split)))
    sizes = np.bincount(group, minlength=len(order))[order]
    held = order[:int(np.searchsorted(np.cumsum(sizes), wanted) + 1)] if wanted else order[:0]
    if wanted and len(held) == len(order):
        held = held[:-1]  # never every piece
    validation = np.isin(group, held)
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def tune_fingerprints(cache: TokenCache, notes: int = 24) -> list[tuple]:
    """Per piece of ``cache``: its first ``notes`` notes as steps from the first one's pitch, with its number
    of tracks, so that a tune held twice (under two names, or in another key) gets one label. Pieces too
    short to tell (under 8 notes) keep a label of their own."""
    pitch_of = cache.tokenizer.token_table()["pitch_of"]
    labels = []
    for index in range(len(cache)):
        piece = np.asarray(cache.piece(index))
        pitches = pitch_of[piece[pitch_of[piece] >= 0][:notes]]
        tracks = len(cache.tokenizer.tracks(piece))
        labels.append((tracks, *(pitches - pitches[0])) if len(pitches) >= 8 else ("piece", index))
    return labels


class Pieces:
    """Where each of some pieces of a cache starts, its header length and where its run of
    consecutive chosen pieces ends (a window may read on to there)."""

    def __init__(self, cache: TokenCache, pieces: np.ndarray):
        pieces = np.asarray(pieces, dtype=np.int64)
        self.starts = cache.offsets[pieces].astype(np.int64)
        self.ends = cache.offsets[pieces + 1].astype(np.int64)
        self.headers = np.array([cache.tokenizer.header_length(cache.tokens[start:end])
                                 for start, end in zip(self.starts, self.ends)], dtype=np.int64)
        run_end = self.ends.copy()  # the end of the run of adjacent pieces each piece belongs to
        for index in range(len(pieces) - 2, -1, -1):
            if self.ends[index] == self.starts[index + 1]:
                run_end[index] = run_end[index + 1]
        self.run_ends = run_end

    @property
    def tokens_total(self) -> int:
        return int((self.ends - self.starts).sum())


class WindowSampler:
    """Random training windows of ``seq_len + 1`` tokens (header + body stretch) from ``pieces``; with ``ahead``
    also what each window's tokens are told of the music ahead (``melody.ahead``)."""

    def __init__(self, cache: TokenCache, pieces: np.ndarray, seq_len: int, max_transpose: int = 0,
                 ahead: bool = False):
        self.cache, self.seq_len, self.max_transpose, self.ahead = cache, seq_len, max_transpose, ahead
        self.table = cache.tokenizer.token_table() if ahead else None
        self.pieces = Pieces(cache, pieces)
        p = self.pieces
        body_starts = p.starts + p.headers
        # A window from body position s of piece i needs s + (seq_len + 1 - header) <= the run's end.
        self.counts = np.clip(np.minimum(p.ends, p.run_ends - (seq_len + 1 - p.headers) + 1) - body_starts, 0, None)
        self.counts = np.where(p.headers < seq_len, self.counts, 0)
        self.cumulative = np.cumsum(self.counts)
        self.tokens_total = p.tokens_total

    @property
    def windows(self) -> int:
        """How many distinct windows there are (0: too few tokens)."""
        return int(self.cumulative[-1]) if len(self.cumulative) else 0

    def positions(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(batch_size, seq_len + 1) int64 positions in the cache of random windows, and the index (into
        ``pieces``) of the piece each window starts in."""
        picks = rng.integers(0, self.windows, size=batch_size)
        piece = np.searchsorted(self.cumulative, picks, side="right")
        offset = picks - (self.cumulative[piece] - self.counts[piece])
        p, length = self.pieces, self.seq_len + 1
        rows = []
        for index, into in zip(piece, offset):
            header = p.headers[index]
            body = p.starts[index] + header + into
            rows.append(np.concatenate([np.arange(p.starts[index], p.starts[index] + header),
                                        np.arange(body, body + length - header)]))
        return np.stack(rows), piece

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray | None,
                                                                        np.ndarray | None]:
        """(batch_size, seq_len + 1) int32 token windows, transposed at random; with ``ahead``, float32
        (batch_size, seq_len + 1, ahead.WIDTH) features for them and bool (batch_size, seq_len + 1): the
        tokens that play kept notes (``ahead.given``; else None, None)."""
        index, pieces = self.positions(rng, batch_size)
        tokens = np.asarray(self.cache.tokens[index], dtype=np.int32)
        shifts = np.zeros(len(tokens), np.int64)
        if self.max_transpose:
            tokenizer, drums = self.cache.tokenizer, np.asarray(self.cache.drums[index])
            down, up = tokenizer.transpose_room(tokens, drums)
            down, up = np.minimum(self.max_transpose, down), np.minimum(self.max_transpose, up)
            shifts = np.floor(rng.random(len(tokens)) * (down + up + 1)).astype(np.int64) - down
            tokens = tokenizer.transpose_windows(tokens, drums, shifts)
        if not self.ahead:
            return tokens, None, None
        features, given = zip(*[self._features(rng, row, piece, shift) for row, piece, shift in
                                zip(index, pieces, shifts)])
        return tokens, np.stack(features), np.stack(given)

    def _features(self, rng: np.random.Generator, positions: np.ndarray, piece: int,
                  shift: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``melody.ahead`` features of one window (cache ``positions``) starting in ``piece``, and which of its
        tokens play kept notes."""
        start, end, header = self.pieces.starts[piece], self.pieces.ends[piece], self.pieces.headers[piece]
        tokenizer, tokens = self.cache.tokenizer, np.asarray(self.cache.tokens[start:end])
        tracks = tokenizer.tracks(tokens)
        kept, tell_ending = ahead.choose(rng, tracks)
        whole = ahead.piece_features(tokens, self.table, int(header), [drum for drum, _ in tracks], kept,
                                     tell_ending)
        inside = positions < end  # a window running on past the piece's End is told nothing there
        features = np.zeros((len(positions), ahead.WIDTH), np.float32)
        features[inside] = whole[positions[inside] - start]
        given = np.zeros(len(positions), bool)
        given[inside] = ahead.given(tokens, self.table, int(header), kept)[positions[inside] - start]
        return ahead.transposed(features, int(shift)), given


def validation_windows(cache: TokenCache, pieces: np.ndarray, seq_len: int, max_windows: int = 2048) -> np.ndarray:
    """(windows, seq_len + 1) int32: each piece's header, then its body in consecutive stretches that
    do not overlap (the last one running on into the following pieces)."""
    p, windows = Pieces(cache, pieces), []
    for start, end, header, run_end in zip(p.starts, p.ends, p.headers, p.run_ends):
        width = seq_len + 1 - header
        if width < 2:
            continue
        for first in range(start + header, end - 1, width):
            if first + width > run_end:
                break
            index = np.concatenate([np.arange(start, start + header), np.arange(first, first + width)])
            windows.append(np.asarray(cache.tokens[index], dtype=np.int32))
            if len(windows) == max_windows:
                return np.stack(windows)
    return np.stack(windows) if windows else np.zeros((0, seq_len + 1), dtype=np.int32)


def training_dataset(sampler: WindowSampler, batch_size: int, steps: int, seed: int, epoch: int,
                     first_step: int = 0, rows: list[slice] | None = None):
    """A tf.data pipeline of (inputs, targets) batches for ``epoch``'s steps ``first_step`` to ``steps``,
    prefetched; for a sampler with ``ahead``, (inputs, targets, weights): inputs (tokens, ahead features),
    weights 0 for a target that plays a kept note (``ahead.given``: not asked of the network), else 1. Each step's
    global batch of ``batch_size`` windows is drawn whole; ``rows`` (default: all) picks the shares of it this
    process's replicas train on, one element per replica in turn."""
    import tensorflow as tf

    from melody.ahead import WIDTH

    rows = rows or [slice(0, batch_size)]
    shape = (len(rows), rows[0].stop - rows[0].start, sampler.seq_len)

    def make(step):
        rng = np.random.default_rng([seed, epoch, int(step)])
        window, features, given = sampler.batch(rng, batch_size)
        shares = np.stack([window[part] for part in rows])
        if features is None:
            return shares[..., :-1], shares[..., 1:]
        weights = np.stack([~given[part] for part in rows])[..., 1:].astype(np.float32)
        return shares[..., :-1], np.stack([features[part] for part in rows])[..., :-1, :], shares[..., 1:], weights

    def load(step):
        if not sampler.ahead:
            inputs, targets = tf.numpy_function(make, [step], (tf.int32, tf.int32), stateful=False)
            inputs.set_shape(shape)
            targets.set_shape(shape)
            return inputs, targets
        inputs, features, targets, weights = tf.numpy_function(make, [step], (tf.int32, tf.float32, tf.int32,
                                                                              tf.float32), stateful=False)
        inputs.set_shape(shape)
        features.set_shape((*shape, WIDTH))
        targets.set_shape(shape)
        weights.set_shape(shape)
        return (inputs, features), targets, weights

    return tf.data.Dataset.range(first_step, steps).map(load).unbatch().prefetch(tf.data.AUTOTUNE)
