"""The n-gram baselines are proper distributions, and copy detection finds exactly what was copied."""

from __future__ import annotations

import numpy as np
import pytest

from melody.baselines import CopyIndex, KneserNey, fit_ngram, ngram_keys, token_counts, unigram_nll

V = 20
RNG = np.random.default_rng(0)
MOTIF = [5, 6, 7, 8, 9, 10]


def piece(body) -> np.ndarray:
    return np.array([1, *body, 2], dtype=np.int64)  # Begin ... End


TRAIN = [piece(MOTIF * 5 + RNG.integers(4, V, 10).tolist()) for _ in range(30)]
VALIDATION = [piece(MOTIF * 4 + RNG.integers(4, V, 5).tolist()) for _ in range(5)]


def test_contexts_are_padded_and_never_cross_pieces():
    grams = ngram_keys([np.array([1, 7, 8]), np.array([1, 9])], order=3)
    assert grams.tolist() == [[0, 1, 7], [1, 7, 8], [0, 1, 9]]  # Begin is given, not predicted


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_for_every_context(order):
    model = KneserNey(TRAIN, order, V)
    contexts = [[0] * (order - 1), MOTIF[:order - 1], RNG.integers(0, V, order - 1).tolist(), [19] * (order - 1)]
    for context in contexts:
        grid = np.array([context + [target] for target in range(V)], dtype=np.int64).reshape(V, order)
        probabilities = model.probabilities(grid)
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-9), context
        assert (probabilities > 0).all()  # unseen tokens keep some probability


def test_longer_context_learns_the_motif():
    model, scores = fit_ngram(TRAIN, VALIDATION, V, orders=range(1, 5))
    assert model.order > 1 and scores[model.order] == min(scores.values())
    assert scores[1] > 2 * scores[model.order]
    context = ([0] * model.order + [5, 6, 7])[-(model.order - 1):]
    assert model.probabilities(np.array([context + [8]]))[0] > 0.9  # 8 follows 6 7
    counts = token_counts(np.concatenate(TRAIN), V)
    total, tokens = model.nll(VALIDATION)
    assert total / tokens < unigram_nll(counts, np.concatenate([p[1:] for p in VALIDATION]))


def test_copy_detection_finds_the_planted_passage():
    corpus = [piece(RNG.integers(4, V, 200).tolist()) for _ in range(3)]
    planted = corpus[1][50:90]  # 40 tokens
    fresh = np.array([3] * 10 + planted.tolist() + [3] * 10)  # token 3 never occurs in the corpus
    index = CopyIndex(corpus)
    assert index.longest_copy(fresh) == (40, 10)
    assert index.longest_copy(np.array([3] * 30)) == (0, 0)
    assert index.longest_copy(corpus[2])[0] == len(corpus[2])  # a training piece is all copy
