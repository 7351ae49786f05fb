"""Reading Standard MIDI Files into a Score: the files people actually have, repaired where that is safe.

* RIFF-wrapped ``.rmi`` files are unwrapped; junk before ``MThd`` and foreign
  chunks between tracks (``XFIH``, ...) are skipped and recorded as repairs.
* Before mido parses a track, its events are walked byte by byte
  (``_repair_track``): a meta event whose length does not fit its type (a tempo
  of 2 bytes, a time signature of 3) or an undecodable key signature is turned
  into a text event of the same bytes, so it is ignored instead of failing the
  file; a track cut off inside an event (a truncated last track) keeps its
  complete events. mido's own tables are only read, never changed.
* Tempo, time-signature and key events count on whatever track they sit
  (pretty_midi only honours the first track and mistimes such files). All
  tracks are merged into one time-ordered stream, so a program change on one
  track applies to later notes of its channel on any track. Each (track, channel,
  program) becomes one Instrument, which keeps its track's name and its channel.
* mido decodes running status. A note-on with velocity 0 is a note-off.
  Overlapping notes of the same pitch close first-in-first-out; note-offs
  without a note-on are dropped; zero-length notes get a minimal length; notes
  never released end at the end of their track. Data bytes above 127 are
  clipped. Each repair is counted in ``Score.repairs``.
* Type 2 files (independent sequences) are read as consecutive songs.
* Anything unreadable raises ``MidiReadError`` naming the file and the reason in
  our words; file size and event count are capped so a hostile file cannot
  exhaust memory or time.
"""

from __future__ import annotations

import io
import os
import struct
from collections import Counter, defaultdict, deque
from pathlib import Path

import mido
from mido.messages.specs import SPEC_BY_STATUS

from melody.errors import MidiReadError
from melody.score import DRUM_CHANNEL, Instrument, KeySignature, Note, Score, Tempo, TimeSignature, last_per_tick

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
MAX_FILE_BYTES = 8 * 1024 * 1024  # the largest real performances are well under 1 MB
MAX_EVENTS = 500_000  # six times the largest real performance we have met (Maestro, 80,000)
MAX_TRACKS = 32_767  # the header counts tracks in 16 bits, which mido (and other readers) take as signed
MAX_QUARTERS = 200_000  # about 28 hours at 120 bpm: later events are corrupt data
# The data length each meta event type must have (SMF 1.0); anything else is malformed.
META_LENGTHS = {0x00: (0, 2), 0x20: (1,), 0x21: (1,), 0x2F: (0,), 0x51: (3,), 0x54: (5,), 0x58: (4,), 0x59: (2,)}
TEXT_EVENT = 0x01


def read_midi(source: str | os.PathLike | bytes, name: str | None = None) -> Score:
    """Read a MIDI file (a path or its bytes) into a Score, in the file's own ticks.

    Raises MidiReadError with a one-line message ``"<name>: <reason>"``.
    """
    if not isinstance(source, (bytes, bytearray)):
        name = name or str(source)
        source = midi_file_bytes(Path(source))
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
        data = _clean_chunks(midi_file_bytes(Path(source)), Counter())
    except MidiReadError as error:
        raise MidiReadError(f"{source}: {error}".replace(f"{source}: {source}: ", f"{source}: ")) from None
    file_format, tracks, division = struct.unpack(">HHH", data[8:14])
    return {"format": file_format, "tracks": tracks, "ticks_per_quarter": division}


