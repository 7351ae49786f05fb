"""The token vocabulary: layout, exact round trips on real files, save/load, augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import corpus_files, music21_midi_files, note, smf, track
from melody.errors import TokenizerError
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes, validate_midi
from melody.score import Instrument, Note, Score, TimeSignature, melody_line, transpose
from melody.tokenizer import BAR, BEGIN, END, PAD, Tokenizer, TokenizerConfig

TOKENIZER = Tokenizer()


def assert_round_trip(score: Score, label: str) -> None:
    """decode(encode(score)) == quantize(score); on failure name the file, the note and the token."""
    tokens = TOKENIZER.encode(score)
    decoded, expected = TOKENIZER.decode(tokens, meta=score), TOKENIZER.quantize(score)
    if decoded == expected:
        return
    for got, want in zip(decoded.instruments, expected.instruments):
        for index, (a, b) in enumerate(zip(got.notes, want.notes)):
            assert a == b, f"{label}: program {want.program} note {index}: decoded {a}, expected {b}"
    assert decoded == expected, f"{label}: instruments or timing differ"


def test_vocabulary_layout_golden_ids():
    assert len(TOKENIZER) == 341
    assert TOKENIZER.vocabulary[:4] == ("Pad", "Begin", "End", "Bar")
    assert (PAD, BEGIN, END, BAR) == (0, 1, 2, 3)
    assert TOKENIZER.ids["TimeShift_1"] == 4 and TOKENIZER.ids["TimeShift_48"] == 51
    assert TOKENIZER.ids["Note_60"] == 112
    assert TOKENIZER.durations == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 18, 21, 24, 30, 36, 42, 48, 60, 72,
                                   84, 96)
    assert TOKENIZER.ids["Velocity_1"] == 204 and TOKENIZER.ids["Program_0"] == 212
    assert TOKENIZER.vocabulary[-1] == "Drums"


def test_encoding_of_a_small_piece_reads_as_music():
    # Two quarter notes C4 then E4 at 480 ticks per quarter, velocity 100, piano.
    score = read_midi(smf(track(note(0, 60, 480), note(0, 64, 480))))
    names = TOKENIZER.names(TOKENIZER.encode(score))
    assert names == ["Begin", "Bar", "Program_0", "Velocity_7", "Note_60", "Duration_12",
                     "TimeShift_12", "Note_64", "Duration_12", "End"]


def test_bars_time_shifts_and_triplets_land_on_the_grid():
    # 3/4 time; an eighth-note triplet (160 ticks each) then a note in the second bar.
    notes = [Note(0, 60, 160, 80), Note(160, 62, 160, 80), Note(320, 64, 160, 80), Note(1440 + 120, 65, 120, 80)]
    score = Score(480, [Instrument(0, notes=notes)], time_signatures=[TimeSignature(0, 3, 4)])
    names = TOKENIZER.names(TOKENIZER.encode(score))
    assert names.count("Bar") == 2
    assert names[names.index("Note_62") - 1] == "TimeShift_4"
    second_bar = names.index("Bar", 2)
    assert names[second_bar - 1] == "TimeShift_28" and names[second_bar + 1] == "TimeShift_3"
    assert_round_trip(score, "triplets")


def test_long_notes_rests_and_drums():
    notes = [Note(0, 48, 480 * 20, 127), Note(480 * 30, 50, 10, 1)]
    drums = Instrument(0, is_drum=True, notes=[Note(0, 36, 5, 100), Note(240, 38, 5, 100)])
    score = Score(480, [Instrument(5, notes=notes), drums])
    quantized = TOKENIZER.quantize(score)
    assert [n.duration for n in quantized.instruments[0].notes] == [96, 1]  # capped at 8 quarters
    assert quantized.instruments[1].is_drum
    assert_round_trip(score, "long notes")


@pytest.mark.parametrize("corpus", ["chorales", "folk"])
def test_round_trip_is_exact_on_every_shipped_corpus_file(corpus):
    files = corpus_files(corpus)
    assert len(files) > 300
    for path in files:
        assert_round_trip(read_midi(path), path.name)


def test_round_trip_on_real_multitrack_and_piano_files(wild):
    paths = sorted(wild.glob("MIDIs_multitrack/*.mid")) + sorted(wild.glob("MIDIs_one_track/POP*.mid"))
    paths += music21_midi_files()
    for path in paths:
        assert_round_trip(read_midi(path), path.name)


def test_quantized_file_keeps_timing_with_tempo_changes(wild):
    path = wild / "MIDIs_multitrack" / "In Too Deep.mid"  # 99 tempo changes
    score = read_midi(path)
    quantized = TOKENIZER.decode(TOKENIZER.encode(score), meta=score)
    data = midi_bytes(quantized)
    assert validate_midi(data) == []
    again = read_midi(data)
    assert len(again.tempos) == 99
    assert again.duration_seconds == pytest.approx(score.duration_seconds, abs=0.1)


def test_any_token_sequence_decodes_to_a_valid_file():
    rng = np.random.default_rng(7)
    for _ in range(20):
        tokens = rng.integers(0, len(TOKENIZER), size=400)
        score = TOKENIZER.decode(tokens)
        if score.instruments:
            assert validate_midi(midi_bytes(score)) == []


def test_decode_stops_at_end_and_defaults_a_missing_duration():
    ids = TOKENIZER.ids
    tokens = [BEGIN, ids["Note_60"], ids["TimeShift_6"], ids["Note_62"], ids["Duration_3"], END, ids["Note_70"]]
    score = TOKENIZER.decode(tokens)
    assert [(n.start, n.pitch, n.duration) for n in score.notes] == [(0, 60, 12), (6, 62, 3)]


def test_save_load_and_refuse_a_mismatched_vocabulary(tmp_path):
    tokenizer = Tokenizer(TokenizerConfig(steps_per_quarter=8, velocity_bins=4))
    path = tokenizer.save(tmp_path / "tokenizer.json")
    assert Tokenizer.load(path) == tokenizer
    document = json.loads(path.read_text())
    document["vocabulary"][10] = "Note_999"
    path.write_text(json.dumps(document))
    with pytest.raises(TokenizerError, match="vocabulary does not match its config"):
        Tokenizer.load(path)
    path.write_text("{}")
    with pytest.raises(TokenizerError, match="not a melody tokenizer file"):
        Tokenizer.load(path)


def test_config_is_validated():
    with pytest.raises(ValueError, match="steps_per_quarter"):
        TokenizerConfig(steps_per_quarter=6)
    with pytest.raises(ValueError, match="velocity_bins"):
        TokenizerConfig(velocity_bins=0)


def test_token_transposition_matches_score_transposition(pop_song):
    score = read_midi(pop_song)
    tokens = TOKENIZER.encode(score)
    low, high = TOKENIZER.pitch_range(tokens)
    moved = TOKENIZER.transpose(tokens, 5)
    assert np.array_equal(moved, TOKENIZER.encode(transpose(score, 5)))
    assert TOKENIZER.pitch_range(moved) == (low + 5, high + 5)
    with pytest.raises(ValueError, match="out of 0..127"):
        TOKENIZER.transpose(tokens, 127 - high + 1)


def test_melody_line_of_a_chorale_is_the_soprano():
    path = corpus_files("chorales")[0]
    score = read_midi(path)
    lead = melody_line(score)
    soprano = next(i for i in score.instruments if i.name == "Soprano")
    assert len(lead.instruments) == 1 and lead.instruments[0].name == "Soprano"
    assert [n.pitch for n in lead.notes] == [n.pitch for n in soprano.notes]


def test_melody_line_of_a_pop_song_is_monophonic_and_not_drums(pop_song):
    lead = melody_line(read_midi(pop_song))
    (instrument,) = lead.instruments
    assert not instrument.is_drum
    notes = instrument.notes
    assert all(a.end <= b.start for a, b in zip(notes, notes[1:]))
