"""Likelihood baselines as pure functions (numpy only).

A model is only as good as what it beats: the unigram baseline predicts every
token from its overall frequency in the training data, ignoring context.
"""

from __future__ import annotations

import numpy as np


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