def midi_file_bytes(path: Path) -> bytes:
    """The bytes of a regular file of at most ``MAX_FILE_BYTES`` (a FIFO or a device would block or never end)."""
    import stat

    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise MidiReadError(f"{path}: is a folder, not a MIDI file")
        if not stat.S_ISREG(status.st_mode):
            raise MidiReadError(f"{path}: not a regular file (a pipe or a device?)")
        if status.st_size > MAX_FILE_BYTES:
            raise MidiReadError(f"{path}: file is {status.st_size / 2**20:.1f} MB; melody reads MIDI files up to "
                                f"{MAX_FILE_BYTES // 2**20} MB")
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
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
    if track_count > MAX_TRACKS:
        raise MidiReadError(f"{track_count:,} tracks; melody reads files of at most {MAX_TRACKS:,}")
    tracks, position, events = [], start + 8 + max(header_size, 6), 0
    while len(tracks) < track_count and position + 8 <= len(data):
        chunk_id, size = data[position:position + 4], struct.unpack(">I", data[position + 4:position + 8])[0]
        body = data[position + 8:position + 8 + size]
        if chunk_id == b"MTrk":
            if len(body) < size:
                if len(tracks) + 1 < track_count:
                    raise MidiReadError(f"truncated file (track {len(tracks) + 1} of {track_count} declares "
                                        f"{size} bytes, {len(body)} remain)")
                repairs["read a truncated last track up to its last complete event"] += 1
            body, count = _repair_track(body, repairs)
            tracks.append(body)
            events += count
            if events > MAX_EVENTS:  # counted before mido builds a message object for each
                raise MidiReadError(f"too many events (over {MAX_EVENTS:,}); melody does not read files this large")
        elif chunk_id.isalnum():
            repairs[f"skipped non-track chunk {chunk_id.decode('ascii')}"] += 1
        else:
            raise MidiReadError(f"missing MTrk chunk (found bytes {chunk_id!r} where track {len(tracks) + 1} "
                                "should start)")
        position += 8 + size
    if len(tracks) < track_count:
        raise MidiReadError(f"missing MTrk chunk (header announces {track_count} tracks, file holds {len(tracks)})")
    header = b"MThd" + struct.pack(">IHHH", 6, file_format, len(tracks), division)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(body)) + body for body in tracks)


def _repair_track(body: bytes, repairs: Counter) -> tuple[bytes, int]:
    """A track's events with malformed meta events made harmless and an incomplete last event cut off.

    Walks the events as the SMF specification lays them out (delta time, status or running
    status, data); a meta event with the wrong length for its type, or a key signature no key
    has, gets type TEXT_EVENT (same bytes, ignored by the reader). Anything else that is wrong
    (an undefined status byte, a data byte where a status should be) is left for mido to report.
    Returns the track's bytes and its number of complete events (for the event cap, checked before mido).
    """
    out, position, status, size = bytearray(body), 0, None, len(body)
    complete, events = 0, 0  # where the last complete event ends, and how many there are
    while position < size:
        position = _skip_variable_int(body, position)
        if position >= size:
            break
        byte = body[position]
        if byte == 0xFF:
            if position + 2 > size:
                break
            kind, (length, data_start) = body[position + 1], _read_variable_int(body, position + 2)
            if data_start + length > size:
                break
            data = body[data_start:data_start + length]
            if kind in META_LENGTHS and length not in META_LENGTHS[kind]:
                out[position + 1] = TEXT_EVENT
                repairs["ignored meta events of the wrong length for their type"] += 1
            elif kind == 0x59 and not _valid_key(data):
                out[position + 1] = TEXT_EVENT
                repairs["ignored undecodable key signatures"] += 1
            position = data_start + length
        elif byte in (0xF0, 0xF7):
            status = byte
            length, data_start = _read_variable_int(body, position + 1)
            position = data_start + length
        elif byte >= 0x80:
            status = byte
            position += _message_length(byte)
        elif status is None or status in (0xF0, 0xF7):
            return bytes(out), events  # corrupt: mido names it
        else:
            position += _message_length(status) - 1
        if position > size:
            break
        complete = position
        events += 1
    if complete < size:
        repairs["cut an incomplete event at the end of a track"] += 1
        return bytes(out[:complete]), events
    return bytes(out), events


def _message_length(status: int) -> int:
    """Bytes of a channel or system message with this status byte, status included (1 if undefined)."""
    spec = SPEC_BY_STATUS.get(status)
    return spec["length"] if spec else 1


def _valid_key(data: bytes) -> bool:
    """Whether key-signature data names a key: -7..7 sharps (flats negative), major or minor."""
    return len(data) == 2 and -7 <= struct.unpack("b", data[:1])[0] <= 7 and data[1] in (0, 1)


