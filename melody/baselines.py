"""What a model has to beat, and what it must not do: n-gram baselines and copy detection.

Token-level and numpy only (``metrics.py`` holds the score-level music metrics).
Pieces are token arrays that begin with Begin; a piece's first token is given,
every later token is predicted, and no context reaches into another piece (the
context before Begin is Pad).

* ``unigram_nll``: each token from its overall frequency, add-one smoothed.
* ``KneserNey``: interpolated Kneser-Ney n-grams (Chen & Goodman 1998)::

    P_n(w | h) = max(c(h w) - D_n, 0) / c(h)  +  D_n * N1+(h .) / c(h) * P_{n-1}(w | h')

  where h' is h without its oldest token, c are raw counts at the highest order
  and continuation counts (how many distinct tokens precede the n-gram) below
  it, N1+(h .) is how many distinct tokens follow h, D_n = n1 / (n1 + 2 n2) from
  the number of n-grams seen once and twice, and order 1 is interpolated with
  the uniform distribution over the vocabulary. A context never seen falls back
  to the next lower order whole. For every context the probabilities sum to 1.
  N-grams are packed into int64 keys (9 bits per token) and looked up with
  ``searchsorted``, so fitting 1.5 million tokens takes seconds.
* ``longest_copy``: the longest run of tokens a piece shares verbatim with a
  corpus, found by binary search on the length with rolling hashes.
"""

from __future__ import annotations

import math

import numpy as np

from melody.tokenizer import PAD

MAX_ORDER = 7  # an n-gram key packs ``order`` token codes into 63 bits: 9 bits a code at order 7


def token_counts(tokens: np.ndarray, vocabulary_size: int, chunk: int = 1 << 22) -> np.ndarray:
    """How often each id occurs in ``tokens`` (read in chunks, so a memory map stays unloaded)."""
    counts = np.zeros(vocabulary_size, dtype=np.int64)
    for begin in range(0, len(tokens), chunk):
        counts += np.bincount(np.asarray(tokens[begin:begin + chunk]), minlength=vocabulary_size)[:vocabulary_size]
    return counts


