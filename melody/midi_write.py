"""Writing Standard MIDI Files a DAW opens as they are, and checking that promise.

``write_midi`` produces format 1 at 480 ticks per quarter: a conductor track
with tempo, time signature and key, then one named track per instrument with its
program change at tick 0, drums on channel 10, each melodic track on a channel
of its own (the one it was read from where that is free), every note closed, no
zero-length notes and no same-pitch overlaps on a channel. ``validate_midi``
checks exactly those promises.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
from collections import Counter, defaultdict
from pathlib import Path

import mido

from melody.files import atomic_write
from melody.midi_read import MAX_TRACKS
from melody.score import DRUM_CHANNEL, Instrument, Note, Score, Tempo, TimeSignature

WRITE_TICKS_PER_QUARTER = 480


def write_midi(score: Score, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``score`` as a DAW-ready Standard MIDI File, atomically; never overwrite unless ``force``."""
    return atomic_write(path, midi_bytes(score), force=force)


def midi_bytes(score: Score) -> bytes:
    """The Standard MIDI File (format 1, 480 ticks per quarter) for ``score``.

    mido encodes the meta events and program changes; note events are three bytes
    each, written here directly (``Note`` already checked pitch and velocity, and
    building a mido message per note took 40 s for a million notes).
    """
    scale = WRITE_TICKS_PER_QUARTER / score.ticks_per_quarter

    def at(tick: int) -> int:
        return round(tick * scale)

    instruments = _at_most(score.instruments, MAX_TRACKS - 1)
    channels, programs = _assign_channels(instruments)
    notes_by_instrument = _resolve_overlaps(instruments, channels, at)
    end = max([at(score.end)] + [end for notes in notes_by_instrument for _, end, _ in notes])
    tracks = [_conductor_track(score, at, end)]
    for instrument, channel, program, notes in zip(instruments, channels, programs, notes_by_instrument):
        events = [(0, 0, mido.MetaMessage("track_name", name=track_name(instrument)).bin()),
                  (0, 1, bytes((0xC0 | channel, program)))]
        note_on, note_off = 0x90 | channel, 0x80 | channel
        for start, stop, note in notes:
            events.append((start, 3, bytes((note_on, note.pitch, note.velocity))))
            events.append((stop, 2, bytes((note_off, note.pitch, 0))))
        tracks.append(_track(events, end))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), WRITE_TICKS_PER_QUARTER)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(track)) + track for track in tracks)


def _at_most(instruments, count: int) -> list[Instrument]:
    """``instruments`` in at most ``count`` parts: each one past the first ``count`` joins the first kept
    part of its instrument (drums or program), else the last kept part."""
    kept, joining = list(instruments[:count]), defaultdict(list)
    first = {}
    for index, part in enumerate(kept):
        first.setdefault((part.is_drum, part.program), index)
    for extra in instruments[count:]:
        joining[first.get((extra.is_drum, extra.program), len(kept) - 1)].extend(extra.notes)
    for index, notes in joining.items():
        kept[index] = dataclasses.replace(kept[index], notes=kept[index].notes + tuple(notes))
    return kept


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

    Each melodic part gets a channel of its own while there are enough: the channel it was
    read from if no other part took it first, else the lowest free one. Beyond 15 parts,
    parts with the same program share a channel (they sound the same). A MIDI file cannot
    sound more than 15 melodic programs at once: beyond that the 15 busiest programs keep
    their sound and every other part is played by the busiest kept program of its General
    MIDI family (or the busiest of all).
    """
    free = [channel for channel in range(16) if channel != DRUM_CHANNEL]
    melodic = [instrument for instrument in instruments if not instrument.is_drum]
    programs = [instrument.program for instrument in instruments]
    if len(melodic) <= len(free):
        wanted = [i.channel if not i.is_drum and i.channel in free else None for i in instruments]
        taken = {channel for channel in wanted if channel is not None}
        claimed, channels = set(), []
        spare = iter([channel for channel in free if channel not in taken])
        for instrument, channel in zip(instruments, wanted):
            if instrument.is_drum:
                channels.append(DRUM_CHANNEL)
            elif channel is not None and channel not in claimed:
                claimed.add(channel)
                channels.append(channel)
            else:
                channels.append(next(spare))
        return channels, programs
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


def _conductor_track(score: Score, at, end: int) -> bytes:
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
    return _track([(tick, order, message.bin()) for tick, order, message in events], end)


def _track(events, end: int) -> bytes:
    """A track's bytes from (tick, order, message bytes) triples, in time order, closed by end-of-track.

    Running status, as mido writes it: a channel message with the status byte of the one
    before it leaves that byte out; a meta event breaks the run.
    """
    out, now, running = bytearray(), 0, None
    for tick, _, message in sorted(events, key=lambda event: event[:2]):
        out += _variable_int(tick - now)
        status = message[0]
        out += message[1:] if status == running else message
        running = status if status < 0xF0 else None
        now = tick
    return bytes(out + _variable_int(max(0, end - now)) + b"\xff\x2f\x00")


def _variable_int(value: int) -> bytes:
    """A delta time as a MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    if value < 0x80:
        return bytes((value,))
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


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
