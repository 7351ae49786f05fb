"""Music metrics: pure functions of a Score (numpy only), for comparing generated music with real music.

Each docstring gives the formula and what a score without notes gives. Bars are
the score's own (its time signatures; 4/4 when it has none), from tick 0 to the
bar holding the end of the last note. "Pitched" notes are those of non-drum
instruments. ``music_metrics`` collects the scalar ones by name.

``continuation_fit`` measures how a continuation fits its seed, as a musician
would check it: the bars it spans in the file's meter, its notes in the seed's
key, its lead's density against the seed lead's, the seed's sounding tracks that
go on sounding, and how often its bars repeat.
"""

from __future__ import annotations

import math

import numpy as np

from melody.keys import estimate_key, in_key_share, key_name
from melody.ensemble import clash_share, copied_bars, on_others, parallels
from melody.score import Score, end_line, lead_index
from melody.tokenizer import TokenizerConfig

MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
NOTE_LENGTH_EDGES = (0.25, 0.5, 1.0, 2.0, 4.0)  # quarters: 16th, 8th, quarter, half, whole, longer


def _notes(score: Score, pitched: bool = True) -> np.ndarray:
    """(n, 3) int64 rows of (start, duration, pitch); only non-drum notes when ``pitched``."""
    rows = [(note.start, note.duration, note.pitch) for instrument in score.instruments
            if not (pitched and instrument.is_drum) for note in instrument.notes]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def bars(score: Score) -> np.ndarray:
    """(bars, 2) ticks [start, end) of every bar from 0 to the one holding the last note's end."""
    end = score.end_tick
    if end == 0:
        return np.zeros((0, 2), dtype=np.int64)
    lines = score.bar_lines(until=end + 64 * score.ticks_per_quarter)  # a little past the end
    closing = next(i for i, tick in enumerate(lines) if tick >= end)
    lines = np.array(lines[:closing + 1], dtype=np.int64)
    return np.stack([lines[:-1], lines[1:]], axis=1)


def pitch_range(score: Score) -> int:
    """Highest minus lowest pitched note, in semitones; 0 without pitched notes."""
    pitches = _notes(score)[:, 2]
    return int(pitches.max() - pitches.min()) if len(pitches) else 0


def pitch_class_entropy(score: Score) -> float:
    """-sum_c p(c) log2 p(c) over the 12 pitch classes of pitched notes, in bits (0..log2 12 = 3.585).

    0 for a single pitch class; nan without pitched notes.
    """
    pitches = _notes(score)[:, 2]
    if len(pitches) == 0:
        return math.nan
    p = np.bincount(pitches % 12, minlength=12) / len(pitches)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0


def scale_consistency(score: Score) -> float:
    """max over the 12 major scales (their modes included) of the share of pitched notes inside it.

    1 for music in one key; nan without pitched notes.
    """
    pitches = _notes(score)[:, 2]
    if len(pitches) == 0:
        return math.nan
    histogram = np.bincount(pitches % 12, minlength=12)
    return float(max(histogram[(MAJOR_SCALE + tonic) % 12].sum() for tonic in range(12)) / len(pitches))


def note_density(score: Score) -> float:
    """Notes (drums included) per bar: note count / number of bars; 0 without notes."""
    count, bar_count = len(_notes(score, pitched=False)), len(bars(score))
    return count / bar_count if bar_count else 0.0


def mean_polyphony(score: Score) -> float:
    """Mean number of pitched notes sounding, over the time when at least one sounds:
    sum of durations / length of the union of the notes' spans. 1 for a monophonic line; nan without notes."""
    notes = _notes(score)
    if len(notes) == 0:
        return math.nan
    order = np.argsort(notes[:, 0])
    starts, ends = notes[order, 0], (notes[:, 0] + notes[:, 1])[order]
    reach = np.maximum.accumulate(ends)
    gaps = np.maximum(starts[1:] - reach[:-1], 0)  # silence between a note and everything before it
    union = reach[-1] - starts[0] - gaps.sum()
    return float(notes[:, 1].sum() / union) if union > 0 else 1.0


def empty_bar_rate(score: Score) -> float:
    """Share of bars in which no note (drums included) sounds; nan without notes (no bars)."""
    spans, notes = bars(score), _notes(score, pitched=False)
    if len(spans) == 0:
        return math.nan
    ends = notes[:, 0] + notes[:, 1]
    sounding = [(notes[:, 0] < end) & (ends > start) for start, end in spans]
    return float(np.mean([not s.any() for s in sounding]))


