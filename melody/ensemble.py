"""Do the parts play together? Pure functions of a Score, for new music against the real thing.

All of them look at a stretch of the score, ticks ``start`` to ``end`` (the new bars of a
continuation, or the real bars that followed the seed), and at pitched parts only:

* ``clash_share``: of the time two notes of different parts sound together, the share in
  which they form a second, a seventh or a tritone (interval classes 1, 2, 6, 10, 11),
  each pair weighted by how long it overlaps. Real four-part chorales sit around 0.1;
  two parts that ignore each other land near 5/12 = 0.42.
* ``on_others``: the share of one part's notes struck on a pitch class another part is
  sounding at that moment (a melody that belongs to its harmony lands on it often).
* ``copied_bars``: the share of a part's bars in the stretch that repeat, note for note,
  one of its bars before ``start`` (a loop copies all of them).
* ``silent_bars``: the share of (pitched part, bar) pairs of the stretch in which the part sounds no note at
  all (a note held over the bar line sounds). Bach's chorale voices are silent in 0.3% of their bars,
  Palestrina's in 13%.
* ``ends_on_tonic``: whether the stretch closes as a cadence does: at the downbeat of its
  last bar every sounding note belongs to the key's tonic triad (in a minor key its major
  third too: the Picardy third of Bach's minor chorales; an open fifth also counts), the
  lowest is the tonic, and (with several parts) at least two parts sound.

* ``parallels``: parallel fifths and octaves per 100 moves of a pair of parts. A pair moves
  between two consecutive onsets of the stretch (of any part) when both sound at both and
  either changes pitch; it moves in parallel when both change pitch in the same direction
  and the interval class (semitones apart mod 12) is 7 at both, or 0 at both. Bach's
  chorales, which avoid them, sit near 0; voices that ignore each other do not.
* ``crossings``: of the time two pitched parts sound together, the share in which the part
  listed later (lower, in melody's track order and in a chorale's) sounds above the earlier.

Each returns nan when there is nothing to measure (no overlapping parts, no notes).
"""

from __future__ import annotations

import math

import numpy as np

from melody.keys import parse_key
from melody.score import Score

CLASHING = frozenset({1, 2, 6, 10, 11})


def _pitched_parts(score: Score) -> list[np.ndarray]:
    """Per pitched part, (n, 3) int64 rows of (start, end, pitch)."""
    return [np.array([(n.start, n.end, n.pitch) for n in part.notes], np.int64).reshape(-1, 3)
            for part in score.instruments if not part.is_drum]


def clash_share(score: Score, start: int, end: int) -> float:
    """Clashing share of the time notes of two different parts overlap within [start, end) (see the module)."""
    events = [(max(s, start), min(e, end), pitch, part)
              for part, notes in enumerate(_pitched_parts(score)) for s, e, pitch in notes
              if s < end and e > start]
    cuts = sorted({tick for s, e, _, _ in events for tick in (s, e)})
    together = clashing = 0
    for left, right in zip(cuts, cuts[1:]):
        sounding = [(pitch, part) for s, e, pitch, part in events if s <= left and e >= right]
        for i, (pitch, part) in enumerate(sounding):
            for other_pitch, other_part in sounding[i + 1:]:
                if part != other_part:
                    together += right - left
                    clashing += (right - left) * (abs(pitch - other_pitch) % 12 in CLASHING)
    return clashing / together if together else math.nan


def on_others(score: Score, part: int, start: int, end: int) -> float:
    """Share of the notes of pitched part ``part`` (index among the score's instruments) struck in [start, end)
    on a pitch class that another pitched part sounds at that moment."""
    instruments = score.instruments
    others = [(n.start, n.end, n.pitch % 12) for k, inst in enumerate(instruments) if k != part and not inst.is_drum
              for n in inst.notes]
    struck = [n for n in instruments[part].notes if start <= n.start < end]
    if not struck:
        return math.nan
    hits = sum(any(s <= n.start < e and c == n.pitch % 12 for s, e, c in others) for n in struck)
    return hits / len(struck)


