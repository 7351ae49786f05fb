"""Reading and writing Standard MIDI Files: the only module that touches mido and pretty_midi.

Reading (``read_midi``) survives the files people actually have:

* RIFF-wrapped ``.rmi`` files are unwrapped; junk before ``MThd`` and foreign
  chunks between tracks (``XFIH``, ...) are skipped and recorded as repairs.
* Tempo, time-signature and key events count on whatever track they sit
  (pretty_midi only honours the first track and mistimes such files). All
  tracks are merged into one time-ordered stream, so a program change on one
  track applies to later notes of its channel on any track.
* mido decodes running status. A note-on with velocity 0 is a note-off.
  Overlapping notes of the same pitch close first-in-first-out; note-offs
  without a note-on are dropped; zero-length notes get a minimal length; notes
  never released end at the end of their track. Data bytes above 127 are
  clipped. Each repair is counted in ``Score.repairs``.
* Type 2 files (independent sequences) are read as consecutive songs.
* Anything unreadable raises ``MidiReadError`` naming the file and the reason;
  file size and event count are capped so a hostile file cannot exhaust
  memory or time.

Writing (``write_midi``) produces what a DAW expects: format 1 at 480 ticks per
quarter, a conductor track with tempo, time signature and key, then one named
track per instrument with its program change at tick 0, drums on channel 10,
every note closed, no zero-length notes and no same-pitch overlaps on a
channel. ``validate_midi`` checks exactly those promises.
"""

from __future__ import annotations

import io
import os
import struct
from collections import Counter, defaultdict, deque
from pathlib import Path

import mido
from mido.midifiles import meta as mido_meta

from melody.errors import MidiReadError
from melody.files import atomic_write
from melody.score import (DRUM_CHANNEL, Instrument, KeySignature, Note, Score, Tempo, TimeSignature,
                          last_per_tick)

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
MAX_FILE_BYTES = 8 * 1024 * 1024  # the largest real performances are well under 1 MB
MAX_EVENTS = 2_000_000
MAX_QUARTERS = 200_000  # about 28 hours at 120 bpm: later events are corrupt data
WRITE_TICKS_PER_QUARTER = 480


class _LenientKeySignature(mido_meta.MetaSpec_key_signature):
    """mido's key signature, but an undecodable key becomes ``None`` instead of failing the file."""

    type = "key_signature"

    def decode(self, message, data):
        try:
            super().decode(message, data)
        except (mido_meta.KeySignatureError, IndexError):
            message.key = None

    def check(self, name, value):
        if value is not None:
            super().check(name, value)


mido_meta.add_meta_spec(_LenientKeySignature)


# ----------------------------------------------------------------------------- reading

def read_midi(source: str | os.PathLike | bytes, name: str | None = None) -> Score:
    """Read a MIDI file (a path or its bytes) into a Score, in the file's own ticks.

    Raises MidiReadError with a one-line message ``"<name>: <reason>"``.
    """
    if not isinstance(source, (bytes, bytearray)):
        name = name or str(source)
        source = _read_file(Path(source))
    name = name or "<bytes>"
    repairs: Counter = Counter()
    try:
        data = _clean_chunks(bytes(source), repairs)
        midi_file = _parse(data, repairs)
        return _to_score(midi_file, repairs)
    except MidiReadError as error:
        raise MidiReadError(f"{name}: {error}") from None


def midi_header(source: str | os.PathLike) -> dict:
    """{"format": 0/1/2, "tracks", "ticks_per_quarter"} from a MIDI file's header (RIFF unwrapped)."""
    try:
        data = _clean_chunks(_read_file(Path(source)), Counter())
    except MidiReadError as error:
        raise MidiReadError(f"{source}: {error}".replace(f"{source}: {source}: ", f"{source}: ")) from None
    file_format, tracks, division = struct.unpack(">HHH", data[8:14])
    return {"format": file_format, "tracks": tracks, "ticks_per_quarter": division}


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise MidiReadError(f"{path}: is a folder, not a MIDI file")
        if size > MAX_FILE_BYTES:
            raise MidiReadError(f"{path}: file is {size / 2**20:.1f} MB; melody reads MIDI files up to "
                                f"{MAX_FILE_BYTES // 2**20} MB")
        return path.read_bytes()
    except FileNotFoundError:
        raise MidiReadError(f"{path}: no such file") from None
    except PermissionError:
        raise MidiReadError(f"{path}: permission denied") from None
    except OSError as error:
        raise MidiReadError(f"{path}: cannot be read ({error.strerror or error})") from None