def distinct_bar_ratio(score: Score) -> float:
    """Repetition: distinct bar contents / non-empty bars, where a bar's content is the set of
    (onset within the bar, pitch, duration, drum?) of the notes starting in it. 1 when no bar repeats
    another, 1/k for k copies of one bar; nan without notes."""
    contents = _bar_contents(score)
    filled = [content for content in contents if content]
    return len(set(filled)) / len(filled) if filled else math.nan


def groove_consistency(score: Score, steps_per_quarter: int = 12) -> float:
    """1 - mean over consecutive bars of Hamming(onsets_a, onsets_b) / grid steps, where onsets are the
    bar's note starts (drums included) on a grid of ``steps_per_quarter``. 1 for the same rhythm in every
    bar; nan with fewer than two bars."""
    spans = bars(score)
    if len(spans) < 2:
        return math.nan
    starts = _notes(score, pitched=False)[:, 0]
    step = score.ticks_per_quarter / steps_per_quarter
    size = int(round((spans[:, 1] - spans[:, 0]).max() / step))
    grids = np.zeros((len(spans), size), dtype=bool)
    bar_of = np.searchsorted(spans[:, 0], starts, side="right") - 1
    position = np.minimum(np.round((starts - spans[bar_of, 0]) / step).astype(np.int64), size - 1)
    grids[bar_of, position] = True
    return float(1.0 - (grids[1:] != grids[:-1]).mean())


def note_length_histogram(score: Score) -> np.ndarray:
    """Shares of pitched notes lasting up to a 16th, 8th, quarter, half, whole note, and longer
    (six numbers summing to 1); all zeros without pitched notes."""
    lengths = _notes(score)[:, 1] / score.ticks_per_quarter
    counts = np.bincount(np.searchsorted(NOTE_LENGTH_EDGES, lengths, side="left"), minlength=6)
    return counts / len(lengths) if len(lengths) else counts.astype(float)


def mean_note_length(score: Score) -> float:
    """Mean length of pitched notes in quarter notes; nan without pitched notes."""
    lengths = _notes(score)[:, 1]
    return float(lengths.mean() / score.ticks_per_quarter) if len(lengths) else math.nan


def _bar_contents(score: Score) -> list[frozenset]:
    spans = bars(score)
    contents: list[set] = [set() for _ in spans]
    for instrument in score.instruments:
        for note in instrument.notes:
            index = int(np.searchsorted(spans[:, 0], note.start, side="right")) - 1
            contents[index].add((note.start - int(spans[index, 0]), note.pitch, note.duration, instrument.is_drum))
    return [frozenset(content) for content in contents]


METRICS = {
    "pitch_range": pitch_range,
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "note_density": note_density,
    "mean_polyphony": mean_polyphony,
    "empty_bar_rate": empty_bar_rate,
    "distinct_bar_ratio": distinct_bar_ratio,
    "groove_consistency": groove_consistency,
    "mean_note_length": mean_note_length,
}


def music_metrics(score: Score) -> dict[str, float]:
    """Every scalar metric of ``score`` by name."""
    return {name: float(function(score)) for name, function in METRICS.items()}


# ----------------------------------------------------------------------------- fit to a seed

DENSITY_BARS = 4  # the seed lead's density is taken over its last 4 bars
KEY_BARS = 8  # the seed's key is the one its last 8 bars are in (a song may modulate on its way)


def new_notes(seed: Score, output: Score) -> tuple[Score, int, bool]:
    """(the continuation: ``output`` with only the notes that are not the seed's, the tick where it starts,
    whether ``output`` holds the seed).

    A note is the seed's when the seed has a note of that pitch at that time (compared in quarter
    notes, to 1/960). When ``output`` holds fewer than half the seed's notes it is taken to be the
    continuation alone (generated with ``--continuation-only``), starting at tick 0. Otherwise the
    continuation starts where the seed ends (``score.end_line``, as generation sees it).
    """
    def key(note, ticks):
        return round(note.start * 960 / ticks), note.pitch

    old = {key(note, seed.ticks_per_quarter) for note in seed.notes}
    ticks = output.ticks_per_quarter
    found = sum(key(note, ticks) in old for note in output.notes)
    if found < len(seed.notes) / 2:
        return output, 0, False
    start = round(end_line(seed, ONSET_GRID) * ticks / seed.ticks_per_quarter)
    instruments = [instrument.__class__(instrument.program, instrument.is_drum, instrument.name,
                                        [n for n in instrument.notes if key(n, ticks) not in old and n.start >= start],
                                        instrument.channel) for instrument in output.instruments]
    return output.replace(instruments=instruments), start, True


