"""The token vocabulary: layout, exact round trips on real files, save/load, augmentation."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import corpus_files, ev, music21_midi_files, note, smf, tempo, track
from melody.corpus import quantize_file
from melody.errors import TokenizerError
from melody.keys import in_key_share
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes, validate_midi
from melody.score import Instrument, KeySignature, Note, Score, TimeSignature, melody_line, transpose
from melody.tokenizer import BEGIN, END, PAD, Tokenizer, TokenizerConfig

TOKENIZER = Tokenizer()


def assert_round_trip(score: Score, label: str, tokenizer: Tokenizer = TOKENIZER) -> None:
    """decode(encode(score)) == prepare(score); on failure name the file, the track, the note and the token."""
    tokens = tokenizer.encode(score)
    expected = tokenizer.prepare(score)
    decoded = tokenizer.decode(tokens, meta=expected)
    if decoded == expected:
        return
    assert len(decoded.instruments) == len(expected.instruments), f"{label}: tracks differ"
    for number, (got, want) in enumerate(zip(decoded.instruments, expected.instruments)):
        for index, (a, b) in enumerate(zip(got.notes, want.notes)):
            assert a == b, f"{label}: track {number} ({want.name}) note {index}: decoded {a}, expected {b}"
        assert got == want, f"{label}: track {number} differs ({len(got.notes)} vs {len(want.notes)} notes)"
    assert decoded == expected, f"{label}: timing differs"


def test_vocabulary_layout_golden_ids():
    assert len(TOKENIZER) == 608
    assert TOKENIZER.vocabulary[:4] == ("Pad", "Begin", "End", "Bar_1_1")
    assert (PAD, BEGIN, END) == (0, 1, 2)
    ids = TOKENIZER.ids
    assert ids["Bar_4_4"] == 70 and ids["TimeShift_1"] == 195 and ids["TimeShift_48"] == 242
    assert ids["Note_60"] == 303 and ids["Duration_1"] == 371 and ids["Duration_768"] == 406
    assert TOKENIZER.durations[:24] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 18, 21, 24, 30, 36, 42, 48, 60,
                                        72, 84, 96)
    assert TOKENIZER.durations[24:] == (120, 144, 168, 192, 240, 288, 336, 384, 480, 576, 672, 768)
    assert ids["Velocity_1"] == 407 and ids["Track_0"] == 415 and ids["Program_0"] == 447 and ids["Drums"] == 575
    assert ids["Key_C"] == 576 and ids["Key_Am"] == 597 and ids["Density_1"] == 600
    assert TOKENIZER.vocabulary[-1] == "Density_8"


def test_encoding_of_a_small_piece_reads_as_music():
    # Two quarter notes C4 then E4 at 480 ticks per quarter, velocity 100, piano, no key signature.
    score = read_midi(smf(track(note(0, 60, 480), note(0, 64, 480))))
    names = TOKENIZER.names(TOKENIZER.encode(score))
    assert names == ["Begin", "Key_C", "Density_4", "Track_0", "Program_0", "Bar_4_4", "Track_0", "Velocity_7",
                     "Note_60", "Duration_12", "TimeShift_12", "Note_64", "Duration_12", "End"]
    assert TOKENIZER.header_length(TOKENIZER.encode(score)) == 5


def test_bars_time_shifts_and_triplets_land_on_the_grid():
    # 3/4 time; an eighth-note triplet (160 ticks each) then a note in the second bar.
    notes = [Note(0, 60, 160, 80), Note(160, 62, 160, 80), Note(320, 64, 160, 80), Note(1440 + 120, 65, 120, 80)]
    score = Score(480, [Instrument(0, notes=notes)], time_signatures=[TimeSignature(0, 3, 4)])
    names = TOKENIZER.names(TOKENIZER.encode(score))
    assert names.count("Bar_3_4") == 2 and not [name for name in names if name.startswith("Bar_4")]
    assert names[names.index("Note_62") - 1] == "TimeShift_4"
    second_bar = names.index("Bar_3_4", names.index("Bar_3_4") + 1)
    assert names[second_bar - 1] == "TimeShift_28" and names[second_bar + 1] == "TimeShift_3"
    assert_round_trip(score, "triplets")


def test_meter_changes_are_in_the_bar_tokens_and_decode_without_a_seed():
    signatures = [TimeSignature(0, 6, 8), TimeSignature(480 * 6, 2, 4), TimeSignature(480 * 8, 7, 8)]
    notes = [Note(480 * q, 60 + q % 5, 240, 80) for q in range(14)]
    score = Score(480, [Instrument(0, notes=notes)], time_signatures=signatures)
    tokens = TOKENIZER.encode(score)
    bars = [name for name in TOKENIZER.names(tokens) if name.startswith("Bar_")]
    assert bars == ["Bar_6_8", "Bar_6_8", "Bar_2_4", "Bar_7_8", "Bar_7_8"]
    alone = TOKENIZER.decode(tokens)  # no meta: the meters come from the bar tokens
    assert [(t.tick, t.numerator, t.denominator) for t in alone.time_signatures] == [(0, 6, 8), (72, 2, 4), (96, 7, 8)]


def test_tracks_are_the_lead_first_then_high_to_low_then_drums():
    """A pop file's order (drums, bass, piano, a lead named "Melody" below the piano's top) becomes lead, piano,
    bass, drums; at one moment the lead's note is written first."""
    from melody.tokenizer import track_order

    bar = range(8)
    parts = [Instrument(0, is_drum=True, name="Drums", notes=[Note(240 * q, 36, 120, 100) for q in bar]),
             Instrument(33, name="Bass", notes=[Note(480 * q, 40, 480, 90) for q in bar]),
             Instrument(0, name="Piano", notes=[Note(480 * q, 76, 480, 70) for q in bar]),
             Instrument(73, name="Melody", notes=[Note(480 * q, 72, 480, 90) for q in bar])]
    score = Score(480, parts)
    assert track_order(score) == TOKENIZER.track_sources(score) == [3, 2, 1, 0]
    tokens = TOKENIZER.encode(score)
    body = TOKENIZER.names(tokens[TOKENIZER.header_length(tokens):])
    first_notes = [name for name in body if name.startswith(("Note_", "Track_"))][:8]
    assert first_notes == ["Track_0", "Note_72", "Track_1", "Note_76", "Track_2", "Note_40", "Track_3", "Note_36"]
    assert_round_trip(score, "pop order")


