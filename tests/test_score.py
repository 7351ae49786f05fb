"""The score model: its values check themselves, and its time arithmetic is right."""

from __future__ import annotations

import pytest

from melody.score import (Instrument, Note, Score, Tempo, TimeSignature, allowed_transpositions, cut, excerpt,
                          skyline, transpose)


def test_values_check_their_input():
    with pytest.raises(ValueError, match="duration must be >= 1"):
        Note(0, 60, 0, 100)
    with pytest.raises(ValueError, match="velocity must be in 1..127"):
        Note(0, 60, 10, 0)
    with pytest.raises(ValueError, match="power of 2"):
        TimeSignature(0, 3, 6)
    with pytest.raises(ValueError, match="Tempo must be > 0"):
        Tempo(0, 0)


def test_seconds_follow_the_tempo_map():
    score = Score(480, [Instrument(0, notes=[Note(0, 60, 480 * 4, 90)])],
                  tempos=[Tempo(0, 500_000), Tempo(960, 1_000_000)])
    assert score.tick_to_seconds(960) == pytest.approx(1.0)
    assert score.duration_seconds == pytest.approx(1.0 + 2.0)


def test_bar_lines_follow_time_signature_changes():
    score = Score(4, [Instrument(0, notes=[Note(40, 60, 1, 90)])],
                  time_signatures=[TimeSignature(0, 4, 4), TimeSignature(16, 3, 4), TimeSignature(30, 6, 8)])
    # 4/4 bars of 16 ticks, then 3/4 of 12 (cut short by the change at 30), then 6/8 of 12.
    assert score.bar_lines() == [0, 16, 28, 30]


def test_transpose_keeps_drums_and_refuses_to_leave_the_range():
    score = Score(480, [Instrument(0, notes=[Note(0, 120, 10, 90)]),
                        Instrument(0, is_drum=True, notes=[Note(0, 36, 10, 90)])])
    assert [n.pitch for n in transpose(score, 7).notes] == [36, 127]
    with pytest.raises(ValueError, match="out of 0..127"):
        transpose(score, 8)
    assert allowed_transpositions(score, 10) == list(range(-10, 8))


def test_skyline_keeps_the_top_note_and_cuts_overlaps():
    notes = [Note(0, 60, 10, 90), Note(0, 67, 10, 90), Note(5, 64, 10, 90)]
    assert skyline(notes) == [Note(0, 67, 5, 90), Note(5, 64, 10, 90)]


def test_an_excerpt_ends_where_it_was_cut_or_where_the_piece_ends():
    score = Score(4, (Instrument(0, notes=(Note(0, 60, 4, 90), Note(8, 62, 4, 90))),), end=32)
    assert excerpt(score, 8).end_tick == 24 and excerpt(score, 0, 16).end_tick == 16
    assert excerpt(score.replace(end=0), 8).end_tick == 4


def test_a_cut_score_ends_there_with_what_was_in_force_before():
    """``cut`` at tick 16: the note sounding over it ends there, the one after it is gone, and so are the tempo and
    meter changes at or after it; the ones before stay in force."""
    score = Score(4, (Instrument(0, notes=(Note(0, 60, 4, 90), Note(12, 62, 8, 90), Note(16, 64, 4, 90))),),
                  tempos=(Tempo(0, 500_000), Tempo(16, 400_000)),
                  time_signatures=(TimeSignature(0, 4, 4), TimeSignature(16, 3, 4)), end=40)
    made = cut(score, 16)
    assert [(n.start, n.duration) for n in made.instruments[0].notes] == [(0, 4), (12, 4)]
    assert made.tempos == (Tempo(0, 500_000),) and made.time_signatures == (TimeSignature(0, 4, 4),)
    assert made.end_tick == 16
