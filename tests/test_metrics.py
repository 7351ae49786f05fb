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


# ----------------------------------------------------------------------------- fit to a seed

def band(lead, bass, drums) -> Score:
    """Lead, bass and drums from (start_quarter, pitch, length_quarters) triples, in 3/4."""
    def made(triples):
        return tuple(Note(int(s * Q), p, int(d * Q), 80) for s, p, d in triples)
    return Score(Q, (Instrument(73, name="Flute", notes=made(lead)), Instrument(33, name="Bass", notes=made(bass)),
                     Instrument(0, True, "Drums", made(drums))), time_signatures=(TimeSignature(0, 3, 4),))


SEED_LEAD = [(q, [60, 64, 67, 72][q % 4], 1) for q in range(12)]  # 4 bars of 3/4 in C, 1 onset per quarter
SEED = band(SEED_LEAD, [(3 * b, 36, 3) for b in range(4)], [(q, 36, 0.25) for q in range(12)])


def test_fit_of_a_continuation_with_known_answers():
    # 2 new bars: the lead in eighths (2 onsets a quarter), 1 of its 12 notes out of C major; the bass only in
    # the first new bar; the drums silent.
    lead = [(12 + q / 2, 61 if q == 5 else 62, 0.5) for q in range(12)]
    output = band(SEED_LEAD + lead, [(3 * b, 36, 3) for b in range(5)], [(q, 36, 0.25) for q in range(12)])
    fit = metrics.continuation_fit(SEED, output, bars_asked=2)
    assert (fit["bars_written"], fit["bars_exact"]) == (2, True)
    assert fit["key"] == "C" and fit["seed_in_key"] == 1.0
    assert fit["in_key"] == pytest.approx(12 / 13) and fit["lead_in_key"] == pytest.approx(11 / 12)
    assert fit["density_ratio"] == pytest.approx(2.0)
    assert (fit["tracks_before"], fit["tracks_kept"]) == (3, 2)  # the drums stopped
    # of the 2 new bars the lead sounds in both, the bass in one, the drums in none; in the seed's last 4, all
    assert (fit["bars_playing"], fit["seed_bars_playing"]) == (pytest.approx(1.5 / 3), 1.0)
    assert fit["distinct_bar_ratio"] == pytest.approx(2 / 2)
    # the new D and C# over the bass's low C (a 9th, a minor 9th) clash all the time they overlap; no new lead note
    # on the bass's C; the bass's one new bar repeats its bars before; one move of the pair, the lead alone
    assert (fit["clash"], fit["lead_on_others"], fit["copied_bars"], fit["parallels"]) == (1.0, 0.0, 1.0, 0.0)


def test_fit_of_a_continuation_written_alone_and_asked_for_more_bars():
    alone = band([(q, 62, 1) for q in range(3)], [], [])
    fit = metrics.continuation_fit(SEED, alone, bars_asked=2)
    assert (fit["bars_written"], fit["bars_exact"]) == (1, False)
    assert fit["density_ratio"] == pytest.approx(1.0) and fit["tracks_kept"] == 1


def test_a_last_bar_of_rest_counts_where_the_score_ends_after_it():
    """Two bars asked, the second a rest: the continuation is one bar of notes, two where the file says it ends."""
    lead = [(12 + q, 62, 1) for q in range(3)]
    output = band(SEED_LEAD + lead, [(3 * b, 36, 3) for b in range(4)], [(q, 36, 0.25) for q in range(12)])
    assert metrics.continuation_fit(SEED, output, bars_asked=2)["bars_written"] == 1
    ended = output.replace(end=18 * Q)
    assert ended.end_tick == 18 * Q and ended.bar_lines() == [0, 3 * Q, 6 * Q, 9 * Q, 12 * Q, 15 * Q]
    fit = metrics.continuation_fit(SEED, ended, bars_asked=2)
    assert (fit["bars_written"], fit["bars_exact"]) == (2, True)


def test_onsets_a_few_ticks_apart_are_one_onset():
    """A chord as a pianist plays it (its notes 3 and 5 ticks apart at 480 per quarter) is one onset; notes a
    sixteenth apart are two."""
    from melody.metrics import onsets_per_quarter

    spread = Score(480, (Instrument(0, notes=(Note(0, 60, 480, 80), Note(3, 64, 480, 80), Note(5, 67, 480, 80),
                                              Note(960, 60, 120, 80), Note(1080, 62, 120, 80))),))
    assert onsets_per_quarter(spread, 0, 0, 1920) == pytest.approx(3 / 4)
