"""What the model is told about the music ahead: the kept parts' coming notes and how far the end is.

A user may keep parts of a song as they are (a melody to harmonize, a loop to play over)
and ask for the end of the new music to close. Kept notes are in the token stream at
their own time, but a part written under a melody must prepare the melody's next note,
not only answer the last one. So beside each token's embedding the network gets
``WIDTH`` numbers about what comes after that token:

    columns  name       what
     0-11    soon       pitch classes of kept notes starting within a quarter note after this token
    12-23    later      pitch classes of kept notes starting a quarter to two quarters after it
    24-27    ending     one-hot: this token is in the last bar, or 1, 2, 3 bars before it (all 0: not told)
    28       kept       1 when some part is kept (the zeros above then mean the kept parts rest)

"After this token" is by place in the stream: a kept note at the same moment but written
later counts as soon. Drum tracks give no pitch classes. Header tokens, and anything after
a piece's End (a training window may run on into the next piece), get zeros: with nothing kept and no ending asked for, every row is zero and
the network is the plain one.

Training (``melody.dataset``) keeps a random set of parts and tells the ending in a
random half of its windows (``choose``, ``piece_features``), and does not ask the network
for the kept parts' own tokens (``given``): generation plays those in, so a network
trained on them learns to copy the kept notes from what it is told instead of writing
the other parts around them. Generation plays the kept
notes (``KeptNotes``, made by ``Tokenizer.kept_notes``) into the sampled stream and
tells each token what is ahead the same way (``told``; the primer's tokens too, ``primer_features``, as
training tells a piece whose parts are kept throughout). What a token means comes from
the tokenizer's table (``Tokenizer.token_table``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDTH = 29
SOON, LATER, ENDING, KEPT = slice(0, 12), slice(12, 24), slice(24, 28), 28
ENDING_BARS = 4
KEEP_NOTHING = 0.5   # share of training windows of multi-part pieces with no part kept
KEEP_LEAD = 0.3      # share of the windows that keep parts keeping the lead alone (harmonize, --keep-lead)
TELL_ENDING = 0.5    # share of training windows told where their piece ends


def choose(rng: np.random.Generator, tracks: list[tuple[bool, int]]) -> tuple[frozenset[int], bool]:
    """For one training window of a piece with ``tracks`` (``Tokenizer.tracks``): the tracks kept (none in
    ``KEEP_NOTHING`` of the windows, and always none for a piece of one track; else the lead, track 0, alone in
    ``KEEP_LEAD`` of them when it is pitched, and otherwise each track kept with even odds, at least one kept and
    one written) and whether the window is told where the piece ends."""
    count = len(tracks)
    kept: frozenset[int] = frozenset()
    if count > 1 and rng.random() >= KEEP_NOTHING:
        if not tracks[0][0] and rng.random() < KEEP_LEAD:
            return frozenset({0}), bool(rng.random() < TELL_ENDING)
        chosen = rng.random(count) < 0.5
        if chosen.all() or not chosen.any():
            chosen[rng.integers(count)] = not chosen.all()
        kept = frozenset(np.flatnonzero(chosen).tolist())
    return kept, bool(rng.random() < TELL_ENDING)


def piece_features(tokens: np.ndarray, table: dict, header: int, drums: list[bool], kept: frozenset[int],
                   tell_ending: bool) -> np.ndarray:
    """float32 (len(tokens), WIDTH): the features of every token of one whole piece (its header, ``header``
    tokens, first, its End last; ``drums``: per track, whether it is a drum track), ``kept`` tracks kept, the
    end told or not. ``table``: ``Tokenizer.token_table()``."""
    tokens = np.asarray(tokens, dtype=np.intp)
    features = np.zeros((len(tokens), WIDTH), np.float32)
    body, rows = tokens[header:], features[header:]
    if not len(body):
        return features
    if kept:
        _kept_notes(rows, body, table, drums, kept)
        rows[:, KEPT] = 1.0
    if tell_ending:
        is_bar = table["bar_steps"][body] > 0
        after = is_bar[::-1].cumsum()[::-1] - is_bar  # bar lines after each token
        near = after < ENDING_BARS
        rows[np.flatnonzero(near), ENDING.start + after[near]] = 1.0
    return features


def given(tokens: np.ndarray, table: dict, header: int, kept: frozenset[int]) -> np.ndarray:
    """Bool per token of one whole piece: the tokens that play the ``kept`` tracks' notes (a kept track's Track
    token, and the Velocity, Note and Duration tokens while it is in force). Generation plays these in itself,
    so training does not ask the network for them: their loss counts nothing (``melody.dataset``)."""
    tokens = np.asarray(tokens, dtype=np.intp)
    result = np.zeros(len(tokens), bool)
    if not kept:
        return result
    body = tokens[header:]
    in_force = _in_force(body, table)
    keeps = np.zeros(int(in_force.max(initial=-1)) + 2, bool)
    keeps[[track for track in kept if track < len(keeps) - 1]] = True
    moves = (table["shift_steps"][body] > 0) | (table["bar_steps"][body] > 0) | (body < 3)  # and Pad, Begin, End
    result[header:] = keeps[in_force] & ~moves
    return result


def _in_force(body: np.ndarray, table: dict) -> np.ndarray:
    """Per token of ``body``, the track in force there (its own, for a Track token), -1 before the first."""
    track_tokens = np.flatnonzero(table["track_of"][body] >= 0)
    if not len(track_tokens):
        return np.full(len(body), -1)
    marks = np.full(len(body), -1)
    marks[track_tokens] = track_tokens
    last = np.maximum.accumulate(marks)
    return np.where(last >= 0, table["track_of"][body[np.maximum(last, 0)]], -1)


def _kept_notes(rows: np.ndarray, body: np.ndarray, table: dict, drums: list[bool], kept: frozenset[int]) -> None:
    """Fill ``rows``' soon and later columns from the kept tracks' notes in ``body``."""
    in_force = _in_force(body, table)
    pitch = table["pitch_of"][body]
    keeps = np.zeros(max(len(drums), int(in_force.max()) + 1, 1), bool)
    keeps[[track for track in kept if track < len(keeps)]] = True
    keeps[:len(drums)] &= ~np.asarray(drums, bool)
    notes = np.flatnonzero((pitch >= 0) & (in_force >= 0) & keeps[np.maximum(in_force, 0)])
    if not len(notes):
        return
    time = np.cumsum(table["shift_steps"][body])  # the time at each token, after its own shift
    quarter = int(table["steps_per_quarter"])
    for columns, near, far in ((SOON, 0, quarter), (LATER, quarter, 2 * quarter)):
        # Tokens i before note j with near <= time_j - time_i < far; time never falls, so a range of places.
        first = np.searchsorted(time, time[notes] - far, side="right")
        last = np.minimum(np.searchsorted(time, time[notes] - near, side="right"), notes)  # exclusive
        marks = np.zeros((len(body) + 1, 12), np.int32)
        classes = pitch[notes] % 12
        np.add.at(marks, (first, classes), 1)
        np.add.at(marks, (np.maximum(last, first), classes), -1)
        rows[:, columns] = np.cumsum(marks[:-1], axis=0) > 0


@dataclass(frozen=True)
class KeptNotes:
    """The notes of kept parts within the music to be sampled, in stream order: ``times`` (int (n,), steps from
    where sampling starts), ``slots`` (int (n, 4): the Track, Velocity, Note and Duration tokens that play each),
    ``classes`` (int (n,): pitch class, -1 for a drum note) and ``tracks`` (the kept tracks: the model writes
    none of their notes)."""

    times: np.ndarray
    slots: np.ndarray
    classes: np.ndarray
    tracks: frozenset[int]

    def __len__(self) -> int:
        return len(self.times)


def told(kept: KeptNotes | None, next_note: np.ndarray, now: np.ndarray, bars_left: np.ndarray | None,
         steps_per_quarter: int) -> np.ndarray:
    """float32 (rows, WIDTH): what each sampled row's last token is told: the kept notes from its ``next_note``
    on (those not yet in its stream) by their time against its ``now``, and its ``bars_left`` (None: the end
    not told), as ``piece_features`` tells a token of a training piece."""
    rows = len(now)
    features = np.zeros((rows, WIDTH), np.float32) if bars_left is None else ending(bars_left)
    if kept is None:
        return features
    features[:, KEPT] = 1.0
    if not len(kept):
        return features
    counts = np.zeros((len(kept) + 1, 12), np.int32)
    pitched = kept.classes >= 0
    counts[1:][np.flatnonzero(pitched), kept.classes[pitched]] = 1
    counts = np.cumsum(counts, axis=0)
    first = np.minimum(next_note, len(kept))
    soon = np.maximum(np.searchsorted(kept.times, now + steps_per_quarter, side="left"), first)
    later = np.maximum(np.searchsorted(kept.times, now + 2 * steps_per_quarter, side="left"), first)
    features[:, SOON] = counts[soon] - counts[first] > 0
    features[:, LATER] = counts[later] - counts[soon] > 0
    return features


def primer_features(primer: np.ndarray, table: dict, header: int, drums: list[bool], kept: KeptNotes | None,
                    ending_in: int | None) -> np.ndarray:
    """float32 (len(primer), WIDTH): what each token of a primer is told, as training tells the tokens of a piece
    whose ``kept`` tracks are kept throughout (their notes in the primer, and the ``kept`` notes after it, by time
    against each token's) and, with ``ending_in`` (bar lines after the primer's last token), where it ends."""
    primer = np.asarray(primer, dtype=np.intp)
    features = piece_features(primer, table, header, drums, kept.tracks if kept is not None else frozenset(), False)
    body = features[header:]
    if kept is not None and len(kept) and len(body):
        time = np.cumsum(table["shift_steps"][primer[header:]])
        after = told(kept, np.zeros(len(body), np.int64), time - time[-1], None, int(table["steps_per_quarter"]))
        body[:] = np.maximum(body, after)
    if ending_in is not None and len(body):
        is_bar = table["bar_steps"][primer[header:]] > 0
        body[:] = np.maximum(body, ending(ending_in + is_bar[::-1].cumsum()[::-1] - is_bar))
    return features


def ending(bars_left: np.ndarray) -> np.ndarray:
    """float32 (rows, WIDTH): rows told only how many bar lines are left before the end (``bars_left``, one per
    row; ``ENDING_BARS`` or more: nothing)."""
    bars_left = np.asarray(bars_left)
    features = np.zeros((len(bars_left), WIDTH), np.float32)
    near = np.flatnonzero((bars_left >= 0) & (bars_left < ENDING_BARS))
    features[near, ENDING.start + bars_left[near]] = 1.0
    return features


def transposed(features: np.ndarray, semitones: int) -> np.ndarray:
    """``features`` of music moved by ``semitones``: the pitch classes turn along."""
    moved = features.copy()
    for columns in (SOON, LATER):
        moved[..., columns] = np.roll(features[..., columns], semitones, axis=-1)
    return moved
