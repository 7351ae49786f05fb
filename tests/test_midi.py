"""Reading real and hostile MIDI files, and writing files a DAW accepts."""

from __future__ import annotations

import io
import struct
import time

import mido
import pretty_midi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corpus_files, ev, music21_midi_files, note, smf, tempo, track
from melody import midi_read
from melody.errors import MidiReadError, OutputExistsError
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes, validate_midi, write_midi
from melody.score import Instrument, Note, Score, Tempo

PIANO_TRACK = track(note(0, 60, 480), note(0, 64, 480))


# ----------------------------------------------------------------------------- structure

def test_type0_splits_channels_into_instruments_and_keeps_drums():
    data = smf(track(ev(0, 0xC0, 33), note(0, 40, 480), note(9, 36, 120), note(1, 72, 240)), file_format=0)
    score = read_midi(data)
    by_kind = {(i.program, i.is_drum): [n.pitch for n in i.notes] for i in score.instruments}
    assert by_kind == {(33, False): [40], (0, True): [36], (0, False): [72]}


def test_type1_tempo_on_a_later_track_counts():
    # Conductor track without tempo; the tempo (60 bpm) sits on the second track.
    data = smf(track(), track(tempo(0, 60), note(0, 60, 480 * 4)))
    score = read_midi(data)
    assert score.tempos == (Tempo(0, 1_000_000),)
    assert score.duration_seconds == pytest.approx(4.0)
    # pretty_midi reads the same file as 2 seconds long: the bug we must not inherit.
    with pytest.warns(RuntimeWarning, match="non-zero tracks"):
        assert pretty_midi.PrettyMIDI(io.BytesIO(data)).get_end_time() == pytest.approx(2.0)


def test_type2_tracks_are_consecutive_songs():
    data = smf(track(note(0, 60, 480)), track(note(0, 62, 960)), file_format=2)
    score = read_midi(data)
    assert [(n.start, n.pitch) for n in score.notes] == [(0, 60), (480, 62)]


def test_running_status_and_velocity_zero_note_off():
    # 0x90 once, then data bytes only (running status); velocity 0 ends each note.
    body = ev(0, 0x90, 60, 90) + ev(240, 60, 0) + ev(0, 62, 80) + ev(240, 62, 0)
    score = read_midi(smf(track(body)))
    assert score.notes == [Note(0, 60, 240, 90), Note(240, 62, 240, 80)]
    assert score.repairs == ()


def test_overlapping_same_pitch_notes_close_first_in_first_out():
    body = ev(0, 0x90, 60, 100) + ev(100, 0x90, 60, 50) + ev(100, 0x80, 60, 0) + ev(300, 0x80, 60, 0)
    score = read_midi(smf(track(body)))
    assert score.notes == [Note(0, 60, 200, 100), Note(100, 60, 400, 50)]


def test_zero_length_and_unreleased_notes_are_repaired_and_recorded():
    body = ev(0, 0x90, 60, 100) + ev(0, 0x80, 60, 0) + ev(0, 0x90, 64, 100) + ev(960, 0x90, 67, 100, )
    score = read_midi(smf(track(body + ev(480, 0xFF, 0x01, 0x00))))
    assert [(n.pitch, n.start, n.duration) for n in score.notes] == [(60, 0, 15), (64, 0, 1440), (67, 960, 480)]
    assert "gave zero-length notes a minimal length (1)" in score.repairs
    assert "closed notes never released at the end of their track (2)" in score.repairs


def test_note_off_without_note_on_is_ignored_and_recorded():
    score = read_midi(smf(track(ev(0, 0x80, 50, 0), note(0, 60, 480))))
    assert [n.pitch for n in score.notes] == [60]
    assert score.repairs == ("ignored note-offs without a note-on (1)",)


def test_data_bytes_above_127_are_clipped_and_recorded():
    score = read_midi(smf(track(ev(0, 0x90, 60, 200), ev(480, 0x80, 60, 0))))
    assert score.notes == [Note(0, 60, 480, 127)]
    assert score.repairs == ("clipped data bytes above 127 (1)",)


def test_invalid_key_signature_is_ignored_not_fatal():
    score = read_midi(smf(track(ev(0, 0xFF, 0x59, 0x02, 0x0F, 0x05), note(0, 60, 480))))
    assert score.key_signatures == ()
    assert score.repairs == ("ignored undecodable key signatures (1)",)


def test_riff_rmi_is_unwrapped():
    inner = smf(PIANO_TRACK)
    data_chunk = b"data" + struct.pack("<I", len(inner)) + inner
    riff = b"RIFF" + struct.pack("<I", 4 + len(data_chunk)) + b"RMID" + data_chunk
    score = read_midi(riff)
    assert len(score.notes) == 2
    assert score.repairs == ("unwrapped RIFF (.rmi) container (1)",)


