"""Turning scores into token sequences and back: the whole token layout lives here.

Time is beat-relative: it moves in steps of 1/``steps_per_quarter`` of a quarter
note (12 by default, so 16ths are 3 steps and eighth triplets 4), which puts
generated music on a DAW's grid whatever the tempo.

Token layout: the kinds are declared once, in ``Tokenizer.__init__`` (a ``melody.vocabulary``
table); every id, name, test and the sampler's note grammar derive from that declaration.
For the default configuration (``melody info MODEL --vocabulary`` prints a model's):

          ids  tokens                       count  section  meaning
            0  Pad                              1  special  padding (never produced by encode)
            1  Begin                            1  special  the start of a piece
            2  End                              1  special  the end of a piece
        3-194  Bar_1_1 .. Bar_32_32           192  body     a bar line opening a bar of n/d time
      195-242  TimeShift_1 .. TimeShift_48     48  body     move time forward this many steps
      243-370  Note_0 .. Note_127             128  body     a note of this MIDI pitch starts now ...
      371-406  Duration_1 .. Duration_768      36  body     ... and lasts this many steps
      407-414  Velocity_1 .. Velocity_8         8  body     loudness bin of the notes that follow
      415-446  Track_0 .. Track_31             32  body     the track (part) of the notes that follow
      447-574  Program_0 .. Program_127       128  header   what a track plays: a General MIDI program
          575  Drums                            1  header   what a track plays: drums
      576-599  Key_C .. Key_Bm                 24  header   the piece's key
      600-607  Density_1 .. Density_8           8  header   note onsets per quarter note, binned

Bar_<n>_<d> exists for n 1..32 and d 1, 2, 4, 8, 16, 32; a step is 1/12 of a quarter
note, so TimeShift_48 is a 4/4 bar and Duration_768 is 64 quarters.

A piece is a header, then its body:

    Begin Key_k Density_d  Track_0 Program_p  Track_1 Drums ...   key, density, every track and its instrument
    Bar_4_4 [Track_t] [Velocity_v] Note_n Duration_d ...   notes in time order, bar lines where they fall
    ... End

Track and velocity tokens appear only when they change. Notes are ordered by
start, then track, then pitch; tracks are numbered lead first, then the other pitched
parts from the highest down, then drums (``track_order``), so at each moment the lead
is written first and the parts under it are written hearing it. Every bar line is a ``Bar`` token naming the meter
of the bar it opens, so a meter change needs no token of its own.

Why tracks, not programs (as MidiTok's Program tokens) or one stream per track
(as MMM): a Program token names what sounds, so two violin parts or a piano's
two hands collapse into one part and their unisons into one note. MMM's
per-track streams keep parts apart but write each bar once per track, moving
time back between them, so a model never sees what sounds together at one
moment until the bar's last track. Track tokens keep one time-ordered stream
(chords and the interplay of parts stay adjacent) and keep parts apart; the
header says once what each track plays, and the sampler can be held to the
seed's tracks. The header is the piece's context: training windows taken from
the middle of a piece are prefixed with it (``header_length``), as generation
primes with it.

Why pitch + duration rather than note-on/note-off pairs: every note is closed
the moment it is written, so whatever a model samples decodes to a valid file;
chords cost half the tokens; and a duration token lands on the same grid as the
onsets. Durations run to 64 quarters (16 bars of 4/4: a pedal note under a whole
phrase): every step (a 48th note) up to a quarter, then four values per doubling,
so 16ths up to 2 quarters, 8ths up to 4, quarters up to 8, half notes up to 16,
whole 4/4 bars up to 32 and two bars up to 64 (36 values); a note is snapped to
the nearest, and longer notes are cut to 64 quarters.

``prepare`` is the one step from a Score to what the model sees: the lead line
only (``melody_only``), the key chosen, notes on the grid. ``encode`` runs it, so
``decode(encode(s), meta=prepare(s)) == prepare(s)`` holds exactly.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.errors import SettingError, TokenizerError
from melody.ahead import KeptNotes
from melody.files import atomic_write
from melody.settings import setting
from melody.keys import MAJOR_NAMES, MINOR_NAMES, estimate_key, in_key_share, key_name, parse_key, scale
from melody.vocabulary import Vocabulary
from melody.score import (Instrument, KeySignature, Note, Score, Tempo, TimeSignature, last_per_tick, lead_index,
                          melody_line)

PAD, BEGIN, END = range(3)  # the first three kinds below; fixed ids, also for padding and the n-gram
FORMAT = "melody-tokenizer"
FORMAT_VERSION = 2
DENOMINATORS = (1, 2, 4, 8, 16, 32)
MAX_NUMERATOR = 32
KEY_NAMES = MAJOR_NAMES + MINOR_NAMES  # Key_C is key 0 ... Key_Bm is key 23: tonic + 12 * minor
# Density_k: the piece's distinct note onsets per quarter note, nearest of these (in log scale).
DENSITIES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
TRUSTED_KEY_SHARE = 0.7  # a file's key signature is believed when its scale holds this share of the notes
TRUSTED_KEY_MARGIN = 0.1  # ... and the estimated key's scale holds no more than this share more of them


@dataclass(frozen=True)
class TokenizerConfig:
    """What the vocabulary can express; every size in it is derived from these numbers.
    ``melody_only``: pieces are reduced to their lead line (one track) before tokenizing."""

    steps_per_quarter: int = 12
    max_shift_quarters: int = 4
    max_duration_quarters: int = 64
    velocity_bins: int = 8
    max_tracks: int = 32
    melody_only: bool = setting(False, "Keep only the lead line of each file.")

    def __post_init__(self):
        if not isinstance(self.steps_per_quarter, int) or not 4 <= self.steps_per_quarter <= 96 \
                or self.steps_per_quarter % 4:
            raise SettingError(f"steps_per_quarter must be a multiple of 4 in 4..96, got {self.steps_per_quarter!r}")
        for name, top in (("max_shift_quarters", 16), ("max_duration_quarters", 256), ("max_tracks", 128)):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= top:
                raise SettingError(f"{name} must be an integer in 1..{top}, got {value!r}")
        if not isinstance(self.velocity_bins, int) or not 1 <= self.velocity_bins <= 127:
            raise SettingError(f"velocity_bins must be in 1..127, got {self.velocity_bins!r}")
        if not isinstance(self.melody_only, bool):
            raise SettingError(f"melody_only must be true or false, got {self.melody_only!r}")

    @property
    def durations(self) -> tuple[int, ...]:
        """Allowed note lengths in steps: every step up to a quarter, then 4 values per doubling."""
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


def _meters() -> tuple[tuple[int, int], ...]:
    return tuple((n, d) for d in DENOMINATORS for n in range(1, MAX_NUMERATOR + 1))


class Tokenizer:
    """Encodes a Score as token ids and decodes token ids into a Score (see the module docstring)."""

    def __init__(self, config: TokenizerConfig | None = None):
        self.config = config or TokenizerConfig()
        self.durations = self.config.durations
        self.velocities = self.config.velocities
        self.meters = _meters()
        self.max_shift = self.config.max_shift_quarters * self.config.steps_per_quarter
        self.kinds = Vocabulary([
            ("Pad", (), "special", "padding (never produced by encode)"),
            ("Begin", (), "special", "the start of a piece"),
            ("End", (), "special", "the end of a piece"),
            ("Bar", [f"{n}_{d}" for n, d in self.meters], "body", "a bar line opening a bar of n/d time"),
            ("TimeShift", range(1, self.max_shift + 1), "body", "move time forward this many steps"),
            ("Note", range(128), "body", "a note of this MIDI pitch starts now ..."),
            ("Duration", self.durations, "body", "... and lasts this many steps"),
            ("Velocity", range(1, self.config.velocity_bins + 1), "body", "loudness bin of the notes that follow"),
            ("Track", range(self.config.max_tracks), "body", "the track (part) of the notes that follow"),
            ("Program", range(128), "header", "what a track plays: a General MIDI program"),
            ("Drums", (), "header", "what a track plays: drums"),
            ("Key", KEY_NAMES, "header", "the piece's key"),
            ("Density", range(1, len(DENSITIES) + 1), "header", "note onsets per quarter note, binned"),
        ])
        self.vocabulary: tuple[str, ...] = self.kinds.names
        self.ids = self.kinds.ids
        # Begin, Key, Density and a (Track, Program or Drums) pair per track at most.
        self.max_header_length = 3 + 2 * self.config.max_tracks
        self._meter_index = {meter: index for index, meter in enumerate(self.meters)}

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.config == other.config

    def names(self, tokens) -> list[str]:
        """Readable names of token ids (for debugging and error messages)."""
        return [self.vocabulary[int(token)] for token in tokens]

    # ------------------------------------------------------------------------- what a token is

    def is_note(self, tokens) -> np.ndarray:
        """True where a token starts a note (drums included)."""
        return self.kinds["Note"].holds(tokens)

    def is_bar(self, tokens) -> np.ndarray:
        """True where a token is a bar line."""
        return self.kinds["Bar"].holds(tokens)

    def bar_token(self, numerator: int, denominator: int) -> int:
        """The id of the bar line opening a bar of ``numerator``/``denominator`` time."""
        try:
            return self.kinds["Bar"].token(self._meter_index[numerator, denominator])
        except KeyError:
            raise TokenizerError(f"time signature {numerator}/{denominator} is not one melody writes (numerators "
                                 f"1..{MAX_NUMERATOR}, denominators {', '.join(map(str, DENOMINATORS))})") from None

    def header_length(self, tokens) -> int:
        """How many tokens at the start of a piece form its header (Begin, Key, Density, Track/Program pairs)."""
        tokens = np.asarray(tokens[:self.max_header_length])
        index = 1 if len(tokens) and tokens[0] == BEGIN else 0
        if index < len(tokens) and tokens[index] in self.kinds["Key"]:
            index += 1
        if index < len(tokens) and tokens[index] in self.kinds["Density"]:
            index += 1
        while index + 1 < len(tokens) and self._is_track(tokens[index]) and self._is_instrument(tokens[index + 1]):
            index += 2
        return index

    def tracks(self, tokens) -> list[tuple[bool, int]]:
        """(is_drum, program) of each track the header of ``tokens`` declares, in track order."""
        tokens = np.asarray(tokens)
        declared: dict[int, tuple[bool, int]] = {}
        for position in range(self.header_length(tokens) - 1):
            if self._is_track(tokens[position]) and self._is_instrument(tokens[position + 1]):
                declared.setdefault(self.kinds["Track"].value_index(tokens[position]),
                                    self._instrument(tokens[position + 1]))
        return [declared[index] for index in range(len(declared)) if index in declared]

    def density_token(self, onsets_per_quarter: float) -> int:
        """The Density token nearest (in log scale) to ``onsets_per_quarter``."""
        value = max(onsets_per_quarter, 1e-3)
        return self.kinds["Density"].token(int(np.argmin([abs(np.log(value / level)) for level in DENSITIES])))

    def sampling_mask(self, track_count: int) -> np.ndarray:
        """Bool (vocabulary,): the tokens a continuation of a piece with ``track_count`` tracks may hold:
        bar lines, time shifts, notes, durations, velocities and its own tracks; never a header
        token, Pad, Begin or End."""
        allowed = self.kinds.mask("Bar", "TimeShift", "Note", "Duration", "Velocity")
        allowed[self.kinds["Track"].ids[:track_count]] = True
        return allowed

    def programs(self, tokens) -> set[int]:
        """Every instrument the headers in ``tokens`` declare: programs 0..127, and -1 for drums."""
        tokens = np.asarray(tokens)
        found = np.unique(tokens[self.kinds["Program"].holds(tokens) | self.kinds["Drums"].holds(tokens)])
        return {-1 if drums else program for drums, program in map(self._instrument, found)}

    def drum_mask(self, tokens) -> np.ndarray:
        """Bool per position of one piece: whether the track in force there is a drum track."""
        tokens = np.asarray(tokens)
        drum_tracks = np.array([is_drum for is_drum, _ in self.tracks(tokens)] + [False] * self.config.max_tracks)
        is_track = self.kinds["Track"].holds(tokens)
        last = np.maximum.accumulate(np.where(is_track, np.arange(len(tokens)), -1)) if len(tokens) else \
            np.zeros(0, dtype=np.int64)
        current = np.where(last >= 0, self.kinds["Track"].value_index(tokens[np.maximum(last, 0)]), -1)
        return (current >= 0) & drum_tracks[np.maximum(current, 0)]

    def _is_track(self, token) -> bool:
        return token in self.kinds["Track"]

    def _is_instrument(self, token) -> bool:
        return token in self.kinds["Program"] or token in self.kinds["Drums"]

    def _instrument(self, token) -> tuple[bool, int]:
        return (True, 0) if token in self.kinds["Drums"] else (False, self.kinds["Program"].value_index(token))

    # ------------------------------------------------------------------------- prepare

    def prepare(self, score: Score) -> Score:
        """The score as the model sees it: its key chosen (``choose_key``), reduced to the lead line if
        ``melody_only``, on the step grid, velocities binned, durations snapped, one instrument per
        track in ``track_order`` (beyond ``max_tracks`` tracks, extra ones join a kept track of the same
        instrument, else the last kept one), a note dropped only when its track already has that pitch at
        that step."""
        timing = self._timing(score)
        timing = timing.replace(key_signatures=self._keys(score, timing))
        source = melody_line(score) if self.config.melody_only else score
        to_step = _grid(score.ticks_per_quarter, self.config.steps_per_quarter)
        parts = [source.instruments[index] for index in track_order(source)]
        kept, extra = parts[:self.config.max_tracks], parts[self.config.max_tracks:]  # as ``track_sources``
        notes = [{} for _ in kept]
        for index, part in enumerate(kept + extra):
            if index >= len(kept):
                same = [k for k, p in enumerate(kept) if (p.is_drum, p.program) == (part.is_drum, part.program)]
                index = same[0] if same else len(kept) - 1
            for note in part.notes:
                start = to_step(note.start)
                duration = self._snap_duration(to_step(note.end) - start)
                velocity = self.velocities[self.config.velocity_bin(note.velocity)]
                notes[index].setdefault((start, note.pitch), Note(start, note.pitch, duration, velocity))
        instruments = [dataclasses.replace(part, notes=tuple(found.values()))
                       for part, found in zip(kept, notes)]
        return timing.replace(instruments=instruments)

    def track_sources(self, score: Score) -> list[int]:
        """For each track ``prepare(score)`` makes, the index of the instrument of ``score`` it comes from."""
        if self.config.melody_only:
            lead = lead_index(score)
            return [] if lead is None else [lead]
        return track_order(score)[:self.config.max_tracks]

    def opening(self, tokens, key: str | None = None, density: float | None = None,
                meter: tuple[int, int] | None = None) -> np.ndarray:
        """The header of a piece's ``tokens`` and its first bar line: a primer that starts a piece like it,
        in ``key`` (a key name), at ``density`` (onsets per quarter) and in ``meter`` where given."""
        tokens = np.asarray(tokens)
        opening = self.with_header(tokens[:self.header_length(tokens) + 1], key, density)
        if meter is not None:
            opening[-1] = self.bar_token(*meter)
        return opening

    def with_header(self, tokens, key: str | None = None, density: float | None = None) -> np.ndarray:
        """``tokens`` with the header's key and density replaced where given (ValueError for a bad key)."""
        tokens = np.array(tokens)
        header = tokens[:self.header_length(tokens)]
        if key is not None:
            tonic, minor = parse_key(key)
            header[self.kinds["Key"].holds(header)] = self.kinds["Key"].token(tonic + 12 * minor)
        if density is not None:
            header[self.kinds["Density"].holds(header)] = self.density_token(density)
        tokens[:len(header)] = header
        return tokens

    def bar_tokens(self) -> tuple[int, ...]:
        """The ids of every bar line (``Bar_n_d``)."""
        return tuple(self.kinds["Bar"].ids)

    def bar_steps(self, numerator: int, denominator: int) -> int:
        """Steps in one bar of ``numerator``/``denominator`` time (at least one)."""
        return TimeSignature(0, numerator, denominator).bar_ticks(self.config.steps_per_quarter)

    def token_table(self) -> dict[str, np.ndarray]:
        """What the sampler needs to know of every token id, as arrays over the vocabulary:
        ``bar_steps`` (steps in the bar a bar line opens; 0 for other tokens), ``shift_steps`` (steps a
        time shift moves; 0 for others), ``track_of`` (k for Track_k, -1 for other tokens), ``pitch_of`` (the
        MIDI pitch of a Note token, -1 for others), ``velocity_of`` (the bin of a Velocity token, -1 for others),
        ``duration_steps`` (steps a Duration token lasts; 0 for others), ``steps_per_quarter`` (a number) and ``follows``
        ((vocabulary, vocabulary) bool: the note grammar, which token may come right after which: after a
        track, a velocity or a note; after a velocity, a note; after a note, its duration, and a duration
        nowhere else)."""
        kinds = self.kinds
        bar_steps = np.zeros(len(self), dtype=np.int32)
        bar_steps[kinds["Bar"].ids] = [self.bar_steps(n, d) for n, d in self.meters]
        shift_steps = np.zeros(len(self), dtype=np.int32)
        shift_steps[kinds["TimeShift"].ids] = range(1, self.max_shift + 1)
        track_of = np.full(len(self), -1, dtype=np.int32)
        track_of[kinds["Track"].ids] = range(self.config.max_tracks)
        pitch_of = np.full(len(self), -1, dtype=np.int32)
        pitch_of[kinds["Note"].ids] = range(128)
        velocity_of = np.full(len(self), -1, dtype=np.int32)
        velocity_of[kinds["Velocity"].ids] = range(self.config.velocity_bins)
        is_note, is_duration, is_velocity, is_track = (kinds.mask(kind) for kind in ("Note", "Duration", "Velocity",
                                                                                     "Track"))
        follows = np.where(is_note[:, None], is_duration[None, :],
                           np.where(is_track[:, None], (is_note | is_velocity)[None, :],
                                    np.where(is_velocity[:, None], is_note[None, :], ~is_duration[None, :])))
        duration_steps = np.zeros(len(self), dtype=np.int32)
        duration_steps[kinds["Duration"].ids] = self.durations
        return {"bar_steps": bar_steps, "shift_steps": shift_steps, "track_of": track_of, "pitch_of": pitch_of,
                "velocity_of": velocity_of, "duration_steps": duration_steps, "follows": follows,
                "steps_per_quarter": self.config.steps_per_quarter}

    def kept_notes(self, prepared: Score, tracks, start: int, end: int) -> KeptNotes:
        """The notes of ``tracks`` (track numbers of the prepared score) that start in grid steps [start, end), as
        ``ahead.KeptNotes`` to be played into a sampled stream that starts at ``start``: stream order (time,
        track, pitch), each note as its Track, Velocity, Note and Duration tokens."""
        kinds, rows = self.kinds, []
        for track in sorted(set(tracks)):
            part = prepared.instruments[track]
            for note in part.notes:
                if start <= note.start < end:
                    rows.append((note.start - start, track, note.pitch, self.config.velocity_bin(note.velocity),
                                 self.durations.index(self._snap_duration(note.duration)), part.is_drum))
        rows.sort()
        slots = np.array([(kinds["Track"].token(track), kinds["Velocity"].token(velocity), kinds["Note"].token(pitch),
                           kinds["Duration"].token(duration)) for _, track, pitch, velocity, duration, _ in rows],
                         dtype=np.int64).reshape(-1, 4)
        return KeptNotes(np.array([row[0] for row in rows], np.int64).reshape(-1), slots,
                         np.array([-1 if drum else pitch % 12 for _, _, pitch, _, _, drum in rows], np.int64),
                         frozenset(tracks))

    def out_of_key(self, tokens) -> np.ndarray:
        """Bool (vocabulary,): the Note tokens whose pitch class is outside the scale of the key in the header
        of ``tokens`` (none without a key)."""
        key = self._header_key(tokens)
        members = scale(*key) if key else range(12)
        return self._notes_where(lambda pitch: pitch % 12 not in members)

    def tonic_notes(self, tokens) -> tuple[np.ndarray, np.ndarray] | None:
        """Bool (vocabulary,) twice: the Note tokens of the tonic triad of the key in the header of ``tokens``
        (in minor with both thirds, as ``melody.ensemble.ends_on_tonic`` hears a close), and those of the tonic
        alone; None without a key."""
        key = self._header_key(tokens)
        if key is None:
            return None
        tonic, minor = key
        triad = {tonic, (tonic + 4) % 12, (tonic + 7) % 12} | ({(tonic + 3) % 12} if minor else set())
        return self._notes_where(lambda pitch: pitch % 12 in triad), self._notes_where(lambda p: p % 12 == tonic)

    def _header_key(self, tokens) -> tuple[int, bool] | None:
        tokens = np.asarray(tokens)
        header = tokens[:self.header_length(tokens)]
        keys = header[self.kinds["Key"].holds(header)]
        return parse_key(KEY_NAMES[self.kinds["Key"].value_index(keys[0])]) if len(keys) else None

    def _notes_where(self, test) -> np.ndarray:
        result = np.zeros(len(self), dtype=bool)
        result[self.kinds["Note"].ids] = [test(pitch) for pitch in range(128)]
        return result

    def trusted_key(self, score: Score) -> KeySignature | None:
        """The file's key signature in force at the first note, if its scale holds at least
        ``TRUSTED_KEY_SHARE`` of the pitched notes and the key estimated from them (``melody.keys``) holds
        no more than ``TRUSTED_KEY_MARGIN`` more; None when the key is to be estimated from the notes.
        (Files in the wild often carry a sequencer's default C major, or a signature that counts sharps
        for a minor or modal tune: a folk tune in D minor marked D major, whose F and C are a quarter
        of its notes.)"""
        first = min((note.start for note in score.notes), default=0)
        pitched = [note for part in score.instruments if not part.is_drum for note in part.notes]
        opening = [k for k in score.key_signatures if k.tick <= first and _known_key(k.key)][-1:]
        if not opening:
            return None
        if pitched:
            share = in_key_share(pitched, parse_key(opening[0].key))
            if share < TRUSTED_KEY_SHARE or in_key_share(pitched, estimate_key(pitched)) > share + TRUSTED_KEY_MARGIN:
                return None
        return opening[0]

    def _keys(self, score: Score, timing: Score) -> list[KeySignature]:
        """The key signatures on the grid, with one in force from the first note: the file's own if
        ``trusted_key``, else the Krumhansl-Schmuckler estimate (``melody.keys``) at step 0."""
        if self.trusted_key(score) is not None:
            return [k for k in timing.key_signatures if _known_key(k.key)]
        pitched = [note for part in score.instruments if not part.is_drum for note in part.notes]
        estimated = KeySignature(0, key_name(*estimate_key(pitched)))
        return [estimated] + [k for k in timing.key_signatures if k.tick > 0 and _known_key(k.key)]

    def _timing(self, score: Score | None) -> Score:
        """An empty score on the step grid with the tempo map, the meters the tokens can say, and the keys."""
        steps = self.config.steps_per_quarter
        if score is None:
            return Score(steps)
        to_step = _grid(score.ticks_per_quarter, steps)
        return Score(
            steps,
            tempos=last_per_tick(Tempo(to_step(t.tick), t.microseconds_per_quarter) for t in score.tempos),
            time_signatures=last_per_tick(TimeSignature(to_step(t.tick), t.numerator, t.denominator)
                                           for t in score.time_signatures
                                           if (t.numerator, t.denominator) in self._meter_index),
            key_signatures=last_per_tick(KeySignature(to_step(k.tick), k.key) for k in score.key_signatures),
        )

    def _snap_duration(self, steps: int) -> int:
        """The allowed duration nearest to ``steps`` (the shorter one on a tie)."""
        index = bisect.bisect_left(self.durations, steps)
        if index == 0:
            return self.durations[0]
        if index == len(self.durations):
            return self.durations[-1]
        below, above = self.durations[index - 1], self.durations[index]
        return below if steps - below <= above - steps else above

    # ------------------------------------------------------------------------- encode

    def encode(self, score: Score, end: bool = True, until: int | None = None, prepared: bool = False) -> np.ndarray:
        """Token ids (uint16) for ``score`` after ``prepare``: the header, the notes with bar lines, End.

        For a primer: ``end=False`` leaves End off, and ``until`` (a grid step, in ``prepare(score)``'s
        time) runs time on after the last note to that step, with the bar lines on the way and one
        there: the tokens then end where new music is to start. ``prepared=True`` takes ``score`` as
        already prepared (a stretch cut from a prepared score: each of its instruments is a track,
        also one without notes in that stretch, so track numbers stay those of the whole piece).
        """
        prepared = score if prepared else self.prepare(score)
        tokens = self.header(prepared)
        notes = sorted((note.start, index, note.pitch, note.duration, note.velocity)
                       for index, part in enumerate(prepared.instruments) for note in part.notes)
        bars = iter(_bars_with_meters(prepared, until=max(notes[-1][0] if notes else -1, -1 if until is None else until) + 1))
        next_bar = next(bars, None)
        now, track, velocity = 0, None, None
        stop = [(until, -1, 0, 0, 0)] if until is not None else []
        for start, index, pitch, duration, note_velocity in notes + stop:
            while next_bar is not None and next_bar[0] <= start:
                self._shift(tokens, next_bar[0] - now)
                tokens.append(self.bar_token(*next_bar[1:]))
                now, next_bar = next_bar[0], next(bars, None)
            self._shift(tokens, start - now)
            now = start
            if index < 0:  # ``until``: time has run on to it
                break
            if index != track:
                tokens.append(self.kinds["Track"].token(index))
                track = index
            if note_velocity != velocity:
                tokens.append(self.kinds["Velocity"].token(self.config.velocity_bin(note_velocity)))
                velocity = note_velocity
            tokens += [self.kinds["Note"].token(pitch), self.kinds["Duration"].token(self.durations.index(duration))]
        if end:
            tokens.append(END)
        return np.asarray(tokens, dtype=np.uint16)

    def resumed(self, tokens, before) -> np.ndarray:
        """A body encoded on its own (``encode``, its header cut off), as it goes on after the stream ``before``:
        its first Track and Velocity tokens are left out where they repeat the track and velocity in force
        there (a stream names them only when they change)."""
        tokens, before = np.asarray(tokens), np.asarray(before)
        notes = np.flatnonzero(self.kinds["Note"].holds(tokens))
        opening = tokens[:notes[0] if len(notes) else len(tokens)]
        drop = []
        for kind in ("Track", "Velocity"):
            named = np.flatnonzero(self.kinds[kind].holds(before))
            first = np.flatnonzero(self.kinds[kind].holds(opening))
            if len(named) and len(first) and tokens[first[0]] == before[named[-1]]:
                drop.append(first[0])
        return np.delete(tokens, drop)

    def header(self, prepared: Score) -> list[int]:
        """Begin, the key in force at the first note, the density, and each track with its instrument."""
        first = min((note.start for note in prepared.notes), default=0)
        keys = [k for k in prepared.key_signatures if k.tick <= first] or list(prepared.key_signatures[:1])
        tokens = [BEGIN]
        if keys:
            tonic, minor = parse_key(keys[-1].key)
            tokens.append(self.kinds["Key"].token(tonic + 12 * minor))
        tokens.append(self.density_token(onset_density(prepared)))
        for index, part in enumerate(prepared.instruments):
            instrument = self.kinds["Drums"].token(0) if part.is_drum else self.kinds["Program"].token(part.program)
            tokens += [self.kinds["Track"].token(index), instrument]
        return tokens

    def _shift(self, tokens: list[int], steps: int) -> None:
        while steps > 0:
            step = min(steps, self.max_shift)
            tokens.append(self.kinds["TimeShift"].token(step - 1))
            steps -= step

    # ------------------------------------------------------------------------- decode

    def decode(self, tokens, meta: Score | None = None) -> Score:
        """The Score that ``tokens`` describe, on the step grid (ticks_per_quarter = steps_per_quarter).

        Any sequence decodes to a valid score: decoding stops at End; a Note without its
        Duration lasts a quarter note; a Duration without a Note is ignored; a track the
        header did not declare plays program 0. Every declared track is an instrument, in
        track order, even without notes. Tempo, time signatures, key, track names and
        channels come from ``meta`` (a prepared score, re-timed to the grid) where it has
        them; without it, 120 bpm, the meters of the bar tokens and the header's key.
        """
        tokens = np.asarray(tokens)
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(self)):
            tokens = np.where((tokens >= 0) & (tokens < len(self)), tokens, PAD)
        declared = self.tracks(tokens)
        bar, shift, note, duration, velocity_kind, track_kind = (
            self.kinds[name] for name in ("Bar", "TimeShift", "Note", "Duration", "Velocity", "Track"))
        parts: list[dict] = [{} for _ in declared]
        meters: list[TimeSignature] = []
        now, track, velocity = 0, 0, self.velocities[self.config.velocity_bin(64)]
        pending = None  # (start, pitch, track, velocity) of a note waiting for its duration
        for token in map(int, tokens[self.header_length(tokens):]):
            if token == END:
                break
            if pending and token in duration:
                self._add(parts, pending, self.durations[duration.value_index(token)])
                pending = None
                continue
            if pending and (token in shift or token in note):  # a note without its duration: a quarter
                self._add(parts, pending, self.config.steps_per_quarter)
                pending = None
            if token in bar:
                meter = self.meters[bar.value_index(token)]
                if not meters or (meters[-1].numerator, meters[-1].denominator) != meter:
                    meters.append(TimeSignature(now, *meter))
            elif token in shift:
                now += shift.value_index(token) + 1
            elif token in note:
                pending = (now, note.value_index(token), track, velocity)
                while len(declared) <= track:  # a note on a track the header did not declare: a piano
                    declared.append((False, 0))
                    parts.append({})
            elif token in velocity_kind:
                velocity = self.velocities[velocity_kind.value_index(token)]
            elif token in track_kind:
                track = track_kind.value_index(token)
        if pending:
            self._add(parts, pending, self.config.steps_per_quarter)
        return self._decoded(declared, parts, meters, tokens, meta)

    def _decoded(self, declared, parts, meters, tokens, meta: Score | None) -> Score:
        known = list(meta.instruments) if meta is not None else []
        instruments = []
        for index, ((is_drum, program), notes) in enumerate(zip(declared, parts)):
            same = index < len(known) and known[index].is_drum == is_drum and (is_drum or known[index].program == program)
            if same:  # the kit of a drum track is meta's: tokens say only "drums"
                name, channel, program = known[index].name, known[index].channel, known[index].program
            else:
                name, channel = "", None
            instruments.append(Instrument(program, is_drum, name, tuple(notes.values()), channel))
        if meta is not None:
            return self._timing(meta).replace(instruments=instruments)
        header = tokens[:self.header_length(tokens)]
        keys = [KeySignature(0, KEY_NAMES[self.kinds["Key"].value_index(t)]) for t in header if t in self.kinds["Key"]]
        return Score(self.config.steps_per_quarter, instruments, time_signatures=meters, key_signatures=keys[:1])

    @staticmethod
    def _add(parts, pending, duration: int) -> None:
        start, pitch, track, velocity = pending
        parts[track].setdefault((start, pitch), Note(start, pitch, duration, velocity))

    # ------------------------------------------------------------------------- augmentation

    def transpose(self, tokens, semitones: int) -> np.ndarray:
        """Tokens with every non-drum Note and the Key moved by ``semitones``; ValueError if a pitch
        leaves 0..127."""
        tokens = np.asarray(tokens)
        return self.transpose_windows(tokens[None], self.drum_mask(tokens)[None], np.array([semitones]))[0]

    def transpose_windows(self, windows: np.ndarray, drums: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """Each row of ``windows`` (rows, time) moved by its own number of semitones ``shifts`` (rows,):
        pitched notes (``drums`` False) and Key tokens; ValueError if a pitch leaves 0..127."""
        windows = np.asarray(windows)
        shifts = np.asarray(shifts, dtype=np.int64)[:, None]
        pitched = self.is_note(windows) & ~np.asarray(drums, dtype=bool)
        moved = windows.astype(np.int64) + shifts
        if (~self.kinds["Note"].holds(moved))[pitched].any():
            raise ValueError(f"Transposing by {shifts.ravel().tolist()} moves a pitch out of 0..127")
        key = self.kinds["Key"]
        is_key, offset = key.holds(windows), key.value_index(windows)  # tonic + 12 * minor
        keys = key.first + (offset + shifts) % 12 + 12 * (offset // 12)
        result = np.where(pitched, moved, np.where(is_key, keys, windows))
        return result.astype(windows.dtype)

    def transpose_room(self, windows: np.ndarray, drums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(down, up) per row: how many semitones each row's pitched notes can move and stay in 0..127
        (0 and 0 for a row without pitched notes: nothing there to transpose, its key stays)."""
        pitched = self.is_note(windows) & ~np.asarray(drums, dtype=bool)
        pitches = self.kinds["Note"].value_index(windows)
        low = np.where(pitched, pitches, 127).min(axis=1)
        high = np.where(pitched, pitches, 0).max(axis=1)
        some = pitched.any(axis=1)
        return np.where(some, low, 0), np.where(some, 127 - high, 0)

    def pitch_range(self, tokens) -> tuple[int, int] | None:
        """Lowest and highest non-drum pitch in one piece's ``tokens``, or None if there are none."""
        tokens = np.asarray(tokens)
        pitched = self.is_note(tokens) & ~self.drum_mask(tokens)
        if not pitched.any():
            return None
        pitches = self.kinds["Note"].value_index(tokens[pitched])
        return int(pitches.min()), int(pitches.max())

    # ------------------------------------------------------------------------- save / load

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write the config and vocabulary as JSON (atomically)."""
        return atomic_write(path, json.dumps(self.document(), indent=1) + "\n", force=force)

    def document(self) -> dict:
        """What ``save`` writes: format, version, config and vocabulary."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "config": dataclasses.asdict(self.config),
                "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_document(cls, document, where: str = "tokenizer") -> Tokenizer:
        """The tokenizer a ``document()`` describes; TokenizerError if it is not one or does not match."""
        try:
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise TokenizerError(f"{where}: not a melody tokenizer file")
            if document.get("version") != FORMAT_VERSION:
                raise TokenizerError(f"{where}: tokenizer format version {document.get('version')!r}, "
                                     f"this melody reads version {FORMAT_VERSION}; prepare or train again")
            tokenizer = cls(TokenizerConfig(**document["config"]))
            saved = document["vocabulary"]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise TokenizerError(f"{where}: not a usable tokenizer ({error})") from None
        if not isinstance(saved, list) or saved != list(tokenizer.vocabulary):
            raise TokenizerError(f"{where}: vocabulary does not match its config")
        return tokenizer

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer saved by ``save``; TokenizerError if it is not one or its vocabulary differs."""
        from melody.files import read_json_file

        return cls.from_document(read_json_file(path, TokenizerError), str(path))


def track_order(score: Score) -> list[int]:
    """The instruments of ``score`` that have notes, in the order of their tracks: the lead (``lead_index``)
    first, then the other pitched parts from the highest to the lowest (by mean pitch), then the drums. At
    one moment notes are written in track order, so the parts below hear what the lead plays then."""
    lead = lead_index(score)
    pitched = [index for index, part in enumerate(score.instruments) if part.notes and not part.is_drum]
    drums = [index for index, part in enumerate(score.instruments) if part.notes and part.is_drum]

    def height(index: int) -> float:
        notes = score.instruments[index].notes
        return -sum(note.pitch for note in notes) / len(notes)

    return [lead] * (lead is not None) + sorted((i for i in pitched if i != lead), key=height) + drums


def onset_density(score: Score) -> float:
    """Distinct note onsets per quarter note, from the first onset to the last note's end (0 without notes)."""
    starts = {note.start for note in score.notes}
    if not starts:
        return 0.0
    span = max(score.end_tick - min(starts), score.ticks_per_quarter) / score.ticks_per_quarter
    return len(starts) / span


def _known_key(name: str) -> bool:
    try:
        parse_key(name)
        return True
    except ValueError:
        return False


def _bars_with_meters(score: Score, until: int) -> list[tuple[int, int, int]]:
    """(tick, numerator, denominator) of every bar line of ``score`` up to ``until``."""
    signatures = list(score.time_signatures) or [TimeSignature(0, 4, 4)]
    result = []
    for tick in score.bar_lines(until=until):
        signature = ([s for s in signatures if s.tick <= tick] or [TimeSignature(0, 4, 4)])[-1]
        result.append((tick, signature.numerator, signature.denominator))
    return result


def _grid(ticks_per_quarter: int, steps_per_quarter: int):
    """A function rounding ticks to the nearest grid step (halves round up)."""
    return lambda tick: (2 * tick * steps_per_quarter + ticks_per_quarter) // (2 * ticks_per_quarter)
