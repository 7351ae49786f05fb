"""Turning scores into token sequences and back.

The vocabulary is beat-relative: time moves in steps of 1/``steps_per_quarter``
of a quarter note (12 by default, so 16ths are 3 steps and eighth triplets 4),
which puts generated music on a DAW's grid whatever the tempo.

Token layout (ids in this order; ``Tokenizer.vocabulary`` lists every name):

    0  Pad            padding, never produced by encode
    1  Begin          start of a piece
    2  End            end of a piece
    3  Bar            a bar line (from the time signatures); informational only
    TimeShift_1 .. TimeShift_48       move time forward 1..48 steps (48 = a 4/4 bar)
    Note_0 .. Note_127                a note of this MIDI pitch starts now ...
    Duration_1 .. Duration_96         ... and lasts this many steps (24 values, finer when short)
    Velocity_1 .. Velocity_8          loudness bin of the notes that follow
    Program_0 .. Program_127, Drums   the instrument of the notes that follow

A note is ``[Program_p] [Velocity_v] Note_n Duration_d``: the instrument and
velocity tokens appear only when they change. Notes are ordered by start time,
then instrument, then pitch; ``Bar`` is emitted whenever time reaches a bar line.

Why pitch + duration rather than note-on/note-off pairs: every note is closed
the moment it is written, so whatever a model samples decodes to a valid file
(no note hangs, no note-off without its note-on, no same-pitch overlap bookkeeping);
chords cost half the tokens; and a duration token lands on the same grid as
the onsets. The price is a longest duration (8 quarters by default); longer
notes are shortened to it, and ``quantize`` does the same so that
``decode(encode(score), meta=score) == quantize(score)`` holds exactly.

Tempo, time signature and key are not tokens: ``decode`` takes them from a
``meta`` score (the seed, usually) or uses 120 bpm in 4/4.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.errors import TokenizerError
from melody.files import atomic_write
from melody.score import Instrument, KeySignature, Note, Score, Tempo, TimeSignature, last_per_tick

SPECIAL_TOKENS = ("Pad", "Begin", "End", "Bar")
PAD, BEGIN, END, BAR = range(4)
FORMAT = "melody-tokenizer"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TokenizerConfig:
    """What the vocabulary can express; every size in it is derived from these four numbers."""

    steps_per_quarter: int = 12
    max_shift_quarters: int = 4
    max_duration_quarters: int = 8
    velocity_bins: int = 8

    def __post_init__(self):
        if self.steps_per_quarter < 1 or self.steps_per_quarter % 4:
            raise ValueError(f"steps_per_quarter must be a positive multiple of 4 (for 16ths), "
                             f"got {self.steps_per_quarter}")
        for name in ("max_shift_quarters", "max_duration_quarters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.velocity_bins <= 127:
            raise ValueError(f"velocity_bins must be in 1..127, got {self.velocity_bins}")

    @property
    def durations(self) -> tuple[int, ...]:
        """Allowed note lengths in steps: every step up to a quarter, then ever coarser (16ths, 8ths, ...)."""
        values, step, length = list(range(1, self.steps_per_quarter + 1)), self.steps_per_quarter // 4, \
            self.steps_per_quarter
        limit = self.max_duration_quarters * self.steps_per_quarter
        while length < limit:
            next_octave = length * 2
            while length < min(next_octave, limit):
                length += step
                values.append(length)
            step *= 2
        return tuple(value for value in values if value <= limit)

    @property
    def velocities(self) -> tuple[int, ...]:
        """The velocity each bin stands for: the middle of the 1..127 values falling in it."""
        members = [[v for v in range(1, 128) if self.velocity_bin(v) == b] for b in range(self.velocity_bins)]
        return tuple(group[len(group) // 2] for group in members)

    def velocity_bin(self, velocity: int) -> int:
        """Bin 0..velocity_bins-1 of a MIDI velocity 1..127."""
        return (min(max(velocity, 1), 127) - 1) * self.velocity_bins // 127


class Tokenizer:
    """Encodes a Score as token ids and decodes token ids into a Score (see the module docstring)."""

    def __init__(self, config: TokenizerConfig | None = None):
        self.config = config or TokenizerConfig()
        self.durations = self.config.durations
        self.velocities = self.config.velocities
        max_shift = self.config.max_shift_quarters * self.config.steps_per_quarter
        self.vocabulary: tuple[str, ...] = (
            SPECIAL_TOKENS
            + tuple(f"TimeShift_{steps}" for steps in range(1, max_shift + 1))
            + tuple(f"Note_{pitch}" for pitch in range(128))
            + tuple(f"Duration_{steps}" for steps in self.durations)
            + tuple(f"Velocity_{number}" for number in range(1, self.config.velocity_bins + 1))
            + tuple(f"Program_{program}" for program in range(128)) + ("Drums",)
        )
        self.ids = {name: index for index, name in enumerate(self.vocabulary)}
        self.time_shift = self.ids["TimeShift_1"] - 1  # id of TimeShift_k is time_shift + k
        self.max_shift = max_shift
        self.note = self.ids["Note_0"]                  # id of Note_p is note + p
        self.duration = self.ids[f"Duration_{self.durations[0]}"]
        self.velocity = self.ids["Velocity_1"]
        self.program = self.ids["Program_0"]
        self.drums = self.ids["Drums"]

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.config == other.config

    def names(self, tokens) -> list[str]:
        """Readable names of token ids (for debugging and error messages)."""
        return [self.vocabulary[int(token)] for token in tokens]

    # ------------------------------------------------------------------------- quantize

    def quantize(self, score: Score) -> Score:
        """The score as the tokens see it: on the step grid, velocities binned, durations snapped,
        instruments merged by (drum, program) and sorted, duplicate notes (same start and pitch) dropped."""
        to_step = _grid(score.ticks_per_quarter, self.config.steps_per_quarter)
        names = _instrument_names(score)
        groups: dict[tuple[bool, int], dict[tuple[int, int], Note]] = {}
        for instrument in score.instruments:
            notes = groups.setdefault(_key(instrument), {})
            for note in instrument.notes:
                start = to_step(note.start)
                duration = self._snap_duration(to_step(note.end) - start)
                velocity = self.velocities[self.config.velocity_bin(note.velocity)]
                notes.setdefault((start, note.pitch), Note(start, note.pitch, duration, velocity))
        instruments = [
            Instrument(program=program, is_drum=is_drum, name=names[is_drum, program], notes=notes.values())
            for (is_drum, program), notes in sorted(groups.items()) if notes
        ]
        return self._timing(score).replace(instruments=instruments)

    def _timing(self, score: Score | None) -> Score:
        """An empty score on the step grid holding the tempo map, time signatures and key of ``score``."""
        steps = self.config.steps_per_quarter
        if score is None:
            return Score(steps)
        to_step = _grid(score.ticks_per_quarter, steps)
        return Score(
            steps,
            tempos=last_per_tick(Tempo(to_step(t.tick), t.microseconds_per_quarter) for t in score.tempos),
            time_signatures=last_per_tick(TimeSignature(to_step(t.tick), t.numerator, t.denominator)
                                           for t in score.time_signatures),
            key_signatures=last_per_tick(KeySignature(to_step(k.tick), k.key) for k in score.key_signatures),
        )

    def _snap_duration(self, steps: int) -> int:
        """The allowed duration nearest to ``steps`` (the shorter one on a tie)."""
        index = int(np.searchsorted(self.durations, steps))
        if index == 0:
            return self.durations[0]
        if index == len(self.durations):
            return self.durations[-1]
        below, above = self.durations[index - 1], self.durations[index]
        return below if steps - below <= above - steps else above

    # ------------------------------------------------------------------------- encode

    def encode(self, score: Score) -> np.ndarray:
        """Token ids (uint16) for ``score``: Begin, the notes in time order with bar lines, End."""
        quantized = self.quantize(score)
        notes = sorted((note.start, index, note.pitch, note.duration, note.velocity)
                       for index, instrument in enumerate(quantized.instruments) for note in instrument.notes)
        bar_lines = iter(quantized.bar_lines(until=notes[-1][0] + 1) if notes else [])
        next_bar = next(bar_lines, None)
        tokens, now, instrument, velocity = [BEGIN], 0, None, None
        for start, index, pitch, duration, note_velocity in notes:
            while next_bar is not None and next_bar <= start:
                self._shift(tokens, next_bar - now)
                tokens.append(BAR)
                now, next_bar = next_bar, next(bar_lines, None)
            self._shift(tokens, start - now)
            now = start
            if index != instrument:
                part = quantized.instruments[index]
                tokens.append(self.drums if part.is_drum else self.program + part.program)
                instrument = index
            if note_velocity != velocity:
                tokens.append(self.velocity + self.config.velocity_bin(note_velocity))
                velocity = note_velocity
            tokens += [self.note + pitch, self.duration + self.durations.index(duration)]
        tokens.append(END)
        return np.asarray(tokens, dtype=np.uint16)

    def _shift(self, tokens: list[int], steps: int) -> None:
        while steps > 0:
            step = min(steps, self.max_shift)
            tokens.append(self.time_shift + step)
            steps -= step

    # ------------------------------------------------------------------------- decode

    def decode(self, tokens, meta: Score | None = None) -> Score:
        """The Score that ``tokens`` describe, on the step grid (ticks_per_quarter = steps_per_quarter).

        Any sequence decodes to a valid score: decoding stops at End; Pad, Begin and Bar
        move nothing; a Note without its Duration lasts a quarter note; a Duration
        without a Note is ignored. Tempo, time signatures, key and instrument names
        come from ``meta`` (re-timed to the grid), else 120 bpm in 4/4.
        """
        names = _instrument_names(meta) if meta is not None else {}
        parts: dict[tuple[bool, int], dict[tuple[int, int], Note]] = {}
        now, part, velocity = 0, (False, 0), self.velocities[self.config.velocity_bin(64)]
        pending = None  # (start, pitch, part, velocity) of a note waiting for its duration
        for token in map(int, tokens):
            name = self.vocabulary[token] if 0 <= token < len(self.vocabulary) else "Pad"
            kind, _, value = name.partition("_")
            if kind == "End":
                break
            if kind == "Duration" and pending:
                self._add(parts, pending, int(value))
                pending = None
                continue
            if pending and kind in ("TimeShift", "Note"):
                self._add(parts, pending, self.config.steps_per_quarter)
                pending = None
            if kind == "TimeShift":
                now += int(value)
            elif kind == "Note":
                pending = (now, int(value), part, velocity)
            elif kind == "Velocity":
                velocity = self.velocities[int(value) - 1]
            elif kind == "Program":
                part = (False, int(value))
            elif kind == "Drums":
                part = (True, 0)
        if pending:
            self._add(parts, pending, self.config.steps_per_quarter)
        instruments = [Instrument(program=program, is_drum=is_drum, name=names.get((is_drum, program), ""),
                                  notes=notes.values())
                       for (is_drum, program), notes in sorted(parts.items())]
        return self._timing(meta).replace(instruments=instruments)

    @staticmethod
    def _add(parts, pending, duration: int) -> None:
        start, pitch, part, velocity = pending
        parts.setdefault(part, {}).setdefault((start, pitch), Note(start, pitch, duration, velocity))

    # ------------------------------------------------------------------------- augmentation

    def transpose(self, tokens: np.ndarray, semitones: int) -> np.ndarray:
        """Tokens with every non-drum Note moved by ``semitones``; ValueError if a pitch leaves 0..127."""
        tokens = np.asarray(tokens)
        is_note = (tokens >= self.note) & (tokens < self.note + 128)
        pitched = is_note & ~self.drum_mask(tokens)
        moved = tokens[pitched].astype(np.int64) + semitones
        if moved.size and (moved.min() < self.note or moved.max() > self.note + 127):
            raise ValueError(f"Transposing by {semitones} moves a pitch out of 0..127")
        result = tokens.copy()
        result[pitched] = moved
        return result

    def pitch_range(self, tokens: np.ndarray) -> tuple[int, int] | None:
        """Lowest and highest non-drum pitch in ``tokens``, or None if there are none."""
        tokens = np.asarray(tokens)
        pitched = (tokens >= self.note) & (tokens < self.note + 128) & ~self.drum_mask(tokens)
        if not pitched.any():
            return None
        pitches = tokens[pitched].astype(np.int64) - self.note
        return int(pitches.min()), int(pitches.max())

    def drum_mask(self, tokens: np.ndarray) -> np.ndarray:
        """For each position, whether the last instrument token at or before it was Drums (bool array)."""
        is_instrument = (tokens >= self.program) & (tokens <= self.drums)
        last = np.maximum.accumulate(np.where(is_instrument, np.arange(len(tokens)), -1)) if len(tokens) else \
            np.zeros(0, dtype=np.int64)
        return (last >= 0) & (tokens[np.maximum(last, 0)] == self.drums)

    # ------------------------------------------------------------------------- save / load

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write the config and vocabulary as JSON (atomically)."""
        document = {"format": FORMAT, "version": FORMAT_VERSION, "config": dataclasses.asdict(self.config),
                    "vocabulary": list(self.vocabulary)}
        return atomic_write(path, json.dumps(document, indent=1) + "\n", force=force)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer saved by ``save``; TokenizerError if it is not one or its vocabulary differs."""
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
            if document.get("format") != FORMAT:
                raise TokenizerError(f"{path}: not a melody tokenizer file")
            if document.get("version") != FORMAT_VERSION:
                raise TokenizerError(f"{path}: tokenizer format version {document.get('version')}, "
                                     f"this melody reads version {FORMAT_VERSION}")
            tokenizer = cls(TokenizerConfig(**document["config"]))
            saved = document["vocabulary"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise TokenizerError(f"{path}: cannot load tokenizer ({error})") from None
        if list(saved) != list(tokenizer.vocabulary):
            differences = [i for i, (a, b) in enumerate(zip(saved, tokenizer.vocabulary)) if a != b]
            where = f"first difference at id {differences[0]}" if differences else \
                f"{len(saved)} tokens saved, {len(tokenizer)} expected"
            raise TokenizerError(f"{path}: vocabulary does not match its config ({where})")
        return tokenizer


def _grid(ticks_per_quarter: int, steps_per_quarter: int):
    """A function rounding ticks to the nearest grid step (halves round up)."""
    return lambda tick: (2 * tick * steps_per_quarter + ticks_per_quarter) // (2 * ticks_per_quarter)


def _key(instrument: Instrument) -> tuple[bool, int]:
    """What the tokens know of an instrument: drums (any kit), or a melodic program."""
    return (True, 0) if instrument.is_drum else (False, instrument.program)


def _instrument_names(score: Score) -> dict[tuple[bool, int], str]:
    names: dict[tuple[bool, int], str] = {}
    for instrument in score.instruments:
        names.setdefault(_key(instrument), instrument.name)
    return names
