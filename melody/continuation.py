"""Continuing a seed, in scores: what the model is primed with, and where the new music goes.

Score in, Score out; the model and the sampler are not seen here.

* ``make_primer``: the seed as the model sees it (``Tokenizer.prepare``), from a
  bar line on (its last ``primer_bars`` bars, or as many as fit in
  ``MAX_PRIMER_TOKENS``), with the header the tokenizer puts first: the key, the
  density of those bars, and the seed's tracks. A track whose instrument the model
  never learned is announced as the nearest instrument it did learn (same General
  MIDI family, else any), so the primer speaks the model's language; the new notes
  still go to the seed's own track and instrument.
* ``arrange``: the sampled tokens decoded; each new note joins the seed's track it
  was sampled for (``Primer.sources``); the new music is moved on by whole bars, if
  need be, so it starts once the seed has ended, keeping its place in the bar; it is
  cut at the bar line ``bars`` bars on; and it is written in the seed's ticks, with
  its tempo, meter and key, after the seed (or alone, ``continuation_only``).
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass

import numpy as np

from melody.errors import MelodyError
from melody.score import Instrument, Note, Score
from melody.tokenizer import Tokenizer

MAX_PRIMER_TOKENS = 1024


@dataclass(frozen=True)
class Primer:
    """Tokens to prime the model with, and how they map back onto the seed."""

    tokens: np.ndarray        # int32: header and the seed's last bars, no End
    start: int                # grid step of the prepared seed where the primer's time 0 lies
    sources: tuple[int, ...]  # for each track of the tokens, the seed instrument it continues
    timing: Score             # the primer's score (tempo, meter, key, track names) to decode against


def make_primer(seed: Score, tokenizer: Tokenizer, primer_bars: int | None = None,
                programs: set[int] | None = None) -> Primer:
    """The primer for continuing ``seed`` (see the module); ``programs``: the instruments the model knows."""
    sources = tokenizer.track_sources(seed)
    prepared = tokenizer.prepare(seed)
    if not prepared.notes:
        raise MelodyError("the seed has no pitched notes to take a melody from" if tokenizer.config.melody_only
                          else "the seed has no notes")
    if programs:
        prepared = prepared.replace(instruments=[_known_instrument(part, programs) for part in prepared.instruments])
    bar_lines = prepared.bar_lines(until=prepared.end_tick)
    count = min(primer_bars or len(bar_lines), len(bar_lines))
    while True:
        start = bar_lines[-count] if count else 0
        cut = _from(prepared, start)
        tokens = tokenizer.encode(cut, end=False).astype(np.int32)
        if len(tokens) <= MAX_PRIMER_TOKENS or count <= 1:
            break
        count = max(1, min(count - 1, count * MAX_PRIMER_TOKENS // len(tokens)))  # bars that may fit
    if len(tokens) > MAX_PRIMER_TOKENS:  # one bar too long: keep the header and the bar's end
        header = tokenizer.header_length(tokens)
        tokens = np.concatenate([tokens[:header], tokens[len(tokens) - (MAX_PRIMER_TOKENS - header):]])
    return Primer(tokens, start, tuple(sources), cut)


def primer_from_opening(opening: np.ndarray, tokenizer: Tokenizer) -> Primer:
    """A primer for music from scratch: a piece's opening (``Tokenizer.opening``)."""
    tokens = np.asarray(opening, dtype=np.int32)
    return Primer(tokens, 0, tuple(range(len(tokenizer.tracks(tokens)))), tokenizer.decode(tokens))