def _read_variable_int(data: bytes, position: int) -> tuple[int, int]:
    """(value, position after it) of a variable-length quantity (at most 4 bytes)."""
    value = 0
    for _ in range(4):
        if position >= len(data):
            return value, len(data) + 1
        byte = data[position]
        position += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value, position


def _skip_variable_int(data: bytes, position: int) -> int:
    return _read_variable_int(data, position)[1]


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
    """What mido's exception means, in our words (mido's own texts describe its internals)."""
    text = str(error).strip()
    if "running status without last_status" in text:
        return "corrupt track (a data byte where a status byte was expected)"
    if "undefined status byte" in text:
        return f"corrupt track ({text})"
    if "data byte must be in range" in text:
        return "corrupt track (a data byte above 127)"
    return f"corrupt track (an event whose bytes do not make a MIDI message: {type(error).__name__})"


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


class _Meta:
    """The meta events of a file gathered from all its tracks: tempos, meters, keys and track names."""

    def __init__(self):
        self.tempos, self.signatures, self.keys, self.track_names = [], [], [], {}

    def take(self, tick: int, track: int, message, repairs: Counter) -> None:
        kind = message.type
        if kind == "set_tempo":
            if message.tempo == 0:
                raise MidiReadError(f"tempo 0 at tick {tick} (a tempo must be above 0 microseconds per quarter)")
            self.tempos.append(Tempo(tick, message.tempo))
        elif kind == "time_signature":
            if message.numerator < 1 or not 1 <= message.denominator <= 64:
                repairs["ignored invalid time signatures"] += 1
            else:
                self.signatures.append(TimeSignature(tick, message.numerator, message.denominator))
        elif kind == "key_signature":
            self.keys.append(KeySignature(tick, message.key))
        elif kind == "track_name" and track not in self.track_names:
            self.track_names[track] = "".join(ch for ch in message.name if ch.isprintable()).strip()  # no NULs


def _to_score(midi_file: mido.MidiFile, repairs: Counter) -> Score:
    """Turn mido's messages into a Score (notes paired, meta events gathered from all tracks)."""
    ticks_per_quarter = midi_file.ticks_per_beat
    events, track_ends = _merged_events(midi_file)
    minimal_length = max(1, ticks_per_quarter // 32)
    programs = [0] * 16
    meta = _Meta()
    sounding: dict[tuple, deque] = defaultdict(deque)   # (track, channel, pitch) -> (start, velocity, program)
    parts: dict[tuple, list[Note]] = defaultdict(list)  # (track, channel, program) -> notes

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
        else:
            meta.take(tick, track, message, repairs)

    for (track, channel, pitch), queue in sounding.items():
        for start, velocity, program in queue:
            repairs["closed notes never released at the end of their track"] += 1
            close((track, channel, program), pitch, start, velocity, track_ends[track])

    instruments = [
        Instrument(program=program, is_drum=channel == DRUM_CHANNEL, name=meta.track_names.get(track, ""),
                   notes=notes, channel=channel)
        for (track, channel, program), notes in sorted(parts.items())
    ]
    if not instruments:
        raise MidiReadError("no notes in the file")
    score = Score(ticks_per_quarter=ticks_per_quarter, instruments=instruments, tempos=last_per_tick(meta.tempos),
                  time_signatures=last_per_tick(meta.signatures), key_signatures=last_per_tick(meta.keys),
                  repairs=[f"{reason} ({count})" for reason, count in sorted(repairs.items())])
    return score.replace(end=_resting_end(score, max(track_ends)))


def _resting_end(score: Score, track_end: int) -> int:
    """The file's end of track as the piece's end (``Score.end``) when it closes a bar or two of rest after the
    last note: on the first or second bar line from the last note's end (as melody writes a continuation whose
    last bar rests); else 0. A later end of track (47 bars of silence in one real song) is not the music's."""
    last = score.end_tick
    if not last < track_end <= last + 2 * score.longest_bar:
        return 0
    lines = [line for line in score.bar_lines(until=track_end + 1) if line >= last]
    return track_end if track_end in lines[:2] else 0


def find_midi_files(paths) -> list[Path]:
    """MIDI files among ``paths``: files as given, folders searched recursively (any letter case), sorted."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