def test_tracks_with_the_same_program_stay_apart_with_their_unisons():
    # Two violin parts (program 40) in unison, a viola (41) and a piano's two hands (both program 0).
    unison = [Note(480 * q, 67, 480, 90) for q in range(8)]
    parts = [Instrument(40, name="Violin I", notes=unison, channel=0),
             Instrument(40, name="Violin II", notes=unison, channel=1),
             Instrument(41, name="Viola", notes=[Note(480 * q, 60, 480, 70) for q in range(8)], channel=2),
             Instrument(0, name="Piano RH", notes=[Note(240 * q, 72, 240, 60) for q in range(16)], channel=3),
             Instrument(0, name="Piano LH", notes=[Note(960 * q, 48, 960, 60) for q in range(4)], channel=3)]
    score = Score(480, parts)
    tokens = TOKENIZER.encode(score)
    # Tracks in ``track_order``: the lead (the piano's busy right hand, highest) first, then high to low.
    assert TOKENIZER.tracks(tokens) == [(False, 0), (False, 40), (False, 40), (False, 41), (False, 0)]
    assert TOKENIZER.track_sources(score) == [3, 0, 1, 2, 4]
    decoded = TOKENIZER.decode(tokens, meta=TOKENIZER.prepare(score))
    assert [(i.name, i.program, i.channel, len(i.notes)) for i in decoded.instruments] == \
        [("Piano RH", 0, 3, 16), ("Violin I", 40, 0, 8), ("Violin II", 40, 1, 8), ("Viola", 41, 2, 8),
         ("Piano LH", 0, 3, 4)]
    assert_round_trip(score, "string section")