def copied_bars(score: Score, part: int, start: int, end: int) -> float:
    """Share of part ``part``'s bars in [start, end) (those with notes) equal, note for note relative to the bar
    line, to one of its bars before ``start``."""
    lines = [tick for tick in score.bar_lines(until=end) if tick < end] + [end]
    notes = score.instruments[part].notes

    def content(left: int, right: int) -> tuple:
        return tuple(sorted((n.start - left, n.pitch, n.duration) for n in notes if left <= n.start < right))

    before = {content(a, b) for a, b in zip(lines, lines[1:]) if b <= start} - {()}
    after = [content(a, b) for a, b in zip(lines, lines[1:]) if a >= start]
    after = [bar for bar in after if bar]
    return sum(bar in before for bar in after) / len(after) if after else math.nan


def silent_bars(score: Score, start: int, end: int) -> float:
    """Share of (pitched part with notes anywhere, bar of [start, end)) pairs in which no note of the part sounds."""
    lines = [tick for tick in score.bar_lines(until=end) if start <= tick < end] + [end]
    parts = [notes for notes in _pitched_parts(score) if len(notes)]
    silent = [not np.any((notes[:, 0] < right) & (notes[:, 1] > left))
              for notes in parts for left, right in zip(lines, lines[1:])]
    return float(np.mean(silent)) if silent else math.nan


def ends_on_tonic(score: Score, key: str, start: int, end: int) -> float:
    """1.0 if the stretch [start, end) closes on the tonic harmony at its last bar's downbeat (see the module),
    0.0 if not, nan if nothing sounds there."""
    lines = [tick for tick in score.bar_lines(until=end) if start <= tick < end]
    if not lines:
        return math.nan
    downbeat = lines[-1]
    sounding = [(pitch, part) for part, notes in enumerate(_pitched_parts(score))
                for s, e, pitch in notes if s <= downbeat < e]
    if not sounding:
        return math.nan
    tonic, minor = parse_key(key)
    triad = {tonic, (tonic + 4) % 12, (tonic + 7) % 12} | ({(tonic + 3) % 12} if minor else set())
    parts = {part for _, part in sounding}
    several = len([p for p in _pitched_parts(score) if len(p)]) > 1
    lowest = min(pitch for pitch, _ in sounding)
    closes = all(pitch % 12 in triad for pitch, _ in sounding) and lowest % 12 == tonic
    return float(closes and (len(parts) >= 2 or not several))


def _top_at(notes: np.ndarray, tick: int) -> int | None:
    """The highest pitch of ``notes`` ((start, end, pitch) rows) sounding at ``tick``, or None."""
    sounding = notes[(notes[:, 0] <= tick) & (notes[:, 1] > tick), 2]
    return int(sounding.max()) if len(sounding) else None


def parallels(score: Score, start: int, end: int) -> float:
    """Parallel fifths and octaves per 100 moves of a pair of pitched parts in [start, end) (see the module)."""
    parts = [notes for notes in _pitched_parts(score) if len(notes)]
    onsets = sorted({int(s) for notes in parts for s in notes[:, 0] if start <= s < end})
    pitches = [[_top_at(notes, tick) for tick in onsets] for notes in parts]
    moves = parallel = 0
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            for before, after in zip(range(len(onsets)), range(1, len(onsets))):
                a0, a1, b0, b1 = pitches[i][before], pitches[i][after], pitches[j][before], pitches[j][after]
                if None in (a0, a1, b0, b1) or (a0 == a1 and b0 == b1):
                    continue
                moves += 1
                same_way = (a1 - a0) * (b1 - b0) > 0
                interval = abs(a0 - b0) % 12
                parallel += same_way and interval in (0, 7) and abs(a1 - b1) % 12 == interval
    return 100 * parallel / moves if moves else math.nan


def crossings(score: Score, start: int, end: int) -> float:
    """Share of the time two pitched parts sound together in [start, end) that the later one sounds above."""
    parts = _pitched_parts(score)
    together = crossed = 0
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            for s1, e1, p1 in parts[i]:
                for s2, e2, p2 in parts[j]:
                    overlap = min(e1, e2, end) - max(s1, s2, start)
                    if overlap > 0:
                        together += overlap
                        crossed += overlap * (p2 > p1)
    return crossed / together if together else math.nan