def arrange(seed: Score | None, primer: Primer, new_tokens: np.ndarray, tokenizer: Tokenizer, bars: int,
            continuation_only: bool = False) -> Score:
    """The output score: the seed followed by the new music (see the module), or the new music alone."""
    before = tokenizer.decode(primer.tokens, meta=primer.timing)
    after = tokenizer.decode(np.concatenate([primer.tokens, new_tokens]), meta=primer.timing)
    primer_end = max((note.start for note in before.notes), default=0)
    timing = seed if seed is not None else after
    steps, ticks = tokenizer.config.steps_per_quarter, timing.ticks_per_quarter

    def at(step: int) -> int:
        return round((step + primer.start) * ticks / steps)

    limit = _bar_limit(timing, at(primer_end), bars)
    new_parts = []
    for track, (old, new) in enumerate(zip(before.instruments, after.instruments)):
        known = {(note.start, note.pitch) for note in old.notes}
        notes = [Note(at(n.start), n.pitch, max(1, min(at(n.end), limit) - at(n.start)), n.velocity)
                 for n in new.notes if (n.start, n.pitch) not in known and at(n.start) < limit]
        new_parts.append((primer.sources[track] if track < len(primer.sources) else None, new, notes))
    if seed is None:
        return after.replace(instruments=[dataclasses.replace(part, notes=notes) for _, part, notes in new_parts
                                          if notes])
    moved = _after_seed([notes for _, _, notes in new_parts], seed)
    if continuation_only:
        parts = [_instrument(seed, source, part, notes) for (source, part, _), notes in zip(new_parts, moved)
                 if notes]
        first = min((n.start for part in parts for n in part.notes), default=0)
        return _from(seed.replace(instruments=parts), max([b for b in seed.bar_lines(until=first + 1) if b <= first],
                                                          default=0))
    instruments = list(seed.instruments)
    for (source, part, _), notes in zip(new_parts, moved):
        if not notes:
            continue
        if source is None:
            instruments.append(_instrument(seed, None, part, notes))
        else:
            instruments[source] = dataclasses.replace(instruments[source],
                                                      notes=instruments[source].notes + tuple(notes))
    return seed.replace(instruments=instruments)


def _instrument(seed: Score, source: int | None, part: Instrument, notes: list[Note]) -> Instrument:
    """The seed's instrument ``source`` (or ``part`` itself, for a track the seed lacks) holding ``notes``."""
    base = seed.instruments[source] if source is not None else part
    return dataclasses.replace(base, notes=tuple(notes))


def _known_instrument(part: Instrument, programs: set[int]) -> Instrument:
    """``part``, announced as an instrument the model knows: its own, else one of its General MIDI family."""
    if part.is_drum or part.program in programs:
        return part
    pitched = sorted(p for p in programs if p >= 0)
    if not pitched:
        return part
    family = [p for p in pitched if p // 8 == part.program // 8]
    return dataclasses.replace(part, program=(family or pitched)[0])


def _from(score: Score, start: int) -> Score:
    """The part of ``score`` from tick ``start`` on, moved to begin at 0, with the tempo, meter and key then
    in force."""
    def from_start(events):
        before = [e for e in events if e.tick <= start][-1:]
        return [dataclasses.replace(e, tick=max(0, e.tick - start)) for e in before + [e for e in events
                                                                                        if e.tick > start]]

    return score.replace(
        instruments=[dataclasses.replace(i, notes=[dataclasses.replace(n, start=n.start - start)
                                                   for n in i.notes if n.start >= start]) for i in score.instruments],
        time_signatures=from_start(score.time_signatures), key_signatures=from_start(score.key_signatures),
        tempos=from_start(score.tempos))


def _after_seed(parts: list[list[Note]], seed: Score) -> list[list[Note]]:
    """``parts`` moved on by whole bars, if need be, so that they start once the seed has ended.

    The model continues after the primer's last onset; but the seed may sound on after that (a
    melody model's lead line falls silent while the band plays an outro, or a final chord is held
    long). New music follows the seed, it does not play over it.
    """
    notes = [note for part in parts for note in part]
    if not notes:
        return parts
    first, end, ticks = min(n.start for n in notes), seed.end_tick, seed.ticks_per_quarter
    if first >= end - ticks // 4:  # at most a 16th over the seed's last release
        return parts
    longest = max([s.bar_ticks(ticks) for s in seed.time_signatures] or [4 * ticks])
    last = max(n.end for n in notes)
    lines = seed.bar_lines(until=last + (end - first) + 2 * longest)

    def bar(tick):  # the index of the bar holding ``tick``: a note keeps its place in its bar
        return bisect.bisect_right(lines, tick) - 1

    start_bar = bar(first)
    shift = next(k for k in range(1, len(lines)) if lines[start_bar + k] + first - lines[start_bar] >= end - ticks // 4)
    return [[dataclasses.replace(n, start=lines[bar(n.start) + shift] + n.start - lines[bar(n.start)]) for n in part]
            for part in parts]


def _bar_limit(timing: Score, position: int, bars: int) -> int:
    """The bar line ``bars`` bars on from ``position`` (the rest of a bar begun counts as a bar more)."""
    longest = max([s.bar_ticks(timing.ticks_per_quarter) for s in timing.time_signatures] or
                  [4 * timing.ticks_per_quarter])
    lines = timing.bar_lines(until=position + (bars + 2) * longest)
    current = max(index for index, line in enumerate(lines) if line <= position)
    return lines[current + bars + (1 if lines[current] < position else 0)]