def test_duplicates_merge_only_within_a_track():
    doubled = [Note(0, 60, 480, 80), Note(5, 60, 400, 90), Note(480, 62, 480, 80)]  # same step, same pitch
    score = Score(480, [Instrument(0, notes=doubled), Instrument(0, notes=doubled[:1])])
    prepared = TOKENIZER.prepare(score)
    assert [len(i.notes) for i in prepared.instruments] == [2, 1]


def test_long_notes_rests_and_drums():
    notes = [Note(0, 48, 480 * 20, 127), Note(480 * 30, 50, 10, 1), Note(480 * 40, 52, 480 * 12, 90),
             Note(480 * 60, 53, 480 * 100, 90)]
    drums = Instrument(0, is_drum=True, notes=[Note(0, 36, 5, 100), Note(240, 38, 5, 100)])
    score = Score(480, [Instrument(5, notes=notes), drums])
    prepared = TOKENIZER.prepare(score)
    # 20 and 12 quarters come through exactly; longer than 64 quarters is cut to 64.
    assert [n.duration for n in prepared.instruments[0].notes] == [240, 1, 144, 768]
    assert prepared.instruments[1].is_drum
    assert_round_trip(score, "long notes")


def test_key_from_the_file_or_estimated_and_moved_by_transposition():
    c_major = [Note(480 * q, pitch, 480, 80) for q, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 67, 64])]
    plain = Score(480, [Instrument(0, notes=c_major)])
    assert TOKENIZER.names(TOKENIZER.encode(plain))[1] == "Key_C"  # estimated (Krumhansl-Schmuckler)
    labelled = plain.replace(key_signatures=[KeySignature(0, "Am")])
    assert TOKENIZER.names(TOKENIZER.encode(labelled))[1] == "Key_Am"  # the file's own signature wins
    moved = TOKENIZER.transpose(TOKENIZER.encode(labelled), 3)
    assert TOKENIZER.names(moved)[1] == "Key_Cm"
    assert np.array_equal(moved, TOKENIZER.encode(transpose(labelled, 3)))


def test_a_signature_that_misnames_the_mode_gives_way_to_the_estimate():
    """A folk tune in D minor (F and C natural, a quarter of its notes) marked D major, as some of the Essen
    files are: the estimate, D minor, heads the tokens, so the key rule keeps the tune's F and C. The same
    notes marked F major (one flat: the relative major, the same scale) keep their signature."""
    d_minor = [Note(480 * q, pitch, 480, 80) for q, pitch in
               enumerate([62, 64, 65, 67, 69, 67, 65, 64, 62, 60, 62, 69, 69, 67, 65, 64, 62, 62])]
    tune = Score(480, [Instrument(0, notes=d_minor)])
    marked_major = tune.replace(key_signatures=[KeySignature(0, "D")])
    assert 0.7 <= in_key_share(d_minor, (2, False)) < 0.8  # the signature alone passes the share test
    assert TOKENIZER.names(TOKENIZER.encode(marked_major))[1] == "Key_Dm"
    assert TOKENIZER.trusted_key(marked_major) is None
    relative = tune.replace(key_signatures=[KeySignature(0, "F")])
    assert TOKENIZER.names(TOKENIZER.encode(relative))[1] == "Key_F"


def test_melody_only_is_a_tokenizer_setting():
    tokenizer = Tokenizer(TokenizerConfig(melody_only=True))
    score = read_midi(corpus_files("chorales")[0])
    tokens = tokenizer.encode(score)
    assert len(tokenizer.tracks(tokens)) == 1
    assert tokenizer.track_sources(score) == [next(k for k, i in enumerate(score.instruments) if i.name == "Soprano")]
    assert Tokenizer.load(tokenizer.save(Path(tempfile.mkdtemp()) / "t.json")).config.melody_only


def test_sampling_mask_allows_only_the_pieces_own_tracks_and_no_header_tokens():
    allowed = TOKENIZER.sampling_mask(3)
    names = {TOKENIZER.vocabulary[i] for i in np.flatnonzero(allowed)}
    assert {"Track_0", "Track_2", "Bar_3_4", "Note_60", "TimeShift_1", "Duration_12", "Velocity_3"} <= names
    assert not names & {"Track_3", "Program_0", "Drums", "Key_C", "Density_1", "Pad", "Begin", "End"}


