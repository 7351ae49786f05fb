"""The score model: what melody knows about a piece of music.

Time is counted in integer ticks, ``ticks_per_quarter`` to a quarter note,
exactly as in a Standard MIDI File. Nothing here reads or writes files and
nothing imports mido, pretty_midi or TensorFlow: these are plain values that
check their own input.

    Score
      ticks_per_quarter           ticks in one quarter note (beat)
      instruments: [Instrument]   program, drum flag, name, notes
      tempos: [Tempo]             the tempo map, sorted by tick
      time_signatures, key_signatures
      repairs                     what the reader had to fix (not compared)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from operator import attrgetter

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 1, carries General MIDI drums
DEFAULT_MICROSECONDS_PER_QUARTER = 500_000  # 120 beats per minute, the SMF default


@dataclass(frozen=True, order=True)
class Note:
    """One note: ``start`` and ``duration`` in ticks, ``pitch`` 0..127 (MIDI note number), ``velocity`` 1..127."""

    start: int
    pitch: int
    duration: int
    velocity: int

    def __post_init__(self):
        if self.start < 0:
            raise ValueError(f"Note start must be >= 0 ticks, got {self.start}")
        if self.duration < 1:
            raise ValueError(f"Note duration must be >= 1 tick, got {self.duration}")
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"Note pitch must be in 0..127, got {self.pitch}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"Note velocity must be in 1..127, got {self.velocity}")

    @property
    def end(self) -> int:
        return self.start + self.duration


note_order = attrgetter("start", "pitch", "duration", "velocity")  # Note's own order, ten times faster to sort by


@dataclass(frozen=True)
class Tempo:
    """A tempo change at ``tick``: ``microseconds_per_quarter`` as stored in MIDI."""

    tick: int
    microseconds_per_quarter: int

    def __post_init__(self):
        if self.microseconds_per_quarter <= 0:
            raise ValueError(f"Tempo must be > 0 microseconds per quarter, got {self.microseconds_per_quarter}")

    @property
    def bpm(self) -> float:
        return 60_000_000 / self.microseconds_per_quarter


def parse_meter(text: str) -> tuple[int, int]:
    """'6/8' -> (6, 8); ValueError for text that is not a meter (whether melody can write it is the
    tokenizer's to say)."""
    numerator, _, denominator = text.partition("/")
    if not (numerator.strip().isdigit() and denominator.strip().isdigit()):
        raise ValueError(f"expected a meter such as 3/4 or 6/8, got {text!r}")
    return int(numerator), int(denominator)


@dataclass(frozen=True)
class TimeSignature:
    """A time signature from ``tick`` on: ``numerator`` beats of 1/``denominator`` notes."""

    tick: int
    numerator: int
    denominator: int

    def __post_init__(self):
        if self.numerator < 1:
            raise ValueError(f"Time signature numerator must be >= 1, got {self.numerator}")
        if self.denominator < 1 or self.denominator & (self.denominator - 1):
            raise ValueError(f"Time signature denominator must be a power of 2, got {self.denominator}")

    def bar_ticks(self, ticks_per_quarter: int) -> int:
        """Length of one bar in ticks (at least one tick)."""
        return max(1, round(self.numerator * ticks_per_quarter * 4 / self.denominator))


@dataclass(frozen=True)
class KeySignature:
    """A key from ``tick`` on, named as mido names it (``'C'``, ``'F#m'``, ``'Bb'``)."""

    tick: int
    key: str


@dataclass(frozen=True)
class Instrument:
    """One part (a track): a General MIDI ``program`` (0..127), drum flag, name, notes sorted by start,
    and the MIDI ``channel`` (0..15) it was read from, if any (the writer keeps it where it can)."""

    program: int
    is_drum: bool = False
    name: str = ""
    notes: tuple[Note, ...] = ()
    channel: int | None = None

    def __post_init__(self):
        if not 0 <= self.program <= 127:
            raise ValueError(f"Instrument program must be in 0..127, got {self.program}")
        if self.channel is not None and not 0 <= self.channel <= 15:
            raise ValueError(f"Instrument channel must be in 0..15, got {self.channel}")
        object.__setattr__(self, "notes", tuple(sorted(self.notes, key=note_order)))


@dataclass(frozen=True)
class Score:
    """A piece: instruments and their notes on one tick timeline with its tempo map."""

    ticks_per_quarter: int
    instruments: tuple[Instrument, ...] = ()
    tempos: tuple[Tempo, ...] = ()
    time_signatures: tuple[TimeSignature, ...] = ()
    key_signatures: tuple[KeySignature, ...] = ()
    repairs: tuple[str, ...] = field(default=(), compare=False)
    # Where the piece ends when that is after its last note (its last bars rest): the bar line a generation
    # stopped at, or a MIDI file's end of track on one (``midi_read``); 0 for the end of the last note.
    end: int = 0

    def __post_init__(self):
        if self.ticks_per_quarter < 1:
            raise ValueError(f"ticks_per_quarter must be >= 1, got {self.ticks_per_quarter}")
        if self.end < 0:
            raise ValueError(f"end must be >= 0, got {self.end}")
        for name in ("instruments", "tempos", "time_signatures", "key_signatures", "repairs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("tempos", "time_signatures", "key_signatures"):
            object.__setattr__(self, name, tuple(sorted(getattr(self, name), key=lambda event: event.tick)))

    def replace(self, **changes) -> Score:
        """A copy with the given fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def notes(self) -> list[Note]:
        """Every note of every instrument, sorted by start."""
        return sorted((note for instrument in self.instruments for note in instrument.notes), key=note_order)

    @property
    def end_tick(self) -> int:
        """The tick where the piece ends: where its last note ends, or its ``end`` if later (0 for nothing)."""
        return max(self.end, max((note.end for part in self.instruments for note in part.notes), default=0))

    def tick_to_seconds(self, tick: int) -> float:
        """Seconds from the start to ``tick``, following the tempo map."""
        seconds, last_tick, tempo = 0.0, 0, DEFAULT_MICROSECONDS_PER_QUARTER
        for change in self.tempos:
            if change.tick >= tick:
                break
            seconds += (change.tick - last_tick) * tempo / 1e6 / self.ticks_per_quarter
            last_tick, tempo = change.tick, change.microseconds_per_quarter
        return seconds + (tick - last_tick) * tempo / 1e6 / self.ticks_per_quarter

    @property
    def duration_seconds(self) -> float:
        return self.tick_to_seconds(self.end_tick)

    @property
    def longest_bar(self) -> int:
        """Ticks of the longest bar its meters make (4/4 if none)."""
        return max([s.bar_ticks(self.ticks_per_quarter) for s in self.time_signatures] or [4 * self.ticks_per_quarter])

    def bar_lines(self, until: int | None = None) -> list[int]:
        """Ticks where bars start, from 0 up to ``until`` (default: the end), 4/4 if no signature."""
        until = self.end_tick if until is None else until
        signatures = list(self.time_signatures) or [TimeSignature(0, 4, 4)]
        if signatures[0].tick > 0:
            signatures.insert(0, TimeSignature(0, 4, 4))
        bars, tick = [], 0
        for index, signature in enumerate(signatures):
            next_change = signatures[index + 1].tick if index + 1 < len(signatures) else None
            tick = max(tick, signature.tick)
            step = signature.bar_ticks(self.ticks_per_quarter)
            while tick < until and (next_change is None or tick < next_change):
                bars.append(tick)
                tick += step
            if next_change is not None and tick > next_change:
                tick = next_change  # a signature change starts a new bar
        return bars


def excerpt(score: Score, start: int, end: int | None = None) -> Score:
    """The part of ``score`` from tick ``start`` on (its notes starting before ``end``, if given, and lasting to
    ``end`` at least), moved to begin at 0, with the tempo, meter and key then in force."""
    def from_start(events):
        before = [e for e in events if e.tick <= start][-1:]
        return [dataclasses.replace(e, tick=max(0, e.tick - start)) for e in before + [e for e in events
                                                                                        if e.tick > start]]

    return score.replace(
        instruments=[dataclasses.replace(i, notes=[dataclasses.replace(n, start=n.start - start) for n in i.notes
                                                   if n.start >= start and (end is None or n.start < end)])
                     for i in score.instruments],
        time_signatures=from_start(score.time_signatures), key_signatures=from_start(score.key_signatures),
        tempos=from_start(score.tempos), end=max(0, (score.end if end is None else end) - start))


def end_line(score: Score, grid: int) -> int:
    """The bar line where ``score``'s last bar ends: the first at or after its end (``end_tick``), seen on a grid of
    ``grid`` steps per quarter note (as the tokenizer quantizes), a release less than a 16th past a bar line being
    no bar more (a player letting go late). Whoever asks where a seed ends (the primer, the loops, the bars
    ``--after`` counts, the measures of a continuation) asks this."""
    tpq = score.ticks_per_quarter
    end = round(score.end_tick * grid / tpq) - grid // 4  # in steps
    return next(line for line in score.bar_lines(until=max(0, score.end_tick) + score.longest_bar + 1)
                if line * grid >= end * tpq)


def cut(score: Score, end: int) -> Score:
    """``score`` as if it ended at tick ``end``: the notes that start before it, shortened to end there at the
    latest, and the tempo, meter and key changes before it."""
    def before(events):
        return [e for e in events if e.tick < end] or list(events[:1])

    parts = [dataclasses.replace(part, notes=[dataclasses.replace(n, duration=min(n.duration, end - n.start))
                                              for n in part.notes if n.start < end])
             for part in score.instruments]
    return score.replace(instruments=parts, tempos=before(score.tempos), time_signatures=before(score.time_signatures),
                         key_signatures=before(score.key_signatures), end=end)


def last_per_tick(events) -> list:
    """Meta events (tempo, signatures) sorted by tick, keeping the last of several on one tick: the one in force."""
    by_tick = {event.tick: event for event in events}
    return [by_tick[tick] for tick in sorted(by_tick)]


def transpose(score: Score, semitones: int) -> Score:
    """The score moved by ``semitones``, key signatures too; drums stay. ValueError if a pitch leaves 0..127."""
    from melody.keys import transposed_key_name

    low, high = pitch_range(score)
    if low is not None and not (0 <= low + semitones and high + semitones <= 127):
        raise ValueError(f"Transposing by {semitones} moves pitches {low}..{high} out of 0..127")
    keys = [dataclasses.replace(k, key=transposed_key_name(k.key, semitones)) for k in score.key_signatures]
    return score.replace(key_signatures=keys, instruments=[
        instrument if instrument.is_drum else dataclasses.replace(
            instrument, notes=[dataclasses.replace(note, pitch=note.pitch + semitones) for note in instrument.notes])
        for instrument in score.instruments
    ])


def allowed_transpositions(score: Score, max_semitones: int = 6) -> list[int]:
    """Every shift in -max_semitones..max_semitones that keeps all non-drum pitches in 0..127."""
    low, high = pitch_range(score)
    if low is None:
        return [0]
    return [shift for shift in range(-max_semitones, max_semitones + 1) if low + shift >= 0 and high + shift <= 127]


def pitch_range(score: Score) -> tuple[int | None, int | None]:
    """Lowest and highest non-drum pitch, or (None, None) if there are none."""
    pitches = [note.pitch for instrument in score.instruments if not instrument.is_drum for note in instrument.notes]
    return (min(pitches), max(pitches)) if pitches else (None, None)


_MELODY_NAMES = ("melody", "vocal", "voice", "lead", "soprano", "sing", "vox", "tune")


def melody_line(score: Score, track: int | None = None) -> Score:
    """The lead line as a one-instrument, monophonic score.

    ``track`` picks an instrument by index; otherwise the most melodic non-drum
    instrument is taken: one whose name says melody/vocal/lead/soprano, else the
    highest-sounding (mean pitch) of those with at least a quarter as many notes
    as the busiest. Its skyline (the highest note at each onset, cut where the
    next note starts) is the melody. A score without pitched notes gives an
    empty score with the same timing.
    """
    if track is not None and not 0 <= track < len(score.instruments):
        raise ValueError(f"track must be in 0..{len(score.instruments) - 1}, got {track}")
    index = lead_index(score) if track is None else track
    if index is None:
        return score.replace(instruments=())
    chosen = score.instruments[index]
    return score.replace(instruments=[dataclasses.replace(chosen, notes=skyline(chosen.notes))])


def lead_index(score: Score) -> int | None:
    """Index of the lead instrument (see ``melody_line``), or None if no instrument has pitched notes."""
    candidates = [k for k, inst in enumerate(score.instruments) if inst.notes and not inst.is_drum]
    if not candidates:
        return None
    instruments = score.instruments
    named = [k for k in candidates if any(word in instruments[k].name.lower() for word in _MELODY_NAMES)]
    busiest = max(len(instruments[k].notes) for k in candidates)
    busy = [k for k in candidates if 4 * len(instruments[k].notes) >= busiest]
    return max(named or busy, key=lambda k: sum(n.pitch for n in instruments[k].notes) / len(instruments[k].notes))


def skyline(notes: tuple[Note, ...] | list[Note]) -> list[Note]:
    """Monophonic reduction: the highest note at each onset, each cut where the next one starts."""
    highest: dict[int, Note] = {}
    for note in notes:
        if note.start not in highest or note.pitch > highest[note.start].pitch:
            highest[note.start] = note
    line = [highest[start] for start in sorted(highest)]
    return [
        dataclasses.replace(note, duration=min(note.duration, following.start - note.start))
        for note, following in zip(line, line[1:])
    ] + line[-1:]