def test_foreign_chunks_between_tracks_are_skipped():
    data = smf(PIANO_TRACK)
    data = data[:14] + b"XFIH" + struct.pack(">I", 3) + b"abc" + data[14:]
    assert len(read_midi(data).notes) == 2


def test_meta_events_too_short_for_their_type_are_ignored_not_fatal():
    # A tempo of 2 bytes (3 required) and a time signature of 3 bytes (4 required): other readers shrug.
    data = smf(track(ev(0, 0xFF, 0x51, 0x02, 0x07, 0xA1), ev(0, 0xFF, 0x58, 0x03, 3, 2, 24), note(0, 60, 480),
                     note(0, 62, 480)))
    score = read_midi(data)
    assert [n.pitch for n in score.notes] == [60, 62]
    assert score.tempos == () and score.time_signatures == ()
    assert score.repairs == ("ignored meta events of the wrong length for their type (2)",)


def test_a_truncated_last_track_keeps_its_complete_events():
    whole = smf(track(note(0, 60, 480), note(0, 62, 480), note(0, 64, 480)))
    cut = whole[:-7]  # inside the last note-off, end-of-track gone
    score = read_midi(cut)
    assert [n.pitch for n in score.notes] == [60, 62, 64]
    assert "read a truncated last track up to its last complete event (1)" in score.repairs
    assert "cut an incomplete event at the end of a track (1)" in score.repairs


def test_reading_changes_nothing_in_mido():
    import mido.midifiles.meta as meta

    before = dict(meta._META_SPECS)
    read_midi(smf(track(ev(0, 0xFF, 0x59, 0x02, 0x0F, 0x05), note(0, 60, 480))))
    assert dict(meta._META_SPECS) == before
    assert meta._META_SPECS[0x59].__module__.startswith("mido")


# ----------------------------------------------------------------------------- failures

BROKEN = {
    "empty file": b"",
    "not a MIDI file": b"<html>this is a web page</html>",
    "truncated file": smf(PIANO_TRACK)[:10],
    "truncated file (track 1 of 2": smf(PIANO_TRACK, PIANO_TRACK)[:30],
    "missing MTrk": smf(PIANO_TRACK)[:14] + b"\x00\x01\x02\x03\x04\x05\x06\x07",
    "header announces 2 tracks": smf(PIANO_TRACK)[:10] + b"\x00\x02" + smf(PIANO_TRACK)[12:],
    "SMPTE": smf(PIANO_TRACK, division=0xE728),
    "time division is 0": smf(PIANO_TRACK, division=0),
    "tempo 0": smf(track(ev(0, 0xFF, 0x51, 0x03, 0, 0, 0), note(0, 60, 10))),
    "no tracks": smf(),
    "no notes": smf(track(tempo(0, 120))),
    "absurd tick value": smf(track(ev(0x0FFFFFFF, 0x90, 60, 100), ev(0x0FFFFFFF, 0x80, 60, 0))),
    "undefined status byte": smf(track(ev(0, 0xF4, 1, 2), note(0, 60, 10))),
    "data byte where a status byte": smf(track(ev(0, 60, 100), note(0, 60, 10))),
    "unknown MIDI file format": smf(PIANO_TRACK, file_format=7),
    "RIFF MIDI file without a 'data' chunk": b"RIFF\x04\x00\x00\x00RMID",
}


@pytest.mark.parametrize("reason", BROKEN)
def test_broken_files_raise_one_project_error_naming_file_and_reason(reason):
    with pytest.raises(MidiReadError) as caught:
        read_midi(BROKEN[reason], name="song.mid")
    message = str(caught.value)
    assert message.startswith("song.mid: ") and reason in message
    assert "\n" not in message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MidiReadError, match="no such file"):
        read_midi(tmp_path / "missing.mid")
    with pytest.raises(MidiReadError, match="is a folder"):
        read_midi(tmp_path)


def test_huge_file_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "huge.mid"
    path.write_bytes(smf(PIANO_TRACK))
    monkeypatch.setattr(midi_read, "MAX_FILE_BYTES", 20)
    with pytest.raises(MidiReadError, match="melody reads MIDI files up to"):
        read_midi(path)


def test_event_count_is_capped(monkeypatch):
    monkeypatch.setattr(midi_read, "MAX_EVENTS", 10)
    with pytest.raises(MidiReadError, match="too many events"):
        read_midi(smf(track(*[note(0, 60, 10)] * 8)))