@pytest.mark.parametrize("corpus, every", [("chorales", 1), ("folk", 4)])
def test_round_trip_is_exact_on_the_shipped_corpus_files(corpus, every):
    """Every chorale, and every 4th folk tune (about 2,000 of 8,462: the folk collection's files are
    all written the same way, so the other three quarters add time, not cases)."""
    files = corpus_files(corpus)[::every]
    assert len(files) > 300
    for path in files:
        assert_round_trip(read_midi(path), path.name)


def test_round_trip_on_real_multitrack_and_piano_files(wild):
    paths = sorted(wild.glob("MIDIs_multitrack/*.mid")) + sorted(wild.glob("MIDIs_one_track/POP*.mid"))
    paths += music21_midi_files()
    for path in paths:
        assert_round_trip(read_midi(path), path.name)


def test_real_multitrack_files_keep_every_track_and_every_distinct_note(wild):
    """Pop, game and piano files (several with tracks sharing a program) keep every track with its name and
    program, and every note but true duplicates: another note of its track and pitch on the same grid step."""
    paths = sorted(wild.glob("MIDIs_multitrack/*.mid")) + sorted(wild.glob("MIDIs_one_track/POP*.mid"))
    paths += music21_midi_files()
    shared, kept = 0, []
    for path in paths:
        score = read_midi(path)
        prepared = TOKENIZER.prepare(score)
        assert sorted(TOKENIZER.track_sources(score)) == list(range(len(score.instruments))), path.name
        assert [(i.program, i.is_drum, i.name, i.channel) for i in prepared.instruments] == \
            [(score.instruments[k].program, score.instruments[k].is_drum, score.instruments[k].name,
              score.instruments[k].channel) for k in TOKENIZER.track_sources(score)], path.name
        step = lambda tick: (2 * tick * 12 + score.ticks_per_quarter) // (2 * score.ticks_per_quarter)  # noqa: E731
        distinct = sum(len({(step(n.start), n.pitch) for n in i.notes}) for i in score.instruments)
        assert len(prepared.notes) == distinct, path.name
        kept.append(len(prepared.notes) / len(score.notes))
        programs = [(i.is_drum, i.program) for i in score.instruments]
        shared += len(programs) != len(set(programs))
    assert shared >= 3  # files whose tracks share a program (the case that used to merge) are in the set
    assert np.mean(np.array(kept) >= 0.99) >= 0.75  # the rest hold duplicated notes in one track (POP909 here)


def test_an_orchestral_file_with_doubled_strings_keeps_its_parts(tmp_path):
    """Violins I and II in unison, viola and cello, all program 48, each on its own channel and track."""
    def part(channel, name, pitches):
        named = ev(0, 0xFF, 0x03, len(name)) + name.encode() + ev(0, 0xC0 | channel, 48)
        return track(named, *[note(channel, p, 480, 80) for p in pitches])

    melody = [67, 69, 71, 72, 74, 72, 71, 69] * 4
    data = smf(track(tempo(0, 90)), part(0, "Violin I", melody), part(1, "Violin II", melody),
               part(2, "Viola", [p - 7 for p in melody]), part(3, "Cello", [p - 19 for p in melody]))
    (tmp_path / "strings.mid").write_bytes(data)
    out = tmp_path / "quantized.mid"
    quantize_file(tmp_path / "strings.mid", out)
    again = read_midi(out)
    assert [(i.name, i.program, i.channel, len(i.notes)) for i in again.instruments] == \
        [("Violin I", 48, 0, 32), ("Violin II", 48, 1, 32), ("Viola", 48, 2, 32), ("Cello", 48, 3, 32)]
    assert validate_midi(out) == []


def test_quantized_file_keeps_timing_with_tempo_changes(wild):
    path = wild / "MIDIs_multitrack" / "In Too Deep.mid"  # 99 tempo changes
    score = read_midi(path)
    quantized = TOKENIZER.decode(TOKENIZER.encode(score), meta=TOKENIZER.prepare(score))
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
    tokens = [BEGIN, ids["Bar_4_4"], ids["Note_60"], ids["TimeShift_6"], ids["Note_62"], ids["Duration_3"], END,
              ids["Note_70"]]
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


