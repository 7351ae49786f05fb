"""Training windows: split by file, windows inside the training files, transposition in range."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import corpus_files, note, smf, track
from melody.corpus import TokenCache, prepare
from melody import ahead
from melody.dataset import WindowSampler, split_pieces, training_dataset, tune_fingerprints, validation_windows


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


def test_a_tune_held_twice_falls_on_one_side(tmp_path):
    """The same folk tune under two names and in two keys, among others: one label, one side, for any seed."""
    files = corpus_files("folk")[:30]
    tune = (tmp_path / "copy.mid")
    from melody.midi_read import read_midi
    from melody.midi_write import write_midi
    from melody.score import transpose

    write_midi(transpose(read_midi(files[7]), 3), tune)
    prepare(files + [tune], tmp_path / "cache", workers=1)
    cache = TokenCache(tmp_path / "cache")
    labels = tune_fingerprints(cache)
    names = [entry["path"] for entry in cache.report["files"] if entry["status"] == "ok"]
    original, copy = names.index(str(files[7])), names.index(str(tune))
    assert labels[original] == labels[copy] and len(set(labels)) == len(labels) - 1
    for seed in range(20):
        train, val = split_pieces(len(cache), 0.3, seed, labels)
        assert (original in val) == (copy in val) and len(set(train) | set(val)) == len(cache)
        assert abs(len(val) - 0.3 * len(cache)) <= 1


def test_windows_with_ahead_carry_the_features_of_their_piece(cache):
    """Each window's features are its piece's (``ahead.piece_features`` for some kept set and ending), turned
    with the window's transposition, and zero where the window has run on past its piece's End."""
    sampler = WindowSampler(cache, np.arange(len(cache)), seq_len=64, max_transpose=5, ahead=True)
    tokens, features, given = sampler.batch(np.random.default_rng(5), 64)
    assert features.shape == (64, 65, ahead.WIDTH) and features.dtype == np.float32
    positions, pieces = sampler.positions(np.random.default_rng(5), 64)
    told_kept = told_ending = 0
    for row, piece, window, told in zip(positions, pieces, tokens, features):
        end = sampler.pieces.ends[piece]
        assert not told[row >= end].any()
        told_kept += told[:, ahead.KEPT].any()
        told_ending += told[:, ahead.ENDING].any()
        # Untransposed, kept-agnostic checks: the kept flag covers the piece's body and nothing of the header.
        header = sampler.pieces.headers[piece]
        assert not told[:header].any()
        assert told[header:][row[header:] < end, ahead.KEPT].min() == told[:, ahead.KEPT].max()
    assert 10 < told_kept < 54 and told_ending > 0
    table = cache.tokenizer.token_table()
    for window, told, taken in zip(tokens, features, given):  # given: notes of kept tracks, only when kept
        assert told[:, ahead.KEPT].any() or not taken.any()
        assert not (taken & ((table["shift_steps"][window] > 0) | (table["bar_steps"][window] > 0))).any()
    assert 0 < given.sum() < given[features[..., ahead.KEPT].any(axis=1)].size
    inputs_features, targets, weights = next(training_dataset(sampler, 4, steps=1, seed=5, epoch=0)
                                             .batch(4).as_numpy_iterator())
    assert weights.shape == targets.shape and set(np.unique(weights)) <= {0.0, 1.0}


def test_each_window_is_a_header_then_consecutive_tokens_of_training_files(cache):
    train, _ = split_pieces(len(cache), 0.3, seed=0)
    sampler = WindowSampler(cache, train, seq_len=48)
    positions, _ = sampler.positions(np.random.default_rng(0), 500)
    pieces = sampler.pieces
    starts, ends, headers = pieces.starts, pieces.ends, pieces.headers
    firsts = set()
    for row in positions:
        piece = int(np.searchsorted(starts, row[0], side="right") - 1)
        header = headers[piece]
        assert row[0] == starts[piece] and np.array_equal(row[:header], np.arange(starts[piece], starts[piece] + header))
        body = row[header:]
        firsts.add(int(body[0]))
        assert np.array_equal(np.diff(body), np.ones(len(body) - 1))  # consecutive tokens
        assert starts[piece] + header <= body[0] < ends[piece]  # from this piece's body ...
        assert body[-1] < pieces.run_ends[piece]  # ... running on only into adjacent training pieces
    windows, told, _ = sampler.batch(np.random.default_rng(0), 500)
    assert told is None  # a sampler without ``ahead``
    tokenizer = cache.tokenizer
    assert all(tokenizer.names(w[:1]) == ["Begin"] and tokenizer.header_length(w) >= 5 for w in windows)
    assert len(firsts) > 400  # spread over the corpus


def test_transposition_moves_notes_and_key_of_whole_windows_within_range(cache):
    pieces = np.arange(len(cache))
    plain = WindowSampler(cache, pieces, seq_len=64)
    moved = WindowSampler(cache, pieces, seq_len=64, max_transpose=5)
    a, *_ = plain.batch(np.random.default_rng(1), 64)
    b, *_ = moved.batch(np.random.default_rng(1), 64)
    tokenizer = cache.tokenizer
    is_note, is_key = tokenizer.is_note(a), tokenizer.kinds["Key"].holds(a)
    assert np.array_equal(a[~is_note & ~is_key], b[~is_note & ~is_key])  # only notes and keys move
    assert tokenizer.is_note(b)[is_note].all()
    shifts = b.astype(int) - a
    note_shifts = np.where(is_note, shifts, 0)
    assert np.abs(note_shifts).max() <= 5 and (note_shifts != 0).any()
    assert all(len(set(row[row != 0])) <= 1 for row in note_shifts)  # one shift per window
    for row_a, row_b, row_shift in zip(a, b, note_shifts):  # the key moved as far as the notes
        moved_by = set(row_shift[row_shift != 0])
        if moved_by and not tokenizer.drum_mask(row_a).all():
            key_a, key_b = tokenizer.kinds["Key"].value_index(row_a[1]), tokenizer.kinds["Key"].value_index(row_b[1])
            assert (key_b - key_a) % 12 == moved_by.pop() % 12 and key_a // 12 == key_b // 12


def test_drum_notes_are_never_transposed(tmp_path):
    drums_only = smf(track(*[note(9, 36 + i % 10, 120) for i in range(100)]))
    (tmp_path / "drums.mid").write_bytes(drums_only)
    prepare([tmp_path / "drums.mid"], tmp_path / "cache", workers=1)
    cache = TokenCache(tmp_path / "cache")
    assert cache.drums[tokenizer_notes(cache)].all()
    a, *_ = WindowSampler(cache, np.arange(len(cache)), seq_len=32).batch(np.random.default_rng(2), 32)
    b, *_ = WindowSampler(cache, np.arange(len(cache)), seq_len=32, max_transpose=6).batch(np.random.default_rng(2), 32)
    assert np.array_equal(a, b)


def tokenizer_notes(cache):
    return cache.tokenizer.is_note(np.asarray(cache.tokens))


def test_validation_windows_are_a_header_and_stretches_that_do_not_overlap(cache):
    _, val = split_pieces(len(cache), 0.3, seed=0)
    windows = validation_windows(cache, val, seq_len=32)
    piece = np.asarray(cache.piece(val[0]))
    header = cache.tokenizer.header_length(piece)
    width = 33 - header
    assert np.array_equal(windows[0], piece[:33])
    assert np.array_equal(windows[1], np.concatenate([piece[:header], piece[header + width:header + 2 * width]]))


def test_tf_data_batches_are_shifted_by_one_and_reproducible(cache):
    sampler = WindowSampler(cache, np.arange(len(cache)), seq_len=20)
    first = list(training_dataset(sampler, 4, steps=3, seed=7, epoch=2).as_numpy_iterator())
    again = list(training_dataset(sampler, 4, steps=3, seed=7, epoch=2).as_numpy_iterator())
    other = list(training_dataset(sampler, 4, steps=3, seed=7, epoch=3).as_numpy_iterator())
    assert len(first) == 3
    inputs, targets = first[0]
    assert inputs.shape == targets.shape == (4, 20)
    assert np.array_equal(inputs[:, 1:], targets[:, :-1])
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(first, again))
    assert not np.array_equal(first[0][0], other[0][0])