def _mutations(data: bytes):
    """Truncate, flip, insert, splice: the damage real files suffer."""
    position = st.integers(0, max(0, len(data) - 1))
    return st.one_of(
        position.map(lambda i: data[:i]),
        st.tuples(position, st.integers(0, 255)).map(lambda t: data[:t[0]] + bytes([t[1]]) + data[t[0] + 1:]),
        st.tuples(position, st.binary(min_size=1, max_size=8)).map(lambda t: data[:t[0]] + t[1] + data[t[0]:]),
        st.tuples(position, position).map(lambda t: data[:min(t)] + data[max(t):]),
        st.tuples(position, position, position).map(lambda t: data[:t[0]] + data[t[1]:t[1] + 64] + data[t[2]:]),
    )


SEEDS = [path.read_bytes() for path in music21_midi_files() if path.stat().st_size < 4000][:8]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS).flatmap(_mutations))
def test_fuzzed_real_files_give_a_score_or_the_project_error(data):
    started = time.perf_counter()
    try:
        score = read_midi(data, name="fuzz.mid")
    except MidiReadError:
        pass
    else:
        assert score.instruments and all(instrument.notes for instrument in score.instruments)
        assert validate_midi(midi_bytes(score)) == []
    assert time.perf_counter() - started < 5.0


# ----------------------------------------------------------------------------- real files

def test_music21_files_read_and_rewrite_validly():
    for path in music21_midi_files():
        score = read_midi(path)
        rewritten = midi_bytes(score)
        assert validate_midi(rewritten) == [], path.name
        assert read_midi(rewritten).duration_seconds == pytest.approx(score.duration_seconds, abs=0.01), path.name


def test_mozart_tempo_map_survives_a_rewrite():
    path = [p for p in music21_midi_files() if p.name == "k525MIDIMvt1.mid"][0]
    score = read_midi(path)
    again = read_midi(midi_bytes(score))
    assert len(again.tempos) == len(score.tempos) == 83
    assert again.duration_seconds == pytest.approx(score.duration_seconds, abs=0.01)


def test_wild_files_read_or_fail_cleanly(wild):
    files = sorted(wild.glob("MIDIs_*/*.mid"))
    assert len(files) >= 30
    failures = {}
    for path in files:
        try:
            score = read_midi(path)
        except MidiReadError as error:
            failures[path.name] = str(error)
            continue
        assert validate_midi(midi_bytes(score)) == [], path.name
    assert list(failures) == ["empty.mid"]  # a file with no notes; the corrupt one is repaired


def test_pop_song_keeps_drums_and_every_track(pop_song):
    score = read_midi(pop_song)
    assert [i.is_drum for i in score.instruments].count(True) == 1
    assert len(score.instruments) == 13
    again = read_midi(midi_bytes(score))
    assert [(i.program, i.is_drum, i.name) for i in again.instruments] == \
        [(i.program, i.is_drum, i.name) for i in score.instruments]


def test_type0_file_from_the_wild(wild):
    path = wild / "MIDIs_multitrack" / "d6caebd1964d9e4a3c5ea59525230e2a.mid"
    assert mido.MidiFile(path).type == 0
    score = read_midi(path)
    assert len(score.instruments) == 9 and len(score.tempos) == 65


def test_corrupt_file_from_the_wild_is_repaired(wild):
    score = read_midi(wild / "MIDIs_corrupted" / "ValueError_Control168.mid")
    assert score.repairs == ("clipped data bytes above 127 (1)",)
    assert len(score.notes) > 6000


# ----------------------------------------------------------------------------- writing

def test_written_file_is_daw_ready(pop_song):
    data = midi_bytes(read_midi(pop_song))
    midi_file = mido.MidiFile(file=io.BytesIO(data))
    assert (midi_file.type, midi_file.ticks_per_beat) == (1, 480)
    names = [next(m.name for m in t if m.type == "track_name") for t in midi_file.tracks]
    assert names[0] == "Conductor" and "Drums" in names
    drum_track = midi_file.tracks[names.index("Drums")]
    assert {m.channel for m in drum_track if m.type.startswith("note")} == {9}
    assert validate_midi(data) == []