def test_the_token_table_is_one_declaration_and_the_docstring_shows_it():
    """Every id belongs to exactly one kind, kinds are consecutive runs in declared order, names are unique,
    the fixed special ids are the kinds', and the module docstring shows the default layout as printed."""
    import melody.tokenizer as module

    tokenizer = Tokenizer()
    kinds = tokenizer.kinds
    assert [kind.first for kind in kinds.kinds] == list(np.cumsum([0] + [len(k) for k in kinds.kinds])[:-1])
    assert sum(len(kind) for kind in kinds.kinds) == len(tokenizer) == len(set(tokenizer.vocabulary)) == 608
    assert (PAD, BEGIN, END) == (kinds["Pad"].first, kinds["Begin"].first, kinds["End"].first)
    for token in range(len(tokenizer)):
        kind = kinds.kind_of(token)
        assert tokenizer.vocabulary[token] in kind.names and token in kind
    assert tokenizer.ids["Note_60"] == kinds["Note"].token(60) and kinds["Note"].value_index(kinds["Note"].token(60)) == 60
    with pytest.raises(IndexError, match="Track has 32 tokens"):
        kinds["Track"].token(32)
    assert "\n".join(line.strip() for line in kinds.table().splitlines()) in \
        "\n".join(line.strip() for line in module.__doc__.splitlines())
    assert kinds.table().splitlines()[4].split()[:2] == ["3-194", "Bar_1_1"]


def test_a_vocabulary_maps_its_tokens_onto_another_by_name_and_kind():
    from melody.vocabulary import Vocabulary

    older = ["Pad", "Begin", "End", "Bar", "Note_60", "Note_61"]
    newer = Vocabulary([("Pad", (), "special"), ("Bar", ["3_4", "4_4"], "body"), ("Note", range(59, 62), "body"),
                        ("Key", ["C"], "header")])
    assert newer.rows_in(older).tolist() == [0, 3, 3, -1, 4, 5, -1]


def test_a_primer_ending_at_time_0_is_the_header_and_the_first_bar_line():
    """What ``generate --from-bar 1`` primes with: no note, and the bar line that tells the sampler the meter."""
    tokenizer = Tokenizer()
    score = Score(ticks_per_quarter=480, instruments=[Instrument(0, notes=[Note(0, 60, 480, 80)])],
                  time_signatures=[TimeSignature(0, 3, 4)])
    from melody.continuation import make_primer

    tokens = make_primer(score, tokenizer, at_bar=0).tokens
    header = tokenizer.header_length(tokens)
    assert tokenizer.names(tokens[header:]) == ["Bar_3_4"]


def test_a_body_resumed_after_a_stream_names_its_track_and_velocity_only_where_they_change():
    tokenizer = Tokenizer()
    score = Score(ticks_per_quarter=480, instruments=[Instrument(0, notes=[Note(0, 60, 480, 80), Note(1920, 62, 480, 80)]),
                                                     Instrument(0, notes=[Note(1920, 48, 480, 40)])])
    second_bar = Score(ticks_per_quarter=480, instruments=[Instrument(0, notes=[Note(0, 62, 480, 80)]),
                                                          Instrument(0, notes=[Note(0, 48, 480, 40)])])
    tokens = tokenizer.encode(score, end=False)
    before = tokens[:np.flatnonzero(tokenizer.is_bar(tokens))[1]]
    body = tokenizer.encode(second_bar, end=False)
    body = body[tokenizer.header_length(body):]
    velocity = tokenizer.names(body)[2]
    assert tokenizer.names(body)[:4] == ["Bar_4_4", "Track_0", velocity, "Note_62"]
    resumed = tokenizer.resumed(body, before)  # track 0 at that velocity is in force after the first bar
    assert tokenizer.names(resumed)[:2] == ["Bar_4_4", "Note_62"] and len(resumed) == len(body) - 2
    assert np.array_equal(tokenizer.resumed(body, tokens[:tokenizer.header_length(tokens)]), body)
