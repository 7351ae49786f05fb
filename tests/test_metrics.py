"""Music metrics on hand-made scores whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from melody import metrics
from melody.score import Instrument, Note, Score, TimeSignature

Q = 480  # ticks per quarter


def score(*notes, drums=(), signatures=()) -> Score:
    """A score from (start_quarter, pitch, length_quarters) triples; ``drums`` likewise on a drum track."""
    def made(triples):
        return tuple(Note(int(s * Q), p, int(d * Q), 80) for s, p, d in triples)
    instruments = [Instrument(0, notes=made(notes))] + ([Instrument(0, True, notes=made(drums))] if drums else [])
    return Score(Q, instruments=tuple(instruments), time_signatures=tuple(signatures))


C_MAJOR = score(*[(i, pitch, 1) for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71])])
EMPTY = Score(Q)


def test_c_major_scale():
    assert metrics.scale_consistency(C_MAJOR) == 1.0
    assert metrics.pitch_class_entropy(C_MAJOR) == pytest.approx(math.log2(7))
    assert metrics.pitch_range(C_MAJOR) == 11
    assert metrics.mean_polyphony(C_MAJOR) == 1.0
    assert metrics.note_density(C_MAJOR) == pytest.approx(7 / 2)  # 7 quarters: two 4/4 bars
    assert metrics.mean_note_length(C_MAJOR) == 1.0


def test_chromatic_scale_is_out_of_key_and_maximally_spread():
    chromatic = score(*[(i, 60 + i, 1) for i in range(12)])
    assert metrics.scale_consistency(chromatic) == pytest.approx(7 / 12)
    assert metrics.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert metrics.pitch_class_entropy(score((0, 60, 1), (1, 72, 1))) == 0.0  # one pitch class


def test_empty_score_gives_the_documented_values():
    assert metrics.pitch_range(EMPTY) == 0
    assert metrics.note_density(EMPTY) == 0.0
    for name in ("pitch_class_entropy", "scale_consistency", "mean_polyphony", "empty_bar_rate",
                 "distinct_bar_ratio", "groove_consistency", "mean_note_length"):
        assert math.isnan(metrics.METRICS[name](EMPTY)), name
    assert metrics.note_length_histogram(EMPTY).tolist() == [0.0] * 6
    assert set(metrics.music_metrics(EMPTY)) == set(metrics.METRICS)


def test_drums_count_for_rhythm_but_not_for_pitch():
    drums_only = score(drums=[(0, 36, 0.25), (1, 38, 0.25)])
    assert math.isnan(metrics.scale_consistency(drums_only))
    assert metrics.note_density(drums_only) == 2.0
    assert metrics.empty_bar_rate(drums_only) == 0.0


def test_polyphony():
    triad = score((0, 60, 2), (0, 64, 2), (0, 67, 2))
    assert metrics.mean_polyphony(triad) == 3.0
    overlapping = score((0, 60, 2), (1, 64, 2))  # 4 quarters of notes over 3 sounding quarters
    assert metrics.mean_polyphony(overlapping) == pytest.approx(4 / 3)
    with_a_rest = score((0, 60, 1), (3, 64, 1), (3, 67, 1))  # the rest does not count
    assert metrics.mean_polyphony(with_a_rest) == pytest.approx(3 / 2)


def test_empty_bars_and_time_signatures():
    bars_one_and_three = score((0, 60, 4), (8, 62, 4))
    assert metrics.empty_bar_rate(bars_one_and_three) == pytest.approx(1 / 3)
    held_over_a_bar = score((0, 60, 8))  # a note sounding through bar 2: not empty
    assert metrics.empty_bar_rate(held_over_a_bar) == 0.0
    waltz = score(*[(i, 60, 1) for i in range(6)], signatures=[TimeSignature(0, 3, 4)])
    assert metrics.bars(waltz).tolist() == [[0, 3 * Q], [3 * Q, 6 * Q]]
    assert metrics.note_density(waltz) == 3.0


def test_repetition_and_groove():
    bar = [(0, 60, 1), (1, 62, 1), (2, 64, 2)]
    four_copies = score(*[(start + 4 * k, pitch, length) for k in range(4) for start, pitch, length in bar])
    assert metrics.distinct_bar_ratio(four_copies) == 0.25
    assert metrics.groove_consistency(four_copies) == 1.0
    varied = score((0, 60, 4), (4, 62, 1), (5, 64, 1), (6, 65, 1), (7, 67, 1))
    assert metrics.distinct_bar_ratio(varied) == 1.0
    # bar 1 has an onset at step 0 of 48; bar 2 at steps 0, 12, 24, 36: three positions differ
    assert metrics.groove_consistency(varied) == pytest.approx(1 - 3 / 48)
    assert math.isnan(metrics.groove_consistency(score((0, 60, 1))))  # one bar: no pair to compare


def test_note_length_histogram():
    lengths = score((0, 60, 0.25), (1, 60, 0.5), (2, 60, 1), (3, 60, 1), (4, 60, 3), (8, 60, 6))
    histogram = metrics.note_length_histogram(lengths)
    assert histogram.tolist() == pytest.approx([1 / 6, 1 / 6, 2 / 6, 0, 1 / 6, 1 / 6])
    assert np.isclose(histogram.sum(), 1.0)