def counterparts(seed: Score, output: Score, holds_seed: bool) -> list[int | None]:
    """For each instrument of ``seed``, the index of the instrument of ``output`` that continues it: the
    one at the same index when ``output`` holds the seed (its tracks come first, in order), else the
    first with the same program, drum flag and channel; None if there is none."""
    if holds_seed:
        return [index if index < len(output.instruments) else None for index in range(len(seed.instruments))]
    keys = [(i.program, i.is_drum, i.channel) for i in output.instruments]
    return [keys.index(key) if key in keys else None
            for key in ((i.program, i.is_drum, i.channel) for i in seed.instruments)]


def bars_spanned(score: Score, start: int) -> int:
    """Bars from the one holding tick ``start`` to the one in which the last note starting at or after it
    stops sounding, or the score ends (``Score.end``: bars of rest at the end count), both counted, in the
    score's meter; 0 without such notes."""
    ends = [note.end for note in score.notes if note.start >= start]
    if not ends:
        return 0
    lines = score.bar_lines(until=max(ends + [score.end]))
    first = max(index for index, line in enumerate(lines) if line <= start)
    return len(lines) - first


# Onsets closer than this fraction of a quarter note are one (a chord as a pianist plays it, a few milliseconds
# spread): the grid melody writes on.
ONSET_GRID = TokenizerConfig().steps_per_quarter


def onsets_per_quarter(score: Score, instrument: int, start: int, end: int) -> float:
    """Distinct note onsets of one instrument in [start, end) ticks per quarter note, onsets counted on a grid
    of 1/``ONSET_GRID`` quarter note; nan for an empty span."""
    if end <= start:
        return math.nan
    onsets = {round(note.start * ONSET_GRID / score.ticks_per_quarter)
              for note in score.instruments[instrument].notes if start <= note.start < end}
    return len(onsets) * score.ticks_per_quarter / (end - start)


def sounds(instrument, start: int, end: int) -> bool:
    """Whether a note of ``instrument`` sounds in [start, end) ticks."""
    return any(note.start < end and note.end > start for note in instrument.notes)