def _unwrap_riff(data: bytes) -> bytes:
    """The SMF inside a RIFF ``RMID`` file (``.rmi``): the payload of its ``data`` chunk."""
    if data[8:12] != b"RMID":
        raise MidiReadError("RIFF file that is not RIFF MIDI (RMID)")
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = data[position:position + 4], struct.unpack("<I", data[position + 4:position + 8])[0]
        if chunk_id == b"data":
            return data[position + 8:position + 8 + size]
        position += 8 + size + (size & 1)  # RIFF chunks are padded to even length
    raise MidiReadError("RIFF MIDI file without a 'data' chunk")


def _clean_chunks(data: bytes, repairs: Counter) -> bytes:
    """Check the header and rebuild the file from its MThd and MTrk chunks only."""
    if not data:
        raise MidiReadError("empty file")
    if data[:4] == b"RIFF":
        data = _unwrap_riff(data)
        repairs["unwrapped RIFF (.rmi) container"] += 1
    start = data.find(b"MThd", 0, 4096)
    if start < 0:
        raise MidiReadError("not a MIDI file (no MThd header)")
    if start > 0:
        repairs[f"skipped {start} bytes before the MThd header"] += 1
    if len(data) < start + 14:
        raise MidiReadError("truncated file (header incomplete)")
    header_size = struct.unpack(">I", data[start + 4:start + 8])[0]
    file_format, track_count, division = struct.unpack(">HHH", data[start + 8:start + 14])
    if file_format > 2:
        raise MidiReadError(f"unknown MIDI file format {file_format} (expected 0, 1 or 2)")
    if division & 0x8000:
        raise MidiReadError("SMPTE time division is not supported (only ticks per quarter note)")
    if division == 0:
        raise MidiReadError("time division is 0 ticks per quarter note")
    if track_count == 0:
        raise MidiReadError("file has no tracks")
    tracks, position = [], start + 8 + max(header_size, 6)
    while len(tracks) < track_count and position + 8 <= len(data):
        chunk_id, size = data[position:position + 4], struct.unpack(">I", data[position + 4:position + 8])[0]
        body = data[position + 8:position + 8 + size]
        if chunk_id == b"MTrk":
            if len(body) < size:
                raise MidiReadError(f"truncated file (track {len(tracks) + 1} declares {size} bytes, "
                                    f"{len(body)} remain)")
            tracks.append(data[position:position + 8 + size])
        elif chunk_id.isalnum():
            repairs[f"skipped non-track chunk {chunk_id.decode('ascii')}"] += 1
        else:
            raise MidiReadError(f"missing MTrk chunk (found bytes {chunk_id!r} where track {len(tracks) + 1} "
                                "should start)")
        position += 8 + size
    if len(tracks) < track_count:
        raise MidiReadError(f"missing MTrk chunk (header announces {track_count} tracks, file holds {len(tracks)})")
    header = b"MThd" + struct.pack(">IHHH", 6, file_format, len(tracks), division)
    return header + b"".join(tracks)


def _parse(data: bytes, repairs: Counter) -> mido.MidiFile:
    """Parse clean SMF bytes with mido; data bytes above 127 are clipped on a second try."""
    for clip in (False, True):
        try:
            return mido.MidiFile(file=io.BytesIO(data), clip=clip)
        except OSError as error:
            if not clip and "data byte must be in range" in str(error):
                repairs["clipped data bytes above 127"] += 1
                continue
            raise MidiReadError(_describe(error)) from None
        except EOFError:
            raise MidiReadError("truncated track (a message runs past the end of the data)") from None
        except Exception as error:  # mido raises many types on broken data; all mean "unreadable"
            raise MidiReadError(_describe(error)) from None


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    if "running status without last_status" in text:
        return "corrupt track (a data byte where a status byte was expected)"
    if "undefined status byte" in text:
        return f"corrupt track ({text})"
    return f"corrupt MIDI data ({text})"