def test_a_piece_ending_in_bars_of_rest_keeps_them_in_its_file():
    """A score whose end lies a bar after its last note is written with its end of track there and read back
    ending there; an end of track far later, or off a bar line, is not the music's end."""
    ended = Score(480, (Instrument(0, notes=(Note(0, 60, 480, 90),)),), end=2 * 1920)
    assert ended.end_tick == 3840 and Score(480, end=960).end_tick == 960
    written = mido.MidiFile(file=io.BytesIO(midi_bytes(ended)))
    assert all(sum(message.time for message in part) == 3840 for part in written.tracks)
    back = read_midi(midi_bytes(ended))
    assert (back.end, back.end_tick, back.notes) == (3840, 3840, list(ended.notes))
    for end_of_track, end in ((1920 - 480, 1920), (3840 - 480, 3840), (47 * 1920 - 480, 480), (2000 - 480, 480)):
        score = read_midi(smf(track(note(0, 60, 480), ev(end_of_track, 0xFF, 0x01, 0x00))))
        assert score.end_tick == end, end_of_track
    with pytest.raises(ValueError):
        Score(480, end=-1)


def test_writer_resolves_overlaps_and_zero_length():
    notes = [Note(0, 60, 480, 100), Note(240, 60, 480, 100), Note(240, 60, 100, 90)]
    score = Score(480, [Instrument(0, notes=notes)])
    data = midi_bytes(score)
    assert validate_midi(data) == []
    assert [(n.start, n.duration) for n in read_midi(data).notes] == [(0, 240), (240, 480)]


def test_more_than_15_melodic_parts_share_channels_by_program():
    parts = [Instrument(program % 3, notes=[Note(0, 60 + program, 10, 100)]) for program in range(20)]
    data = midi_bytes(Score(480, parts))
    assert validate_midi(data) == []
    assert len({n.pitch for n in read_midi(data).notes}) == 20


def test_more_than_15_programs_fall_back_to_a_kept_program_of_their_family():
    parts = [Instrument(program * 8, notes=[Note(t, 40 + program, 1, 100) for t in range(20 - program)])
             for program in range(16)]
    parts.append(Instrument(121, notes=[Note(0, 70, 10, 100)]))  # family 15, like program 120
    again = read_midi(midi_bytes(Score(480, parts)))
    assert validate_midi(midi_bytes(again)) == []
    programs = sorted({i.program for i in again.instruments})
    assert programs == [program * 8 for program in range(15)]  # 120 had the fewest notes
    assert len(again.notes) == sum(20 - program for program in range(16)) + 1


def test_validator_finds_problems():
    midi_file = mido.MidiFile(type=0, ticks_per_beat=96)
    midi_file.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=90)]))
    buffer = io.BytesIO()
    midi_file.save(file=buffer)
    problems = validate_midi(buffer.getvalue())
    assert "format 0, expected 1" in problems
    assert "96 ticks per quarter, expected 480" in problems
    assert "first track has no set_tempo" in problems
    assert "track 1: note never released (pitch 60, tick 0)" in problems


def test_write_is_atomic_and_never_overwrites(tmp_path):
    score = read_midi(smf(PIANO_TRACK))
    out = tmp_path / "song.mid"
    write_midi(score, out)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="already exists") as caught:
        write_midi(score.replace(ticks_per_quarter=240), out)
    assert "--" not in str(caught.value)  # a library error names no command-line flag
    assert out.read_bytes() == before
    write_midi(score.replace(ticks_per_quarter=240), out, force=True)
    assert out.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["song.mid"]  # no temporary file left behind


@pytest.mark.parametrize("path", corpus_files("chorales")[:40] + corpus_files("folk")[:40], ids=lambda p: p.name)
def test_shipped_corpus_files_are_valid(path):
    assert validate_midi(path) == []


def test_track_counts_readers_take_as_negative_are_refused_on_reading_and_joined_on_writing():
    """The header counts tracks in 16 bits and mido reads them signed: 32,768 tracks would read as none."""
    with pytest.raises(MidiReadError, match="32,768 tracks; melody reads files of at most 32,767"):
        read_midi(smf(*[track(note(0, 60, 480))] * 32_768))
    pianos = [Instrument(0, notes=(Note(i * 480, 60, 480, 100),)) for i in range(32_767)]
    score = Score(480, (*pianos, Instrument(5, notes=(Note(0, 72, 960, 90),))))
    written = mido.MidiFile(file=io.BytesIO(midi_bytes(score)))
    assert len(written.tracks) == 32_767  # the conductor and 32,766 parts
    assert sum(message.type == "note_on" for track_ in written.tracks for message in track_) == 32_768
    first, last = written.tracks[1], written.tracks[-1]
    assert [m.note for m in first if m.type == "note_on"] == [60, 60]  # the 32,767th piano joined the first
    assert sum(m.time for m in first if m.type != "end_of_track") == 32_766 * 480 + 480
    assert [m.note for m in last if m.type == "note_on"] == [72, 60]  # program 5 had no part of its own
