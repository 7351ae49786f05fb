"""Do the parts play together (melody.ensemble): hand-made cases with known answers, and real chorales."""

from __future__ import annotations

import dataclasses
import math

from conftest import CORPORA
from melody.ensemble import clash_share, copied_bars, crossings, ends_on_tonic, on_others, parallels, silent_bars
from melody.midi_read import read_midi
from melody.score import Instrument, Note, Score, TimeSignature

Q = 480
BAR = 4 * Q


def score(*parts, drums=()) -> Score:
    instruments = [Instrument(0, name=f"p{k}", notes=[Note(*note) for note in notes]) for k, notes in enumerate(parts)]
    instruments += [Instrument(0, is_drum=True, notes=[Note(*note) for note in notes]) for notes in drums]
    return Score(Q, instruments, time_signatures=[TimeSignature(0, 4, 4)])


def test_clashes_are_weighted_by_how_long_two_parts_overlap():
    third = score([(0, 60, BAR, 80)], [(0, 64, BAR, 80)])
    second = score([(0, 60, BAR, 80)], [(0, 62, BAR, 80)])
    half = score([(0, 60, BAR, 80)], [(0, 64, BAR // 2, 80), (BAR // 2, 71, BAR // 2, 80)])  # third, then a 7th
    assert clash_share(third, 0, BAR) == 0 and clash_share(second, 0, BAR) == 1 and clash_share(half, 0, BAR) == 0.5
    # notes of one part (a chord) and drums never count; a stretch without two parts sounding is nan
    chord = score([(0, 60, BAR, 80), (0, 61, BAR, 80)], drums=[[(0, 61, BAR, 80)]])
    assert math.isnan(clash_share(chord, 0, BAR))
    assert clash_share(half, BAR // 2, BAR) == 1.0  # only the stretch asked


def test_a_melody_on_the_chord_tones_lands_on_the_others():
    melody = [(q * Q, pitch, Q, 80) for q, pitch in enumerate([72, 74, 76, 79])]  # C D E G over a C chord
    chord = [(0, 48, BAR, 80), (0, 52, BAR, 80), (0, 55, BAR, 80)]
    assert on_others(score(melody, chord), 0, 0, BAR) == 0.75
    assert math.isnan(on_others(score(melody, chord), 0, BAR, 2 * BAR))


def test_a_loop_copies_every_bar_and_new_music_none():
    seed = [(b * BAR + q * Q, 60 + q, Q, 80) for b in range(2) for q in range(4)]
    looped = seed + [(b * BAR + q * Q, 60 + q, Q, 80) for b in range(2, 4) for q in range(4)]
    new = seed + [(b * BAR + q * Q, 65 + q, Q, 80) for b in range(2, 4) for q in range(4)]
    assert copied_bars(score(looped), 0, 2 * BAR, 4 * BAR) == 1.0
    assert copied_bars(score(new), 0, 2 * BAR, 4 * BAR) == 0.0


def test_a_part_is_silent_in_a_bar_where_none_of_its_notes_sounds():
    walking = [(q * Q, 48 + q % 4, Q, 80) for q in range(16)]  # quarters through all four bars
    resting = [(0, 72, BAR + Q, 80), (3 * BAR + Q, 74, Q, 80)]  # held into bar 2, silent through bar 3
    both = score(walking, resting, drums=[[(2 * BAR, 36, Q, 80)]])  # drums never count
    assert silent_bars(both, 0, 4 * BAR) == 1 / 8
    assert silent_bars(both, BAR, 2 * BAR) == 0.0  # the note held over the bar line sounds in bar 2
    assert silent_bars(both, 2 * BAR, 3 * BAR) == 0.5
    assert math.isnan(silent_bars(score([]), 0, BAR))


def test_a_cadence_closes_on_the_tonic_triad_over_the_tonic():
    dominant = [(0, 43, BAR, 80), (0, 59, BAR, 80), (0, 65, BAR, 80)]
    tonic = [(BAR, 48, BAR, 80), (BAR, 64, BAR, 80), (BAR, 67, BAR, 80), (BAR, 72, BAR, 80)]
    bass, upper = [n for n in dominant + tonic if n[1] < 50], [n for n in dominant + tonic if n[1] >= 50]
    assert ends_on_tonic(score(upper, bass), "C", 0, 2 * BAR) == 1.0
    assert ends_on_tonic(score(upper, bass), "Am", 0, 2 * BAR) == 0.0
    assert ends_on_tonic(score(upper, bass), "C", 0, BAR) == 0.0  # stopping on the dominant
    inverted = [(BAR, 52, BAR, 80)]  # E in the bass: a C chord, but not a close
    assert ends_on_tonic(score(upper, inverted + bass[:1]), "C", 0, 2 * BAR) == 0.0


def test_real_chorales_rarely_clash_and_a_voice_moved_a_semitone_does():
    real = read_midi(CORPORA / "chorales" / "bwv187.7.mid")
    end = real.end_tick
    alto = real.instruments[1]
    moved = real.replace(instruments=[real.instruments[0], dataclasses.replace(
        alto, notes=tuple(dataclasses.replace(n, pitch=n.pitch + 1) for n in alto.notes)), *real.instruments[2:]])
    assert clash_share(real, 0, end) < 0.2 < clash_share(moved, 0, end)
    soprano = real.instruments[0]
    off = real.replace(instruments=[dataclasses.replace(
        soprano, notes=tuple(dataclasses.replace(n, pitch=n.pitch + 6) for n in soprano.notes)), *real.instruments[1:]])
    assert on_others(real, 0, 0, end) > 0.25 > on_others(off, 0, 0, end)
    assert ends_on_tonic(real, "Gm", 0, end) == 1.0


def test_parallel_fifths_and_octaves_are_counted_per_100_moves_of_a_pair():
    fifths = score([(0, 67, Q, 80), (Q, 69, Q, 80), (2 * Q, 71, Q, 80)],    # G A B over
                   [(0, 60, Q, 80), (Q, 62, Q, 80), (2 * Q, 60, Q, 80)])    # C D C: a fifth, a fifth, then a sixth
    assert parallels(fifths, 0, BAR) == 50  # two moves, one in parallel fifths
    contrary = score([(0, 67, Q, 80), (Q, 69, Q, 80)], [(0, 60, Q, 80), (Q, 55, Q, 80)])  # fifth to octave+... apart
    assert parallels(contrary, 0, BAR) == 0
    octaves = score([(0, 72, Q, 80), (Q, 74, Q, 80)], [(0, 48, Q, 80), (Q, 50, Q, 80)], [(0, 64, 2 * Q, 80)])
    assert parallels(octaves, 0, BAR) == 100 / 3  # the outer pair moves in octaves; the held E moves with neither
    assert math.isnan(parallels(score([(0, 60, BAR, 80)], [(0, 64, BAR, 80)]), 0, BAR))  # nobody moves


def test_a_lower_part_above_the_one_listed_before_it_is_a_crossing():
    crossed = score([(0, 60, BAR, 80)], [(0, 64, BAR // 4, 80), (BAR // 4, 55, 3 * BAR // 4, 80)])
    assert crossings(crossed, 0, BAR) == 0.25
    assert crossings(score([(0, 72, BAR, 80)], [(0, 60, BAR, 80)]), 0, BAR) == 0