def unigram_nll(counts: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood (nats per token) of ``targets`` under add-one smoothed frequencies.

    p(t) = (counts[t] + 1) / (sum(counts) + V). An empty ``targets`` gives nan.
    """
    targets = np.asarray(targets).ravel()
    if targets.size == 0:
        return float("nan")
    probabilities = (counts + 1.0) / (counts.sum() + len(counts))
    return float(-np.log(probabilities[targets]).mean())


def ngram_keys(pieces: list[np.ndarray], order: int) -> np.ndarray:
    """(positions, order) int64: for every predicted token, its ``order - 1`` context tokens and itself.

    Row j holds the tokens before target j (Pad where the piece has none) and the target last.
    """
    rows = []
    for piece in pieces:
        piece = np.asarray(piece, dtype=np.int64)
        padded = np.concatenate([np.full(order - 1, PAD, dtype=np.int64), piece])
        if len(piece) > 1:
            rows.append(np.lib.stride_tricks.sliding_window_view(padded, order)[1:])
    return np.concatenate(rows) if rows else np.zeros((0, order), dtype=np.int64)


def pack(grams: np.ndarray, bits: int) -> np.ndarray:
    """One int64 key per row of token codes of ``bits`` bits, oldest token in the highest bits."""
    keys = np.zeros(len(grams), dtype=np.int64)
    for column in range(grams.shape[1]):
        keys = (keys << bits) | grams[:, column]
    return keys


def _lookup(table_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into the sorted ``table_keys`` of each key, whether it is there)."""
    if len(table_keys) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    index = np.minimum(np.searchsorted(table_keys, keys), len(table_keys) - 1)
    return index, table_keys[index] == keys


def _values(table_values: np.ndarray, found: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """table_values where a key was found, 0 elsewhere."""
    index, present = found
    return np.where(present, table_values[index], 0) if len(table_values) else np.zeros(len(index), np.int64)


class KneserNey:
    """An interpolated Kneser-Ney n-gram model over token ids, fitted on ``pieces``.

    Token ids are first replaced by codes: 0 for Pad, 1.. for each id the training pieces hold,
    and one more code for every other id. An id the training never saw has count 0 in every
    context, so one shared code changes no probability, and keys stay short: ``order`` codes
    must fit in 63 bits.
    """

    def __init__(self, pieces: list[np.ndarray], order: int, vocabulary_size: int):
        seen = np.unique(np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces] or [np.zeros(0)]))
        seen = seen[(seen != PAD) & (seen >= 0) & (seen < vocabulary_size)].astype(np.int64)
        self.codes = np.full(vocabulary_size, len(seen) + 1, dtype=np.int64)
        self.codes[PAD], self.codes[seen] = 0, np.arange(1, len(seen) + 1)
        self.bits = max(1, int(len(seen) + 1).bit_length())
        if not 1 <= order <= min(MAX_ORDER, 63 // self.bits):
            raise ValueError(f"order must be in 1..{min(MAX_ORDER, 63 // self.bits)} for {len(seen)} distinct "
                             f"tokens, got {order!r}")
        self.order, self.vocabulary_size = order, vocabulary_size
        bits = self.bits
        grams = self.codes[ngram_keys(pieces, order)]
        self.tables = []  # per order k = 1..order: (gram keys, counts, context keys, context totals, followers, D)
        types, counts = np.unique(pack(grams, bits), return_counts=True)
        for k in range(order, 0, -1):  # highest order first: raw counts; below: continuation counts
            if k < order:
                suffixes = types & ((1 << (bits * k)) - 1)  # each (k+1)-gram type without its oldest token
                types, counts = np.unique(suffixes, return_counts=True)
            contexts = types >> bits
            context_keys, first = np.unique(contexts, return_index=True)
            totals = np.add.reduceat(counts, first) if len(first) else counts
            followers = np.diff(np.append(first, len(contexts)))
            once, twice = np.sum(counts == 1), np.sum(counts == 2)
            discount = once / (once + 2 * twice) if once + twice else 0.5
            self.tables.insert(0, (types, counts, context_keys, totals, followers, discount))

    def probabilities(self, grams: np.ndarray) -> np.ndarray:
        """P(target | context) for rows of ``grams`` shaped (n, order): context tokens, then the target."""
        grams, bits = self.codes[np.asarray(grams, dtype=np.int64)], self.bits
        types, counts, _, totals, followers, discount = self.tables[0]
        total = counts.sum()
        p = (np.maximum(_values(counts, _lookup(types, grams[:, -1])) - discount, 0) / total
             + discount * len(types) / total / self.vocabulary_size)
        for k in range(2, self.order + 1):
            types, counts, context_keys, totals, followers, discount = self.tables[k - 1]
            keys = pack(grams[:, -k:], bits)
            context = _lookup(context_keys, keys >> bits)  # one search serves both context tables
            seen, distinct = _values(totals, context), _values(followers, context)
            count = _values(counts, _lookup(types, keys))
            mixed = (np.maximum(count - discount, 0) + discount * distinct * p) / np.maximum(seen, 1)
            p = np.where(seen > 0, mixed, p)
        return p

    def nll(self, pieces: list[np.ndarray]) -> tuple[float, int]:
        """(total negative log-likelihood in nats, tokens predicted) over ``pieces``."""
        grams = ngram_keys(pieces, self.order)
        total = 0.0
        for begin in range(0, len(grams), 1 << 20):
            total -= float(np.log(self.probabilities(grams[begin:begin + (1 << 20)])).sum())
        return total, len(grams)


def fit_ngram(train: list[np.ndarray], validation: list[np.ndarray], vocabulary_size: int,
              orders=range(2, MAX_ORDER + 1)) -> tuple[KneserNey, dict[int, float]]:
    """The Kneser-Ney model whose order gives the lowest validation NLL, and {order: nats per token}."""
    scores, best = {}, None
    for order in orders:
        try:
            model = KneserNey(train, order, vocabulary_size)
        except ValueError:  # too many distinct tokens for this order's keys
            continue
        total, count = model.nll(validation)
        scores[order] = total / max(count, 1)
        if best is None or scores[order] < scores[best.order]:
            best = model
    return best, scores


# ----------------------------------------------------------------------------- copying

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


class CopyIndex:
    """Hashes of a corpus's token runs, to ask how long a piece's longest verbatim copy is.

    The pieces are joined into one stream; a run spanning two pieces would contain
    End followed by Begin, which no single piece holds, so it never matches.
    """

    def __init__(self, corpus: list[np.ndarray]):
        self.stream = np.concatenate([np.asarray(piece, dtype=np.int64) for piece in corpus] or [np.zeros(0)])
        self.prefix = _prefix_hashes(self.stream)
        self._sorted: dict[int, np.ndarray] = {}

    def _hashes_of_length(self, length: int) -> np.ndarray:
        if length not in self._sorted:
            self._sorted[length] = np.sort(_window_hashes(self.prefix, length))
        return self._sorted[length]

    def longest_copy(self, tokens: np.ndarray) -> tuple[int, int]:
        """(length, start) of the longest run of ``tokens`` found verbatim in one corpus piece (0, 0 if none)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        low, high, start = 0, len(tokens), 0  # a run of length low is known to exist
        while low < high:
            length = (low + high + 1) // 2
            corpus = self._hashes_of_length(length)
            hashes = _window_hashes(_prefix_hashes(tokens), length)
            where = np.minimum(np.searchsorted(corpus, hashes), max(len(corpus) - 1, 0))
            found = np.flatnonzero(corpus[where] == hashes) if len(corpus) else []
            if len(found):
                low, start = length, int(found[0])
            else:
                high = length - 1
        return low, start


def _window_hashes(prefix: np.ndarray, length: int) -> np.ndarray:
    """Hash of every run of ``length`` tokens, from the prefix hashes of the tokens."""
    if not 1 <= length < len(prefix):
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        power = np.uint64(1)
        for bit in bin(length)[2:]:  # M**length by squaring
            power = power * power * (_MULTIPLIER if bit == "1" else np.uint64(1))
        return prefix[length:] - prefix[:-length] * power


def _prefix_hashes(tokens: np.ndarray) -> np.ndarray:
    """H[i] = hash of tokens[:i] = sum_j (t_j + 1) * M**(i - 1 - j) modulo 2**64 (length len + 1)."""
    n = len(tokens)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(n, _MULTIPLIER, dtype=np.uint64))  # M**1 .. M**n
        inverse = _inverse(_MULTIPLIER)
        inverse_powers = np.cumprod(np.full(n, inverse, dtype=np.uint64))  # M**-1 .. M**-n
        terms = (np.asarray(tokens, dtype=np.uint64) + np.uint64(1)) * inverse_powers  # (t_j + 1) * M**-(j+1)
        sums = np.concatenate([[np.uint64(0)], np.cumsum(terms, dtype=np.uint64)])
        return sums * np.concatenate([[np.uint64(1)], powers])  # times M**i


def _inverse(odd: np.uint64) -> np.uint64:
    """The multiplicative inverse of an odd number modulo 2**64."""
    return np.uint64(pow(int(odd), -1, 1 << 64))


def perplexity(nats_per_token: float) -> float:
    """exp(nats per token); inf when the NLL overflows."""
    return math.exp(nats_per_token) if nats_per_token < 700 else math.inf