def _merged_events(midi_file: mido.MidiFile) -> tuple[list, list[int]]:
    """All messages as (tick, track, message) in time order, and each track's end tick.

    Tracks of a type 2 file are independent sequences and are placed one after another.
    """
    if sum(len(track) for track in midi_file.tracks) > MAX_EVENTS:
        raise MidiReadError(f"too many events (over {MAX_EVENTS:,}); melody does not read files this large")
    limit = MAX_QUARTERS * midi_file.ticks_per_beat
    events, track_ends, offset = [], [], 0
    for index, track in enumerate(midi_file.tracks):
        tick = offset
        for message in track:
            tick += message.time
            if tick > limit:
                raise MidiReadError(f"absurd tick value {tick} in track {index + 1} "
                                    f"(beyond {MAX_QUARTERS:,} quarter notes)")
            events.append((tick, index, len(events), message))
        track_ends.append(tick)
        if midi_file.type == 2:
            offset = tick
    events.sort(key=lambda event: event[:3])
    return events, track_ends


def _to_score(midi_file: mido.MidiFile, repairs: Counter) -> Score:
    """Turn mido's messages into a Score (notes paired, meta events gathered from all tracks)."""
    ticks_per_quarter = midi_file.ticks_per_beat
    events, track_ends = _merged_events(midi_file)
    minimal_length = max(1, ticks_per_quarter // 32)
    programs = [0] * 16
    track_names: dict[int, str] = {}
    sounding: dict[tuple, deque] = defaultdict(deque)   # (track, channel, pitch) -> (start, velocity, program)
    parts: dict[tuple, list[Note]] = defaultdict(list)  # (track, channel, program) -> notes
    tempos, signatures, keys = [], [], []

    def close(part, pitch, start, velocity, end):
        if end <= start:
            repairs["gave zero-length notes a minimal length"] += 1
            end = start + minimal_length
        parts[part].append(Note(start=start, pitch=pitch, duration=end - start, velocity=velocity))

    for tick, track, _, message in events:
        kind = message.type
        if kind == "note_on" and message.velocity > 0:
            sounding[track, message.channel, message.note].append((tick, message.velocity, programs[message.channel]))
        elif kind in ("note_on", "note_off"):
            queue = sounding.get((track, message.channel, message.note))
            if queue:
                start, velocity, program = queue.popleft()  # overlapping same-pitch notes close FIFO
                close((track, message.channel, program), message.note, start, velocity, tick)
            else:
                repairs["ignored note-offs without a note-on"] += 1
        elif kind == "program_change":
            programs[message.channel] = message.program
        elif kind == "set_tempo":
            if message.tempo == 0:
                raise MidiReadError(f"tempo 0 at tick {tick} (a tempo must be above 0 microseconds per quarter)")
            tempos.append(Tempo(tick, message.tempo))
        elif kind == "time_signature":
            if message.numerator < 1 or not 1 <= message.denominator <= 64:
                repairs["ignored invalid time signatures"] += 1
            else:
                signatures.append(TimeSignature(tick, message.numerator, message.denominator))
        elif kind == "key_signature":
            if message.key is None:
                repairs["ignored undecodable key signatures"] += 1
            else:
                keys.append(KeySignature(tick, message.key))
        elif kind == "track_name" and track not in track_names:
            track_names[track] = "".join(ch for ch in message.name if ch.isprintable()).strip()  # no NULs

    for (track, channel, pitch), queue in sounding.items():
        for start, velocity, program in queue:
            repairs["closed notes never released at the end of their track"] += 1
            close((track, channel, program), pitch, start, velocity, track_ends[track])

    instruments = [
        Instrument(program=program, is_drum=channel == DRUM_CHANNEL, name=track_names.get(track, ""), notes=notes)
        for (track, channel, program), notes in sorted(parts.items())
    ]
    if not instruments:
        raise MidiReadError("no notes in the file")
    return Score(
        ticks_per_quarter=ticks_per_quarter,
        instruments=instruments,
        tempos=last_per_tick(tempos),
        time_signatures=last_per_tick(signatures),
        key_signatures=last_per_tick(keys),
        repairs=[f"{reason} ({count})" for reason, count in sorted(repairs.items())],
    )


def find_midi_files(paths) -> list[Path]:
    """MIDI files among ``paths``: files as given, folders searched recursively (any letter case), sorted."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


# ----------------------------------------------------------------------------- writing

def write_midi(score: Score, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``score`` as a DAW-ready Standard MIDI File, atomically; never overwrite unless ``force``."""
    return atomic_write(path, midi_bytes(score), force=force)


def midi_bytes(score: Score) -> bytes:
    """The Standard MIDI File (format 1, 480 ticks per quarter) for ``score``."""
    midi_file = mido.MidiFile(type=1, ticks_per_beat=WRITE_TICKS_PER_QUARTER)
    scale = WRITE_TICKS_PER_QUARTER / score.ticks_per_quarter

    def at(tick: int) -> int:
        return round(tick * scale)

    channels, programs = _assign_channels(score.instruments)
    notes_by_instrument = _resolve_overlaps(score.instruments, channels, at)
    end = max((end for notes in notes_by_instrument for _, end, _ in notes), default=0)
    midi_file.tracks.append(_conductor_track(score, at, end))
    for instrument, channel, program, notes in zip(score.instruments, channels, programs, notes_by_instrument):
        events = [(0, 0, mido.MetaMessage("track_name", name=track_name(instrument))),
                  (0, 1, mido.Message("program_change", channel=channel, program=program))]
        for start, stop, note in notes:
            events.append((start, 3, mido.Message("note_on", channel=channel, note=note.pitch,
                                                  velocity=note.velocity)))
            events.append((stop, 2, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
        midi_file.tracks.append(_track(events, end))
    buffer = io.BytesIO()
    midi_file.save(file=buffer)
    return buffer.getvalue()


def track_name(instrument: Instrument) -> str:
    """The instrument's own name, else its General MIDI name ("Drums" for a drum part)."""
    if instrument.name:
        return instrument.name
    if instrument.is_drum:
        return "Drums"
    import pretty_midi
    return pretty_midi.program_to_instrument_name(instrument.program)


def _assign_channels(instruments) -> tuple[list[int], list[int]]:
    """(channel, program) for each part: drums on channel 10 (index 9), melodic parts on the other 15.

    Each melodic part gets a channel of its own while there are enough; beyond 15
    parts, parts with the same program share a channel (they sound the same). A
    MIDI file cannot sound more than 15 melodic programs at once: beyond that the
    15 busiest programs keep their sound and every other part is played by the
    busiest kept program of its General MIDI family (or the busiest of all).
    """
    free = [channel for channel in range(16) if channel != DRUM_CHANNEL]
    melodic = [instrument for instrument in instruments if not instrument.is_drum]
    programs = [instrument.program for instrument in instruments]
    if len(melodic) <= len(free):
        channels = iter(free)
        return [DRUM_CHANNEL if instrument.is_drum else next(channels) for instrument in instruments], programs
    notes_per_program = Counter()
    for instrument in melodic:
        notes_per_program[instrument.program] += len(instrument.notes)
    kept = [program for program, _ in notes_per_program.most_common(len(free))]
    played_by = {program: program for program in kept}
    for program in notes_per_program:
        family = [kept_program for kept_program in kept if kept_program // 8 == program // 8]
        played_by.setdefault(program, (family or kept)[0])
    channel_of = dict(zip(kept, free))
    channels = [DRUM_CHANNEL if i.is_drum else channel_of[played_by[i.program]] for i in instruments]
    return channels, [p if i.is_drum else played_by[p] for i, p in zip(instruments, programs)]


def _resolve_overlaps(instruments, channels, at) -> list[list[tuple[int, int, Note]]]:
    """Notes as (start, end, note) in output ticks, so that no two notes of a pitch overlap on a channel.

    A note is cut where the next note of the same pitch on its channel starts; a note
    left with no length (two notes starting together) is dropped.
    """
    by_key = defaultdict(list)  # (channel, pitch) -> [(start, end, instrument index, note)]
    for index, (instrument, channel) in enumerate(zip(instruments, channels)):
        for note in instrument.notes:
            start = at(note.start)
            by_key[channel, note.pitch].append((start, max(at(note.end), start + 1), index, note))
    result = [[] for _ in instruments]
    for notes in by_key.values():
        notes.sort(key=lambda item: item[:2])
        for (start, end, index, note), following in zip(notes, notes[1:] + [None]):
            if following is not None:
                end = min(end, following[0])
            if end > start:
                result[index].append((start, end, note))
    return result


def _conductor_track(score: Score, at, end: int) -> mido.MidiTrack:
    events = [(0, 0, mido.MetaMessage("track_name", name="Conductor"))]
    for tempo in score.tempos or [Tempo(0, 500_000)]:
        events.append((at(tempo.tick), 1, mido.MetaMessage("set_tempo", tempo=tempo.microseconds_per_quarter)))
    for signature in score.time_signatures or [TimeSignature(0, 4, 4)]:
        events.append((at(signature.tick), 1, mido.MetaMessage(
            "time_signature", numerator=min(signature.numerator, 255), denominator=signature.denominator)))
    for key in score.key_signatures:
        try:
            events.append((at(key.tick), 1, mido.MetaMessage("key_signature", key=key.key)))
        except ValueError:
            pass  # a key mido cannot encode is left out rather than written wrong
    if score.tempos and score.tempos[0].tick > 0:
        events.append((0, 1, mido.MetaMessage("set_tempo", tempo=500_000)))
    return _track(events, end)


def _track(events, end: int) -> mido.MidiTrack:
    """A track from (tick, order, message) triples, in time order, closed by end-of-track."""
    track, now = mido.MidiTrack(), 0
    for tick, _, message in sorted(events, key=lambda event: event[:2]):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return track


# ----------------------------------------------------------------------------- validating

def validate_midi(source: str | os.PathLike | bytes) -> list[str]:
    """Problems that keep a file from being DAW-ready as ``write_midi`` promises; [] if none."""
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    try:
        midi_file = mido.MidiFile(file=io.BytesIO(bytes(data)))  # clip=False: values above 127 fail here
    except Exception as error:
        return [f"not a readable MIDI file: {error}"]
    problems = []
    if midi_file.type != 1:
        problems.append(f"format {midi_file.type}, expected 1")
    if midi_file.ticks_per_beat != WRITE_TICKS_PER_QUARTER:
        problems.append(f"{midi_file.ticks_per_beat} ticks per quarter, expected {WRITE_TICKS_PER_QUARTER}")
    if not midi_file.tracks:
        return problems + ["no tracks"]
    conductor = [message.type for message in midi_file.tracks[0]]
    for needed in ("set_tempo", "time_signature"):
        if needed not in conductor:
            problems.append(f"first track has no {needed}")
    if any(kind.startswith("note_") for kind in conductor):
        problems.append("first track holds notes")
    melodic_channels = set()
    for number, track in enumerate(midi_file.tracks, start=1):
        problems += [f"track {number}: {problem}" for problem in _track_problems(track, number > 1)]
        melodic_channels |= {m.channel for m in track if m.type == "note_on" and m.channel != DRUM_CHANNEL}
    if len(melodic_channels) > 15:
        problems.append(f"{len(melodic_channels)} melodic channels, at most 15 allowed")
    return problems


def _track_problems(track: mido.MidiTrack, is_instrument: bool) -> list[str]:
    problems = []
    if not track or track[-1].type != "end_of_track":
        problems.append("does not end with end_of_track")
    if is_instrument:
        if not any(message.type == "track_name" for message in track):
            problems.append("has no name")
        programs = [message for message in track if message.type == "program_change"]
        first_tick = 0
        if not programs or sum(m.time for m in track[:track.index(programs[0])]) != first_tick:
            problems.append("has no program change at tick 0")
    tick, sounding = 0, {}
    for message in track:
        tick += message.time
        if message.type == "note_on" and message.velocity > 0:
            if (message.channel, message.note) in sounding:
                problems.append(f"overlapping notes of pitch {message.note} at tick {tick}")
            sounding[message.channel, message.note] = tick
        elif message.type in ("note_on", "note_off"):
            start = sounding.pop((message.channel, message.note), None)
            if start is None:
                problems.append(f"note-off without note-on (pitch {message.note}, tick {tick})")
            elif start == tick:
                problems.append(f"zero-length note (pitch {message.note}, tick {tick})")
    problems += [f"note never released (pitch {pitch}, tick {start})" for (_, pitch), start in sounding.items()]
    return problems


def to_pretty_midi(score: Score):
    """The score as a ``pretty_midi.PrettyMIDI`` object (timed in seconds, by way of ``midi_bytes``)."""
    import pretty_midi
    return pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(score)))