def continuation_fit(seed: Score, output: Score, bars_asked: int | None = None) -> dict:
    """How the continuation in ``output`` fits ``seed`` (``new_notes`` tells which notes are new):

    * ``bars_written``: ``bars_spanned`` by the new notes from their start; ``bars_exact`` whether that is
      ``bars_asked`` (None when not asked).
    * ``key``: the key the seed ends in: the Krumhansl-Schmuckler estimate over the pitched notes of its last
      ``KEY_BARS`` bars; ``seed_in_key`` and ``in_key``: shares of those notes and of the new pitched notes
      in that key's scale (major; natural minor plus the raised seventh); ``lead_in_key`` the same for the
      new notes of the seed lead's track (what a melody model wrote, where ``in_key`` also counts the
      accompaniment); nan without such notes.
    * ``density_ratio``: the new lead's onsets per quarter note over the bars written, divided by the seed
      lead's over its last ``DENSITY_BARS`` bars up to the end of the bar of its last onset (a final note
      held for bars does not count as calm music); the lead: ``score.lead_index``; nan without a lead.
      ``parts_density``: the same ratio for each other pitched part that plays in the seed and in the new bars,
      the share of them within 1.5x (nan: no such part).
    * ``tracks_before``: the seed's tracks sounding in its last bar; ``tracks_kept``: how many of them
      sound (their ``counterparts``) in the first new bar; ``bars_playing``: the share of the new bars (the
      ``bars_asked``, else those written) each of them sounds in, their mean, against ``seed_bars_playing``, the
      same over the seed's last ``DENSITY_BARS`` bars (a bass that plays one new bar of eight: 1/8 against 1).
    * ``distinct_bar_ratio`` of the new notes.
    * Ensemble (``melody.ensemble``, over the new bars of ``output``, every part sounding there): ``clash``
      (clashing share of the time two parts sound together), ``lead_on_others`` (share of the new lead's
      notes on a pitch class another part sounds), ``copied_bars`` (mean over the other pitched parts of the
      share of their bars copied from a bar before), ``parallels`` (parallel fifths and octaves per 100
      moves of a pair of parts); nan where there is nothing to measure.
    """
    new, start, holds_seed = new_notes(seed, output)
    written = bars_spanned(new, start)
    seed_lines = seed.bar_lines(until=seed.end_tick)
    ending = [n for n in _pitched(seed) if n.start >= seed_lines[max(0, len(seed_lines) - KEY_BARS)]]
    key = estimate_key(ending)
    first_bar = max(line for line in new.bar_lines(until=start + 1) if line <= start)
    last_onset = max([note.start for note in new.notes] + [start])
    partner = counterparts(seed, new, holds_seed)
    lead = lead_index(seed)
    seed_density = math.nan if lead is None else _recent_density(seed, lead)
    new_density = math.nan if lead is None or partner[lead] is None else onsets_per_quarter(
        new, partner[lead], first_bar, _next_line(new, last_onset))
    before = [k for k, part in enumerate(seed.instruments)
              if sounds(part, seed_lines[-1] if seed_lines else 0, seed.end_tick)]
    kept = [k for k in before if partner[k] is not None
            and sounds(new.instruments[partner[k]], first_bar, _next_line(new, first_bar))]
    region = (start, _next_line(new, last_onset))
    count = bars_asked or written
    new_lines = [line for line in new.bar_lines(until=first_bar + (count + 1) * new.longest_bar)
                 if line >= first_bar][:count + 1]
    playing = [_bars_sounding(new.instruments[partner[k]], new_lines) if partner[k] is not None else 0.0
               for k in before]
    seed_playing = [_bars_sounding(seed.instruments[k], seed_lines[-DENSITY_BARS:] + [seed.end_tick])
                    for k in before]
    others = [partner[k] for k, part in enumerate(seed.instruments)
              if k != lead and partner[k] is not None and not part.is_drum]
    copied = [value for value in (copied_bars(output, k, *region) for k in others) if not math.isnan(value)]
    parts = [onsets_per_quarter(new, partner[k], first_bar, region[1]) / _recent_density(seed, k)
             for k, part in enumerate(seed.instruments) if k != lead and partner[k] is not None
             and not part.is_drum and part.notes and new.instruments[partner[k]].notes]
    ensemble = {"clash": clash_share(output, *region),
                "lead_on_others": on_others(output, partner[lead], *region)
                if lead is not None and partner[lead] is not None else math.nan,
                "copied_bars": float(np.mean(copied)) if copied else math.nan,
                "parallels": parallels(output, *region)}
    return {**ensemble, "bars_written": written, "bars_asked": bars_asked,
            "bars_exact": None if bars_asked is None else written == bars_asked,
            "key": key_name(*key), "seed_in_key": in_key_share(ending, key),
            "in_key": in_key_share(_pitched(new), key),
            "lead_in_key": in_key_share(new.instruments[partner[lead]].notes, key)
            if lead is not None and partner[lead] is not None else math.nan,
            "density_ratio": new_density / seed_density if seed_density else math.nan,
            "parts_density": float(np.mean([1 / 1.5 <= ratio <= 1.5 for ratio in parts])) if parts else math.nan,
            "tracks_before": len(before), "tracks_kept": len(kept),
            "bars_playing": float(np.mean(playing)) if playing else math.nan,
            "seed_bars_playing": float(np.mean(seed_playing)) if seed_playing else math.nan,
            "distinct_bar_ratio": distinct_bar_ratio(new)}


def _bars_sounding(part, lines: list[int]) -> float:
    """The share of the bars between ``lines`` (ticks, in order) in which ``part`` sounds; nan for none."""
    bars = list(zip(lines, lines[1:]))
    return float(np.mean([sounds(part, start, end) for start, end in bars])) if bars else math.nan


def _recent_density(score: Score, instrument: int) -> float:
    """Onsets per quarter of one instrument over the ``DENSITY_BARS`` bars ending with its last onset's bar."""
    last = max(note.start for note in score.instruments[instrument].notes)
    lines = score.bar_lines(until=last + 1)
    return onsets_per_quarter(score, instrument, lines[max(0, len(lines) - DENSITY_BARS)], _next_line(score, last))


def _pitched(score: Score) -> list:
    return [note for instrument in score.instruments if not instrument.is_drum for note in instrument.notes]


def _next_line(score: Score, tick: int) -> int:
    """The first bar line after ``tick``."""
    lines = score.bar_lines(until=tick + 64 * score.ticks_per_quarter)
    return next(line for line in lines if line > tick)
