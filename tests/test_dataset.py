"""Training windows: split by file, windows inside the training files, transposition in range."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from conftest import corpus_files, note, smf, track
from melody.corpus import TokenCache, prepare
from melody.dataset import WindowSampler, segments, split_pieces, training_dataset, validation_windows


@pytest.fixture(scope="module")
def cache(tmp_path_factory, wild):
    folder = tmp_path_factory.mktemp("cache")
    sources = corpus_files("chorales")[:6] + [wild / "MIDIs_multitrack" / "Funkytown.mid"]
    prepare(sources, folder, workers=1)
    return TokenCache(folder)


def test_split_is_by_file_disjoint_and_fixed_by_the_seed():
    train, val = split_pieces(50, 0.2, seed=3)
    assert len(val) == 10 and len(train) == 40 and not set(train) & set(val)
    assert np.array_equal(split_pieces(50, 0.2, seed=3)[1], val)
    assert not np.array_equal(split_pieces(50, 0.2, seed=4)[1], val)
    assert len(split_pieces(2, 0.01, seed=0)[1]) == 1


def test_windows_stay_inside_the_training_files(cache):
    train, _ = split_pieces(len(cache), 0.3, seed=0)
    ranges = segments(cache, train)
    positions = SimpleNamespace(tokens=np.arange(len(cache.tokens)), drums=cache.drums, tokenizer=cache.tokenizer)
    windows = WindowSampler(positions, ranges, seq_len=16).batch(np.random.default_rng(0), 2000)
    assert np.array_equal(windows[:, 1:] - windows[:, :-1], np.ones((2000, 16)))  # consecutive tokens
    inside = [any(start <= w[0] and w[-1] < end for start, end in ranges) for w in windows]
    assert all(inside)
    assert len({w[0] for w in windows}) > 500  # spread over the corpus


def test_transposition_moves_whole_windows_within_range(cache):
    ranges = segments(cache, np.arange(len(cache)))
    plain = WindowSampler(cache, ranges, seq_len=64)
    moved = WindowSampler(cache, ranges, seq_len=64, max_transpose=5)
    a = plain.batch(np.random.default_rng(1), 64)
    b = moved.batch(np.random.default_rng(1), 64)
    tokenizer = cache.tokenizer
    is_note = (a >= tokenizer.note) & (a < tokenizer.note + 128)
    assert np.array_equal(a[~is_note], b[~is_note])  # only notes move
    assert ((b >= tokenizer.note) & (b < tokenizer.note + 128))[is_note].all()
    shifts = b.astype(int) - a
    assert np.abs(shifts).max() <= 5 and (shifts != 0).any()
    assert all(len(set(row[row != 0])) <= 1 for row in shifts)  # one shift per window


def test_drum_notes_are_never_transposed(tmp_path):
    drums_only = smf(track(*[note(9, 36 + i % 10, 120) for i in range(100)]))
    (tmp_path / "drums.mid").write_bytes(drums_only)
    prepare([tmp_path / "drums.mid"], tmp_path / "cache", workers=1)
    cache = TokenCache(tmp_path / "cache")
    assert cache.drums[5:].all()
    ranges = segments(cache, np.arange(len(cache)))
    a = WindowSampler(cache, ranges, seq_len=32).batch(np.random.default_rng(2), 32)
    b = WindowSampler(cache, ranges, seq_len=32, max_transpose=6).batch(np.random.default_rng(2), 32)
    assert np.array_equal(a, b)


def test_validation_windows_cover_consecutive_tokens(cache):
    _, val = split_pieces(len(cache), 0.3, seed=0)
    ranges = segments(cache, val)
    windows = validation_windows(cache, ranges, seq_len=32)
    start, _ = ranges[0]
    assert np.array_equal(windows[0], cache.tokens[start:start + 33])
    assert np.array_equal(windows[1][0], windows[0][-1])  # each target is predicted once


def test_tf_data_batches_are_shifted_by_one_and_reproducible(cache):
    sampler = WindowSampler(cache, segments(cache, np.arange(len(cache))), seq_len=20)
    first = list(training_dataset(sampler, 4, steps=3, seed=7, epoch=2).as_numpy_iterator())
    again = list(training_dataset(sampler, 4, steps=3, seed=7, epoch=2).as_numpy_iterator())
    other = list(training_dataset(sampler, 4, steps=3, seed=7, epoch=3).as_numpy_iterator())
    assert len(first) == 3
    inputs, targets = first[0]
    assert inputs.shape == targets.shape == (4, 20)
    assert np.array_equal(inputs[:, 1:], targets[:, :-1])
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(first, again))
    assert not np.array_equal(first[0][0], other[0][0])
