"""Continuing a seed, in scores: what the model is primed with, and where the new music goes.

Score in, Score out; the model and the sampler are not seen here.

* ``make_primer``: the seed as the model sees it (``Tokenizer.prepare``), from a
  bar line on (its last ``primer_bars`` bars, or as many as fit in
  ``MAX_PRIMER_TOKENS``), with the header the tokenizer puts first: the key, the
  density of those bars, and the seed's tracks (the key of those bars, all parts heard,
  when the seed has no key signature: a song may modulate). Time then runs on to the first bar
  line after the seed has ended (a held final chord included): new music starts
  there, on a downbeat, in the seed's last meter. A track whose instrument the model
  never learned is announced as the nearest instrument it did learn (same General
  MIDI family, else any), so the primer speaks the model's language; the new notes
  still go to the seed's own track and instrument.
* ``arrange``: the sampled tokens decoded; each new note joins the seed's track it
  was sampled for (``Primer.sources``), cut at the bar line ``bars`` bars on, in the
  seed's ticks, with its tempo, meter and key, after the seed (or alone,
  ``continuation_only``).
* The band keeps playing (``accompaniment="band"``, the default): a track of the seed that
  sounds in its last 4 bars and that the model leaves silent (drums, for a model that never
  learned them; every track but the lead, for a melody model) goes on playing its own
  last bars, repeated on the bar grid: the drums keep their groove and the harmony its
  loop under the new music. For a melody model the lead's track loops its notes below
  the melody too (a piano's left hand under its new right-hand tune). The loop is the
  seed's last 4 bars (2, or 1, if the seed is shorter or its meter changed within them).
  ``accompaniment="loop"`` loops every track but the lead (``with_loops``), and a model
  of several parts hears the loops as it writes the lead (they are kept notes).
  ``accompaniment="none"`` leaves silent tracks silent.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from melody.ahead import KeptNotes
from melody.ensemble import parallels
from melody.errors import MelodyError
from melody.keys import estimate_key, key_name
from melody.score import Instrument, KeySignature, Note, Score, end_line, excerpt, melody_line
from melody.tokenizer import Tokenizer, onset_density

MAX_PRIMER_TOKENS = 1024


@dataclass(frozen=True)
class Learned:
    """What a model met in training (None: not known, anything goes): its instruments (General MIDI programs, -1
    for drums), the most tracks a piece had, its velocity bins, and its lowest and highest note. A primer is made
    of these only: a token training never met has an untrained embedding, and the model reads all that follows
    it through that. Aicha's primer, with its 13 parts' dynamics, cost the shipped model 7.4 nats a token (a
    chorale's: 0.7); its Velocity tokens 16.7 each."""

    programs: frozenset[int] | None = None
    tracks: int | None = None
    velocities: tuple[int, ...] | None = None
    pitches: tuple[int, int] | None = None


@dataclass(frozen=True)
class Primer:
    """Tokens to prime the model with, and how they map back onto the seed."""

    tokens: np.ndarray        # int32: header and the seed's last bars, no End
    start: int                # grid step of the prepared seed where the primer's time 0 lies
    sources: tuple[int, ...]  # for each track of the tokens, the seed instrument it continues
    timing: Score             # the primer's score (tempo, meter, key, track names) to decode against
    end: int                  # grid step (primer time) where the primer ends and new music starts
    score: Score | None = None  # the whole seed as the model sees it, its tracks numbered as the primer's
    octaves: tuple[int, ...] = ()  # per track, octaves its notes are moved by to lie where the model learned notes
    loudness: tuple[int, ...] | None = None  # per track, the velocity of its new notes (None: as the model writes)


def make_primer(seed: Score, tokenizer: Tokenizer, primer_bars: int | None = None, learned: Learned = Learned(),
                density: float | None = None, at_bar: int | None = None, new_parts=(), keep=()) -> Primer:
    """The primer for continuing ``seed`` (see the module) in what the model ``learned``: no more tracks than
    it met (``_parts_learned`` picks which, ``keep`` and ``new_parts`` among them; the others are left to loop),
    its velocities and its notes (``_as_learned``); ``density``: onsets per quarter note to ask for (default: the
    density of the primer's bars); ``at_bar``: new music starts at this bar line of the seed (0: its first), the
    music before it the primer (default: after the seed's end); ``new_parts``: seed instruments without notes that
    the model is to write, tracks after the seed's pitched ones (before its drums), in their order."""
    programs, tracks = learned.programs, learned.tracks
    sources = tokenizer.track_sources(seed)
    prepared = tokenizer.prepare(seed)
    if new_parts and not tokenizer.config.melody_only:
        drums = next((k for k, part in enumerate(prepared.instruments) if part.is_drum), len(sources))
        room = max(0, tokenizer.config.max_tracks - len(sources))
        new_parts = list(new_parts)[:room]
        sources = sources[:drums] + new_parts + sources[drums:]
        parts = list(prepared.instruments)
        prepared = prepared.replace(instruments=parts[:drums] + [seed.instruments[k] for k in new_parts] + parts[drums:])
    if programs and -1 not in programs:  # drums, for a model that never learned them: left to the loop
        playable = [index for index, part in enumerate(prepared.instruments) if not part.is_drum]
        sources = [sources[index] for index in playable]
        prepared = prepared.replace(instruments=[prepared.instruments[index] for index in playable])
    if not prepared.notes:
        raise MelodyError("the seed has no pitched notes to take a melody from" if tokenizer.config.melody_only
                          else "the seed has no notes")
    if programs:
        prepared = prepared.replace(instruments=[_known_instrument(part, programs) for part in prepared.instruments])
    estimated = tokenizer.trusted_key(seed) is None
    steps = tokenizer.config.steps_per_quarter
    seed_end = round(seed.end_tick * steps / seed.ticks_per_quarter)  # every track's end, not only the primer's
    end = round(end_line(seed, steps) * steps / seed.ticks_per_quarter)
    if at_bar is not None:
        lines = prepared.bar_lines(until=end)
        if not 0 <= at_bar < len(lines):
            raise MelodyError(f"the seed has {len(lines)} bars; new music can start at bar 1 to {len(lines)}")
        end = lines[at_bar]
    if tracks is not None and len(sources) > tracks:
        chosen = _parts_learned(prepared, end, tracks, [sources.index(k) for k in (*new_parts, *keep) if k in sources])
        sources = [sources[k] for k in chosen]
        prepared = prepared.replace(instruments=[prepared.instruments[k] for k in chosen])
    prepared, octaves, loudness = _as_learned(prepared, tokenizer, learned, end, seed, sources)
    bar_lines = prepared.bar_lines(until=end)
    count = min(primer_bars or len(bar_lines), len(bar_lines))
    while True:
        start = bar_lines[-count] if count else 0
        cut = excerpt(prepared, start, end)
        if estimated:  # no key signature: the key the primer's bars are in (a song may modulate), all parts heard
            until = end if end > start else seed_end
            cut = cut.replace(key_signatures=[KeySignature(0, key_name(*estimate_key(
                [n for part in seed.instruments if not part.is_drum for n in part.notes
                 if start * seed.ticks_per_quarter <= n.start * steps < until * seed.ticks_per_quarter])))])
        tokens = tokenizer.with_header(tokenizer.encode(cut, end=False, until=end - start, prepared=True),
                                       density=density if density is not None else _density(
                                           prepared if end == 0 else _lead_playing(prepared, start, end),
                                           new_parts))
        if len(tokens) <= MAX_PRIMER_TOKENS or count <= 1:
            break
        count = max(1, min(count - 1, count * MAX_PRIMER_TOKENS // len(tokens)))  # bars that may fit
    if len(tokens) > MAX_PRIMER_TOKENS:  # one bar too long: keep the header and the bar's end
        header = tokenizer.header_length(tokens)
        tokens = np.concatenate([tokens[:header], tokens[len(tokens) - (MAX_PRIMER_TOKENS - header):]])
    return Primer(tokens.astype(np.int32), start, tuple(sources), cut, end - start, prepared, octaves, loudness)


LOUDNESS_NOTES = 32  # a part's loudness is the median velocity of its last this many notes before the new music


def _as_learned(prepared: Score, tokenizer: Tokenizer, learned: Learned, end: int, seed: Score, sources: list[int]):
    """``prepared`` (``seed``'s instruments ``sources``, on the grid) in what the model ``learned``, and how to take
    its new notes back: each note's velocity the nearest learned one; each pitched track moved by the fewest whole
    octaves that bring its lowest and highest tenth of notes before ``end`` within the learned notes (a pop bass
    around E1, under the lowest notes training met, is written an octave up and played back down; a part too wide
    for any octave stays), and per track those octaves; and per track the velocity its new notes get when the
    model learned a single one (it cannot write dynamics, so each part keeps its own loudness: the median of its
    last ``LOUDNESS_NOTES`` notes), else None."""
    octaves, instruments = [], []
    until = end * seed.ticks_per_quarter / tokenizer.config.steps_per_quarter
    for part in prepared.instruments:
        before = [note.pitch for note in part.notes if note.start < end] or [note.pitch for note in part.notes]
        shift = 0
        if learned.pitches is not None and before and not part.is_drum:
            (low, high), (least, most) = learned.pitches, np.percentile(before, [10, 90])
            fits = [k for k in range(-10, 11) if low <= least + 12 * k and most + 12 * k <= high]
            shift = min(fits, key=abs) if fits else 0  # a part wider than the notes learned stays where it is
        octaves.append(shift)
        notes = part.notes
        if shift or learned.velocities is not None:
            notes = tuple(dataclasses.replace(note, pitch=min(max(note.pitch + 12 * shift, 0), 127),
                                              velocity=_nearest_velocity(note.velocity, tokenizer, learned))
                          for note in notes)
        instruments.append(dataclasses.replace(part, notes=notes))
    loudness = None
    if learned.velocities is not None and len(learned.velocities) == 1:
        parts = [seed.instruments[k].notes for k in sources]
        loudness = tuple(int(np.median([note.velocity for note in notes if note.start < until][-LOUDNESS_NOTES:]
                                       or [note.velocity for note in notes]
                                       or [tokenizer.velocities[learned.velocities[0]]])) for notes in parts)
    return prepared.replace(instruments=instruments), tuple(octaves), loudness


def _nearest_velocity(velocity: int, tokenizer: Tokenizer, learned: Learned) -> int:
    """The learned velocity bin's velocity nearest ``velocity`` (the lower of two as near; itself if any goes)."""
    if learned.velocities is None:
        return velocity
    heard = tokenizer.config.velocity_bin(velocity)
    return tokenizer.velocities[min(learned.velocities, key=lambda bin_: (abs(bin_ - heard), bin_))]


def _parts_learned(prepared: Score, end: int, tracks: int, first: list[int]) -> list[int]:
    """The ``tracks`` tracks of ``prepared`` a model that learned that many parts writes, in their order: the lead,
    those in ``first``, the lowest part that plays in the last ``LEAD_BARS`` bars before ``end`` (the bass, which
    the harmony stands on; tracks run from the highest part down), then the others by the notes they play in those
    bars. A track number the model never saw in training has an untrained embedding and a Track token it almost
    never draws: a pop song's bass as its twelfth part wrote 1 note in 8 bars."""
    lines = prepared.bar_lines(until=end)
    since = lines[-LEAD_BARS] if len(lines) >= LEAD_BARS else 0
    parts = prepared.instruments
    recent = [sum(since <= note.start < end for note in part.notes) for part in parts]
    lowest = [max(k for k, part in enumerate(parts) if recent[k] and not part.is_drum)] if any(recent) else []
    busiest = sorted(range(len(parts)), key=lambda k: (-recent[k], -len(parts[k].notes), k))
    return sorted(list(dict.fromkeys([0, *first, *lowest, *busiest]))[:tracks])


# Distinct onsets of all parts per onset of the top part alone, median of Bach's chorales (1.53; Palestrina's
# masses 2.07): what a lone line asks for once parts are added under it.
PARTS_PER_LINE_DENSITY = 1.5


LEAD_BARS = 8  # where the lead rests at the end, the density is asked of its last bars that play
PACE_BARS = 4  # a written part is held to its pace over its last bars that play
# A new part's pace over the lead's onsets per quarter note: Bach's alto, tenor and bass move 1.14, 1.18 and 1.19
# times as often as his soprano (medians of 250 four-part chorales in corpora/).
NEW_PART_PACE = 1.15


def _lead_playing(prepared: Score, start: int, end: int) -> Score:
    """The stretch whose density the new music asks for: the primer's bars [start, end), or, when the lead (track
    0) rests in the last two of them (an outro, a break), its last ``LEAD_BARS`` bars up to its last note."""
    lines = prepared.bar_lines(until=end)
    first, until = _playing_bars(prepared, end)
    if len(lines) < 3 or until > lines[-2]:  # it plays in the last two bars (or never)
        return excerpt(prepared, start, end)
    return excerpt(prepared, first, until)


def _playing_bars(prepared: Score, end: int, bars: int = LEAD_BARS, track: int = 0) -> tuple[int, int]:
    """[first, until) grid steps: ``track``'s (default the lead's) last ``bars`` bars before ``end``, up to the end
    of the bar of its last onset; (end, end) when it has none."""
    parts = prepared.instruments
    onsets = [note.start for note in parts[track].notes if note.start < end] if track < len(parts) else []
    if not onsets:
        return end, end
    lines = prepared.bar_lines(until=max(onsets) + 1)
    return lines[max(0, len(lines) - bars)], min(_next_bar_line(prepared, max(onsets) + 1), end)


def paces(primer: Primer) -> tuple[np.ndarray, np.ndarray]:
    """Per track of the primer, the pace the sampler holds a written part to: its note onsets per quarter note
    over its last ``PACE_BARS`` bars that play before the new music (an outro where it rests does not count); and
    whether it is mostly held back (bool). Every part but the lead is held back while it runs ahead of its pace and
    drawn in only a little while behind (``melody.sampler.PACE_HELD_LIMIT``; drawn in fully, the parts left the lead
    less to play, as the whole texture's density asked of the model stays, and the lead ran ahead). A new part is
    drawn in to ``NEW_PART_PACE`` times the lead's onsets per quarter over the whole seed (a harmonization's parts
    move with the melody). nan: free (a part without notes, and all without a seed)."""
    score = primer.score
    if score is None:
        return np.full(len(primer.sources), math.nan), np.ones(len(primer.sources), bool)
    end = primer.start + primer.end
    pace, held_only = np.full(len(score.instruments), math.nan), np.arange(len(score.instruments)) > 0
    lead = onset_density(score.replace(instruments=score.instruments[:1]))
    for track, part in enumerate(score.instruments):
        first, until = _playing_bars(score, end, PACE_BARS, track)
        onsets = {note.start for note in part.notes if first <= note.start < until}
        if onsets:
            pace[track] = len(onsets) * score.ticks_per_quarter / (until - first)
        elif not part.notes and lead:  # a new part
            pace[track] = NEW_PART_PACE * lead
            held_only[track] = False
    return pace, held_only


def _density(score: Score, new_parts) -> float:
    """The density to ask for: ``score``'s onsets per quarter; a lone line's times ``PARTS_PER_LINE_DENSITY``
    when parts are added to it (new parts fill the line's rests and move under its held notes)."""
    lines = sum(bool(part.notes) and not part.is_drum for part in score.instruments)
    return onset_density(score) * (PARTS_PER_LINE_DENSITY if new_parts and lines == 1 else 1.0)


# New tracks of these General MIDI programs may play chords (keyboards, chromatic percussion, organs,
# guitars, string ensembles, pads); a new voice, solo string, wind or lead plays one note at a time.
CHORDAL_PROGRAMS = frozenset(range(32)) | frozenset(range(48, 52)) | frozenset(range(88, 96))
NEW_CHORD = 6


def chord_limits(seed: Score, primer: Primer) -> np.ndarray:
    """Per track of ``primer``, the most notes it may start at one moment: as many as its largest chord in the
    seed; for a new track, ``NEW_CHORD`` on a chordal instrument (``CHORDAL_PROGRAMS``; the one asked for, not
    the one the model is told of), else 1."""
    limits = []
    for part, source in zip(primer.score.instruments, primer.sources):
        starts = np.unique([note.start for note in part.notes], return_counts=True)[1]
        asked = seed.instruments[source]
        limits.append(int(starts.max()) if len(starts) else
                      NEW_CHORD if asked.is_drum or asked.program in CHORDAL_PROGRAMS else 1)
    return np.array(limits, np.int64)


# The register of each choir voice, MIDI pitch: where Bach's own voice sings the middle 80% of its notes (10th to 90th
# percentile) in the 387 four-part chorales of the corpus melody trains on. A part added under a melody and named after
# a voice is free there and pays beyond it (harmonizing held-out chorale sopranos then puts each lower part's mean
# pitch within 0.6 semitones of his, the bass's span at his 13.5; BENCHMARKS.md, "Harmonizing").
VOICE_RANGES = {"soprano": (66, 75), "alto": (61, 69), "tenor": (55, 64), "bass": (45, 57)}
# A written part's register is the range of its notes in this many bars before the new music: continuing held-out
# chorales, a written voice otherwise left that range by more than a fourth in half of the continuations, twice as
# often as Bach's next bars (BENCHMARKS.md, "Registers").
RANGE_BARS = 8


def registers(primer: Primer, new_parts, chords: np.ndarray) -> np.ndarray:
    """Float (tracks of ``primer``, 2): the lowest and highest pitch between which each part is free, and beyond
    which it pays (``melody.sampler.REGISTER_SPREAD``): for a part added under the seed's (``new_parts``, seed
    instruments) named after a voice ("Bass", "Tenor 2"), that voice's ``VOICE_RANGES``; for a pitched single
    line of the seed (``chords`` 1: a voice, a bass line), the range of its notes in the ``RANGE_BARS`` bars before
    the new music (none there, as where the music is written from its first bar: of the notes it had in the
    ``RANGE_BARS`` bars the new music replaces); NaN for the others (drums, chord parts, which voice their chords
    anywhere, other new parts, parts without notes there)."""
    new, parts, begin = set(new_parts), primer.score.instruments, primer.start + primer.end
    since = ([0] + primer.score.bar_lines(until=begin))[-RANGE_BARS:][0]
    until = _bars_after(primer, RANGE_BARS)
    result = np.full((len(primer.sources), 2), math.nan)
    for k, source in enumerate(primer.sources):
        name = parts[k].name.lower()
        voice = next((span for voice, span in VOICE_RANGES.items() if re.search(rf"\b{voice}\b", name)), None)
        recent = [note.pitch for note in parts[k].notes if since <= note.start < begin] or \
            [note.pitch for note in parts[k].notes if begin <= note.start < until]
        if source in new and voice is not None:
            result[k] = voice
        elif source not in new and not parts[k].is_drum and chords[k] == 1 and recent:
            result[k] = min(recent), max(recent)
    return result


# Parallel fifths and octaves per 100 moves of a pair of parts below which a seed avoids them, and so do its written
# lines: Bach's chorales and Palestrina's masses have 0-0.3; Haydn's quartets, doubling at the octave, 2-7; pop songs
# 2-14 (the musical-fit seeds).
FEW_PARALLELS = 1.0


def _bars_after(primer: Primer, count: int) -> int:
    """The grid step ``count`` bars after the new music starts in ``primer.score`` (at most its end)."""
    begin = primer.start + primer.end
    return ([line for line in primer.score.bar_lines() if line > begin][count - 1:] + [primer.score.end_tick])[0]


def avoiding_parallels(primer: Primer, chords: np.ndarray) -> np.ndarray:
    """Per track of ``primer``: whether its written notes avoid moving in parallel fifths or octaves with the other
    parts, as a pitched single line (``chords`` 1) does in a primer with fewer than ``FEW_PARALLELS``
    (``melody.ensemble.parallels``; an empty primer, as where the music is written from its first bar: in the
    ``RANGE_BARS`` bars of the seed the new music replaces)."""
    parts, begin = primer.score.instruments, primer.start + primer.end
    span = (primer.start, begin) if primer.end else (begin, _bars_after(primer, RANGE_BARS))
    few = parallels(primer.score, *span) < FEW_PARALLELS  # nan (no moves): False
    return np.array([bool(few) and chords[k] == 1 and not parts[k].is_drum for k in range(len(primer.sources))])


def in_order(primer: Primer, chords: np.ndarray) -> np.ndarray:
    """Per track of ``primer``, the track just above it (tracks come from the highest down after the lead) that it
    stays under, where both are single lines (``chords`` 1) that never crossed in the seed, as the voices of a
    chorale or a madrigal: their written notes keep that order too; -1 for every other track."""
    parts = primer.score.instruments
    return np.array([k - 1 if 0 < k < len(parts) and chords[k] == 1 == chords[k - 1] and not parts[k].is_drum
                     and not parts[k - 1].is_drum and _crossed(parts[k - 1], parts[k]) is False
                     else -1 for k in range(len(primer.sources))], np.int64)


def _crossed(upper: Instrument, lower: Instrument) -> bool | None:
    """Whether ``lower``'s sounding note is ever above ``upper``'s, looked at each time either strikes (a line's
    sounding note: its latest, until it ends); None if they never sound together. Linear in the notes."""
    if not (upper.notes and lower.notes):
        return None
    times = np.union1d([n.start for n in upper.notes], [n.start for n in lower.notes])
    heard = []
    for part in (upper, lower):
        notes = np.array(sorted((n.start, n.end, n.pitch) for n in part.notes), np.int64).reshape(-1, 3)
        latest = np.searchsorted(notes[:, 0], times, side="right") - 1
        _, end, pitch = notes[np.maximum(latest, 0)].T
        heard.append(np.where((latest >= 0) & (end > times), pitch, -1))
    together = (heard[0] >= 0) & (heard[1] >= 0)
    return None if not together.any() else bool((heard[1] > heard[0])[together].any())


def added_under(primer: Primer, new_parts) -> np.ndarray:
    """Per track of ``primer``, the track whose last note it stays under (-1: none): a part added under the seed's
    (``new_parts``, seed instruments) stays under the part before it, so added voices do not cross above it."""
    new = set(new_parts)
    return np.array([k - 1 if source in new and k > 0 else -1 for k, source in enumerate(primer.sources)], np.int64)


def kept_notes(primer: Primer, tokenizer: Tokenizer, keep: set[int], bars: int) -> KeptNotes:
    """The notes of the seed's instruments ``keep`` (indices) within the ``bars`` bars to be written after
    ``primer``, to be played into the sampled stream (``Tokenizer.kept_notes``)."""
    tracks = {primer.sources.index(k) for k in keep if k in primer.sources}
    begin = primer.start + primer.end
    lines = [line for line in primer.score.bar_lines(until=begin + (bars + 1) * 64 * tokenizer.config.steps_per_quarter)
             if line >= begin]
    return tokenizer.kept_notes(primer.score, tracks, begin, lines[min(bars, len(lines) - 1)])


FOLLOWING_BARS = 4  # the bars after a fill that judge it


def following_tokens(primer: Primer, tokenizer: Tokenizer, bars: int, count: int = FOLLOWING_BARS) -> np.ndarray | None:
    """The seed's own body tokens for the ``count`` bars after the ``bars`` to be written after ``primer`` (a fill
    inside the seed), every track of the primer, from the bar line on; None when the seed has no notes there."""
    if primer.score is None:
        return None
    begin = primer.start + primer.end
    longest = 64 * tokenizer.config.steps_per_quarter
    lines = [line for line in primer.score.bar_lines(until=begin + (bars + count + 1) * longest) if line >= begin]
    if len(lines) <= bars + 1:
        return None
    start, end = lines[bars], lines[min(bars + count, len(lines) - 1)]
    cut = excerpt(primer.score, start, end)
    if not cut.notes:
        return None
    tokens = tokenizer.encode(cut, end=False, until=end - start, prepared=True)
    return tokens[tokenizer.header_length(tokens):].astype(np.int32)


def primer_from_opening(opening: np.ndarray, tokenizer: Tokenizer) -> Primer:
    """A primer for music from scratch: a piece's opening (``Tokenizer.opening``)."""
    tokens = np.asarray(opening, dtype=np.int32)
    return Primer(tokens, 0, tuple(range(len(tokenizer.tracks(tokens)))), tokenizer.decode(tokens), 0)


@dataclass(frozen=True)
class Arranged:
    """The output score, how many of its new notes are loops, and what became of each track of the seed:
    ``tracks`` maps "kept", "written" (the model continued it), "added" (a new track the model wrote),
    "looped" and "silent" to the tracks' names."""

    score: Score
    looped_notes: int
    tracks: dict[str, list[str]]
    new_notes: int = 0  # notes the model wrote, loops included
    written: tuple[int, int] | None = None  # ticks of ``score`` where the new music begins and ends
    looped_parts: frozenset[int] = frozenset()  # pitched seed instruments looping because the model left them silent
    onsets: dict[int, int] = dataclasses.field(default_factory=dict)  # per written seed instrument, its new onsets


def arrange(seed: Score | None, primer: Primer, new_tokens: np.ndarray, tokenizer: Tokenizer, bars: int,
            continuation_only: bool = False, accompaniment: str = "band", keep: frozenset[int] = frozenset(),
            looping: frozenset[int] = frozenset()) -> Arranged:
    """The output score: the seed followed by the new music (see the module), or the new music alone;
    with how many of its new notes are the accompaniment's loops and what each seed track did. ``keep``: seed
    instruments kept as they are (their notes were played into the stream, not written); ``looping``: those of
    them that are loops added after the seed (``with_loops``), heard as the model wrote (the other kept tracks
    are then silent). New music inside the seed (``make_primer(at_bar=...)``) replaces the written tracks' notes
    in its bars; nothing more loops there."""
    if accompaniment not in ACCOMPANIMENTS:
        raise MelodyError(f"accompaniment must be one of {', '.join(ACCOMPANIMENTS)}, got {accompaniment!r}")
    before = tokenizer.decode(primer.tokens, meta=primer.timing)
    after = tokenizer.decode(np.concatenate([primer.tokens, new_tokens]), meta=primer.timing)
    timing = seed if seed is not None else after
    steps, ticks = tokenizer.config.steps_per_quarter, timing.ticks_per_quarter

    def at(step: int) -> int:
        return round((step + primer.start) * ticks / steps)

    begin, limit = _new_bars(timing, primer, tokenizer, bars)
    new_parts = []
    for track, (old, new) in enumerate(zip(before.instruments, after.instruments)):
        known = {(note.start, note.pitch) for note in old.notes}
        octave = 12 * primer.octaves[track] if track < len(primer.octaves) else 0  # back where the part plays
        loud = primer.loudness[track] if primer.loudness and track < len(primer.loudness) else None
        notes = [Note(at(n.start), min(max(n.pitch - octave, 0), 127), max(1, min(at(n.end), limit) - at(n.start)),
                      loud or n.velocity)
                 for n in new.notes if (n.start, n.pitch) not in known and at(n.start) < limit]
        new_parts.append((primer.sources[track] if track < len(primer.sources) else None, new, notes))
    if seed is None:
        parts = [dataclasses.replace(part, notes=notes) for _, part, notes in new_parts if notes]
        return Arranged(after.replace(instruments=parts, end=limit), 0, {"written": [track_name(part, k) for k, part in
                                                                             enumerate(parts)]},
                        sum(len(part.notes) for part in parts), None)
    added = {source: notes for source, _, notes in new_parts if source is not None and source not in keep}
    written = sorted(index for index, notes in added.items() if notes)
    onsets = {index: len({note.start for note in added[index]}) for index in written}
    extra = [_instrument(seed, None, part, notes) for source, part, notes in new_parts if source is None and notes]
    lead = primer.sources[0] if tokenizer.config.melody_only and primer.sources else None
    inside = any(note.start >= begin for note in seed.notes)
    looped = _accompany(seed, added, lead, begin, limit) if accompaniment != "none" and not inside else {}
    tracks = {"kept": [track_name(seed.instruments[k], k) for k in sorted(keep)],
              "written": [track_name(seed.instruments[k], k) for k in written if seed.instruments[k].notes],
              "added": [track_name(seed.instruments[k], k) for k in written if not seed.instruments[k].notes],
              "looped": [track_name(seed.instruments[k], k) for k in sorted(looped) if k not in written],
              "silent": [track_name(part, k) for k, part in enumerate(seed.instruments)
                         if part.notes and not added.get(k) and k not in keep]}
    loop_notes = 0
    if looping:  # the kept tracks are loops after the seed (or silent)
        tracks["looped"] = [track_name(seed.instruments[k], k) for k in sorted(looping)]
        tracks["silent"] += [name for name in tracks["kept"] if name not in tracks["looped"]]
        tracks["kept"] = []
        loop_notes = sum(begin <= note.start < limit for k in looping for note in seed.instruments[k].notes)
    elif inside:  # the written tracks' own notes in these bars give way to the new ones; the others play on
        tracks["kept"], tracks["silent"] = tracks["kept"] + tracks["silent"], []
    if inside:
        seed = seed.replace(instruments=[part if k not in added else dataclasses.replace(part, notes=tuple(
            n for n in part.notes if not begin <= n.start < limit)) for k, part in enumerate(seed.instruments)])
        whole = seed.replace(instruments=[dataclasses.replace(part, notes=tuple(sorted(
            part.notes + tuple(added.get(k, ())), key=lambda n: (n.start, n.pitch)))) for k, part in
            enumerate(seed.instruments)] + extra, end=max(seed.end, limit))
        return Arranged(excerpt(whole, begin, limit) if continuation_only else whole, loop_notes, tracks,
                        _count(added, extra) + loop_notes, (0, limit - begin) if continuation_only else (begin, limit),
                        looping)
    if continuation_only:
        parts = [dataclasses.replace(seed.instruments[index], notes=tuple(notes))
                 for index, notes in sorted(added.items()) if notes] + extra
        return Arranged(excerpt(seed.replace(instruments=parts, end=limit), begin), sum(looped.values()), tracks,
                        _count(added, extra), (0, limit - begin), _silent_loops(looped, written, seed, primer), onsets)
    instruments = [dataclasses.replace(part, notes=part.notes + tuple(added.get(index, ())))
                   for index, part in enumerate(seed.instruments)]
    return Arranged(seed.replace(instruments=instruments + extra, end=limit), sum(looped.values()), tracks,
                    _count(added, extra), (begin, limit), _silent_loops(looped, written, seed, primer), onsets)


# A written part that struck fewer than this share of the onsets its pace asks for over the new bars is left to its
# loop in the band's second take. The shipped model met no pop: in 16 continuations of 8 pop songs, 34 of 143 written
# parts fell under it, most of them the basses and guitars (Funkytown's bass 3 onsets of the 60 its pace asks).
STARVED = 0.25


def starved(arranged: Arranged, seed: Score, primer: Primer, tokenizer: Tokenizer, bars: int,
            pace: np.ndarray | None) -> frozenset[int]:
    """The seed instruments that ``arranged`` (``bars`` bars after ``seed``) has the model write, other than the lead,
    with fewer than ``STARVED`` times the onsets their ``pace`` (per track of ``primer``, onsets per quarter note,
    nan: free) asks for in the new bars, and that have a loop to play instead (they sound in the seed's last bars)."""
    if pace is None:
        return frozenset()
    begin, limit = _new_bars(seed, primer, tokenizer, bars)
    quarters = (limit - begin) / seed.ticks_per_quarter
    return frozenset(source for track, source in enumerate(primer.sources[1:len(pace)], start=1)
                     if source in arranged.onsets and not math.isnan(pace[track])
                     and arranged.onsets[source] < STARVED * pace[track] * quarters
                     and _sounds_before(seed.instruments[source], seed, begin))


def _silent_loops(looped: dict[int, int], written: list[int], seed: Score, primer: Primer) -> frozenset[int]:
    """The looped seed instruments the model could have written (pitched, in the primer) but left silent."""
    return frozenset(k for k in looped if k not in written and k in primer.sources and not seed.instruments[k].is_drum)


def _count(added: dict, extra: list) -> int:
    return sum(len(notes) for notes in added.values()) + sum(len(part.notes) for part in extra)


def track_name(part: Instrument, index: int) -> str:
    """How the summary names a track: its name, else its number and what it plays."""
    what = "drums" if part.is_drum else f"program {part.program}"
    return part.name.strip() or f"track {index + 1} ({what})"


# Bars a stretch of the seed is judged by (``fuller_bar``), and the share of the most parts that ever sound together
# in that many bars that its last bars must hold not to read as an outro. On MidiTok's 12 multi-track songs, the
# last 4 bars of Mr. Blue Sky hold 3 parts of 7, In Too Deep's 3 of 8, Shut Up's 4 of 10: each ends on a sparse
# outro; the other 9 hold 4 of 6 or more (Funkytown's 4 of 6, which 3/4 would call an outro).
OUTRO_BARS, OUTRO_SHARE = 4, 2 / 3


def fuller_bar(score: Score, grid: int) -> tuple[int, int, int] | None:
    """Where to go on from inside ``score`` when it ends on an outro: (the first bar of the last ``OUTRO_BARS`` bars
    that hold ``OUTRO_SHARE`` of the most parts any such stretch holds: where the parts that drop out last play, the
    parts those bars hold, the parts the last bars hold), or None when its last bars hold that many (bars on the
    tokenizer's ``grid``, ``end_line``)."""
    end = end_line(score, grid)
    lines = score.bar_lines(until=end) + [end]
    parts = [np.array([(note.start, note.end) for note in part.notes]) for part in score.instruments if part.notes]
    if len(lines) <= OUTRO_BARS or len(parts) < 2:
        return None

    def sounding(bar: int) -> int:  # parts sounding in the OUTRO_BARS bars that end with bar number ``bar``
        left, right = lines[bar - OUTRO_BARS], lines[bar]
        return sum(bool(np.any((notes[:, 0] < right) & (notes[:, 1] > left))) for notes in parts)

    counts = {bar: sounding(bar) for bar in range(OUTRO_BARS, len(lines))}
    full = OUTRO_SHARE * max(counts.values())
    last = len(lines) - 1
    if counts[last] >= full:
        return None
    bar = max(bar for bar, count in counts.items() if count >= full)
    return bar - OUTRO_BARS + 1, counts[bar], counts[last]


ACCOMPANIMENTS = ("band", "loop", "none")


def with_loops(seed: Score, tracks: set[int], bars: int, grid: int) -> tuple[Score, int, dict[int, int]]:
    """``seed`` with its ``tracks`` that sound in its last 4 bars repeating their last bars (``_looped``) for ``bars``
    bars after it ends (``end_line`` on the tokenizer's ``grid``), the index of the bar line where the loops begin
    (the seed's bars before it), and how many notes each looping track adds."""
    begin = end_line(seed, grid)
    limit, end = _bar_limit(seed, begin, bars), _loop_end(seed, begin)
    loops = {k: _looped(part, seed, begin, limit, end) for k, part in enumerate(seed.instruments)
             if k in tracks and _sounds_before(part, seed, begin)}
    parts = [dataclasses.replace(part, notes=part.notes + tuple(loops.get(k, ()))) for k, part in
             enumerate(seed.instruments)]
    return seed.replace(instruments=parts), len(seed.bar_lines(until=begin)), {k: len(v) for k, v in loops.items()
                                                                                 if v}


def _accompany(seed: Score, added: dict[int, list[Note]], lead: int | None, begin: int, limit: int) -> dict[int, int]:
    """Add to ``added`` (seed instrument -> new notes) the loops of the parts that would fall silent, and the
    lead's own lower notes for a melody model (``lead``); returns how many looped notes each track got."""
    looped, end = {}, _loop_end(seed, begin)
    for index, part in enumerate(seed.instruments):
        if index == lead:  # the lead's own lower voices (a piano's left hand) play on under the new tune
            line = {(note.start, note.pitch) for note in melody_line(seed, index).notes}
            below = _looped(dataclasses.replace(part, notes=[n for n in part.notes if (n.start, n.pitch) not in line]),
                            seed, begin, limit, end)
            added[index] = sorted(added.get(index, []) + below)
            if below:
                looped[index] = len(below)
        elif not added.get(index) and _sounds_before(part, seed, begin):
            added[index] = _looped(part, seed, begin, limit, end)
            if added[index]:
                looped[index] = len(added[index])
    return looped


def loops_sounding(seed: Score, primer: Primer, tokenizer: Tokenizer, bars: int,
                   silent: list[frozenset[int]]) -> tuple[np.ndarray, list[list[int]]]:
    """For rows whose ``silent`` seed instruments loop (``_accompany``) under the ``bars`` bars after ``primer``:
    int (rows, steps, 12), at each step from the primer's end the pitch classes those loops sound (one per part
    and pitch class), and per row the primer's tracks of those instruments (those it holds)."""
    steps, ticks = tokenizer.config.steps_per_quarter, seed.ticks_per_quarter
    begin, limit = _new_bars(seed, primer, tokenizer, bars)
    length = math.ceil((limit - begin) * steps / ticks) + 1
    end = _loop_end(seed, begin)

    @functools.cache
    def loop(index: int) -> np.ndarray:  # (steps, 12): the pitch classes instrument ``index``'s loop sounds
        part = np.zeros((length, 12), bool)
        for note in _looped(seed.instruments[index], seed, begin, limit, end):
            first, last = (round((tick - begin) * steps / ticks) for tick in (note.start, note.end))
            part[max(first, 0):max(last, first + 1), note.pitch % 12] = True
        return part

    sounding = np.zeros((len(silent), length, 12), np.int64)
    for row, parts in enumerate(silent):
        for index in parts:
            sounding[row] += loop(index)
    return sounding, [[primer.sources.index(index) for index in sorted(parts) if index in primer.sources]
                      for parts in silent]


def left_out(seed: Score, primer: Primer, tokenizer: Tokenizer, bars: int) -> frozenset[int]:
    """The pitched seed instruments the primer leaves out (past the parts the model learned, ``_parts_learned``)
    that loop under the ``bars`` new bars: they sound in the seed's last bars."""
    begin = _new_bars(seed, primer, tokenizer, bars)[0]
    return frozenset(k for k, part in enumerate(seed.instruments) if part.notes and not part.is_drum
                     and k not in primer.sources and _sounds_before(part, seed, begin))


LOOP_BARS = 4  # the longest loop; a part that sounds in the seed's last this many bars is part of the band


def _sounds_before(part: Instrument, seed: Score, begin: int) -> bool:
    """Whether ``part`` sounds in the ``LOOP_BARS`` bars that end at ``begin`` (a pad, a choir or a bass resting
    in the last bar, a break, still belongs to the band)."""
    lines = [line for line in seed.bar_lines(until=begin) if line < begin]
    first = lines[-LOOP_BARS] if len(lines) >= LOOP_BARS else 0
    return any(note.start < begin and note.end > first for note in part.notes)


# A seed's last bar that starts under this share of the notes the bar before it starts (every part together) is a
# final hit (the last chord, a cymbal), which no loop repeats. Of MidiTok's 12 multi-track songs, I Gotta Feeling ends
# on 1 note after 55, Aicha on 4 after 191, In Too Deep on 7 after 96, Les Yeux Revolvers on 10 after 65, one more on
# 20 after 191; the others' last bars hold 0.42-0.64 of the bar before.
FINAL_HIT_SHARE = 0.25


def _loop_end(seed: Score, begin: int) -> int:
    """Where the bars a loop repeats end: ``begin``, or the bar line before it when the seed's last bar is a final hit
    (``FINAL_HIT_SHARE``)."""
    lines = [line for line in seed.bar_lines(until=begin) if line < begin]
    if len(lines) < 2:
        return begin

    def onsets(left: int, right: int) -> int:
        return sum(left <= note.start < right for part in seed.instruments for note in part.notes)

    return lines[-1] if onsets(lines[-1], begin) < FINAL_HIT_SHARE * onsets(lines[-2], lines[-1]) else begin


def _looped(part: Instrument, seed: Score, begin: int, limit: int, end: int) -> list[Note]:
    """``part``'s notes of its last bars before ``end`` (``_loop_end``: ``begin``, or before the final hit if the
    seed ends on one), repeated from ``begin`` up to ``limit``: the last 4 bars, else 2, else 1 (the first that is all
    in one meter and in whose first bar ``part`` sounds, so the loop carries on from where the part was playing)."""
    lines = [line for line in seed.bar_lines(until=end) if line < end]
    bounds = lines + [end]
    length = next((k for k in (4, 2, 1) if len(lines) >= k
                   and len({b - a for a, b in zip(bounds[-k - 1:], bounds[-k:])}) == 1
                   and any(n.start < bounds[-k] and n.end > bounds[-k - 1] for n in part.notes)), 1)
    start = lines[-length] if lines else max(0, end - 4 * seed.ticks_per_quarter)
    period = end - start
    stop = end if end < begin else math.inf  # a note held into the final hit stops where the loop's bars end
    pattern = [dataclasses.replace(note, start=max(note.start, start), duration=min(note.end, stop) - max(note.start,
                                                                                                            start))
               for note in part.notes if note.start < end and note.end > start]  # a held chord is struck again
    looped = []
    for offset in range(begin - start, limit - start, period) if period > 0 else []:
        for note in pattern:
            onset = note.start + offset
            if onset < limit:
                looped.append(dataclasses.replace(note, start=onset, duration=max(1, min(note.duration,
                                                                                         limit - onset))))
    return looped


def _next_bar_line(score: Score, tick: int) -> int:
    """The first bar line of ``score`` at or after ``tick`` (bar lines go on in the last meter)."""
    return next(line for line in score.bar_lines(until=max(tick, 0) + score.longest_bar + 1) if line >= tick)


def _instrument(seed: Score, source: int | None, part: Instrument, notes: list[Note]) -> Instrument:
    """The seed's instrument ``source`` (or ``part`` itself, for a track the seed lacks) holding ``notes``."""
    base = seed.instruments[source] if source is not None else part
    return dataclasses.replace(base, notes=tuple(notes))


# Where a General MIDI family without a program the model knows looks next, by the part it plays: a bass
# line to the cello (42) or a choir's bass (52), pads and ensembles to the choir, lead lines (brass, reeds,
# pipes, synth leads) to the violin (40), keyboards and guitars to the piano (0).
ROLE_FALLBACKS = {1: (0,), 2: (0, 52), 3: (0,), 4: (42, 52, 41), 5: (40, 41, 42), 6: (52, 48, 40), 7: (40, 52),
                  8: (40, 52), 9: (40, 52), 10: (40, 52), 11: (52, 48), 13: (40, 0)}


def _known_instrument(part: Instrument, programs: set[int]) -> Instrument:
    """``part``, announced as an instrument the model knows: its own, else one of its General MIDI family, else
    the first known of its family's ``ROLE_FALLBACKS``, else the lowest program the model knows."""
    if part.is_drum or part.program in programs:
        return part
    pitched = sorted(p for p in programs if p >= 0)
    if not pitched:
        return part
    family = part.program // 8
    same = [p for p in pitched if p // 8 == family]
    role = [p for p in ROLE_FALLBACKS.get(family, ()) if p in programs]
    return dataclasses.replace(part, program=(same or role or pitched)[0])


def _new_bars(timing: Score, primer: Primer, tokenizer: Tokenizer, bars: int) -> tuple[int, int]:
    """The ticks of ``timing`` (the seed) where the ``bars`` bars after ``primer`` begin and end."""
    begin = round((primer.start + primer.end) * timing.ticks_per_quarter / tokenizer.config.steps_per_quarter)
    return begin, _bar_limit(timing, begin, bars)


def _bar_limit(timing: Score, position: int, bars: int) -> int:
    """The bar line ``bars`` bars on from ``position`` (the rest of a bar begun counts as a bar more)."""
    lines = timing.bar_lines(until=position + (bars + 2) * timing.longest_bar)
    current = max(index for index, line in enumerate(lines) if line <= position)
    return lines[current + bars + (1 if lines[current] < position else 0)]
