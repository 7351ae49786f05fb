"""The sampling loop: new tokens from any sequence model that can be primed and stepped.

A sequence model for sampling implements two methods on NumPy arrays:

    prime(tokens)        tokens: int (time,)   ->  (logits (1, vocabulary), state)
    step(tokens, state)  tokens: int (batch,)  ->  (logits (batch, vocabulary), state)

and, to be told what lies ahead (``melody.ahead``: the end of the music), an optional
third argument to each: float32 features (time or batch, ahead.WIDTH).

``state`` is whatever the model carries from one token to the next: nested lists
and tuples of arrays whose first axis is the batch (the LSTM's (h, c) per layer,
for ``melody.numpy_lstm.NumpyLSTM``). The sampler never looks inside it beyond
repeating the primed state once per sample, so another kind of model plugs in
without touching this module.

The loop, in ``Sampler.sample``:

    1. the primer runs through the model once (``Sampler.prime``), its state is copied to every sample;
    2. then, per new token, for all samples at once (one batch):
         logits, masked to what may come next (below)
         -> / temperature -> keep the top-k -> keep the top-p nucleus
         -> draw a token (from a generator seeded by the random seed: reproducible)
         -> ``step`` -> new logits
       until every row has its bars, or the token cap is reached.

What may come next: the tokens a row may hold at all (``allowed``: its own tracks, no
header tokens), kept in step with the meter and with the note grammar; and, while a
pitched track plays, a ``penalty`` on some tokens (notes out of the key, ``--key-strength``):

    position, bar_length     steps since the last bar line, steps in this bar (from its bar token)
    at the bar line          (position == bar_length): only the bar token of the meter, or the end
                             once ``bars`` bars are complete
    inside the bar           no bar token; a time shift only if position + its steps <= bar_length
    the note grammar         after a track token, a velocity or a note; after a velocity, a note;
                             after a note, its duration; a duration nowhere else
    kept notes (``kept``)    a kept note is played, not drawn, once its time has come and the grammar
                             allows (its Track, Velocity, Note and Duration tokens, the first two only
                             where they change); a time shift only up to the next kept note; no Track
                             token of a kept track, and no note of the row's own while one is in force
    chords (``chords``)      no more notes of a track at one moment than its limit (a voice sings one)
    under (``under``)        no note of a track above the last note of the track it stays under (a part
                             added under the others: at most ``CROSS_REACH`` above it, at a cost)
    added (``added``)        for a part added under the others, a cost for leaps and for doubling the
                             top part (``voice_cost``)
    register (``register``)  a cost for a note beyond a part's register: an added voice's, a written
                             part's own range in the seed (``_bias``)
    smooth (``smooth``)      no note in parallel fifths or octaves with any part (unless nothing else
                             fits): every added part, and a seed's lines where its bars have none
    pace (``pace``)          a track held to a number of onsets per quarter note: the tokens that begin
                             its note at a new moment weigh more while it is behind, less while ahead
                             (counted from its first note in the primer); a part resting longer than it
                             ever did in the primer is drawn in by ``REST_PULL``
    the close (``close``)    with ``ending``: the last bar's downbeat on the tonic chord (``_Closing``)
    track order              within a moment, no track before one that has written there; a kept note
                             waits while the tracks before it write theirs at its moment

so bar lines fall exactly where the meter puts them and time never crosses one
unmarked: ``bars`` asked are ``bars`` written. The bar the primer ends in counts as
the first (a primer made by ``continuation.make_primer`` ends with a bar line).
With kept notes or an ending asked for, each token is told what lies ahead
(``melody.ahead.told``) as training told it.

Each step costs a few small NumPy operations besides the network's matrix products:
no graph to compile, no TensorFlow to import, and never a re-run of the network
over a sliding window (speeds in BENCHMARKS.md). What a token means is the
tokenizer's business: the sampler gets tables over the vocabulary
(``Tokenizer.token_table``), not token ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from melody import ahead
from melody.ensemble import CLASHING
from melody.errors import SettingError
from melody.settings import setting


# Nats added to a lookback model's score for repeating the bar PHRASE_BARS or more bars back (``NumpyLSTM.step``'s
# ``returns``; the first token after the primer is drawn without). Sampled, the model brings bars back less than the
# tunes it learned: 16 bars after 41 held-out folk tunes, distinct bars / bars 0.909 after the whole tune and 0.849
# after 8 bars, against the tunes' own 0.740 +- 0.173; with 1 nat on the returns of 4 and 8 bars, 0.779 and 0.731.
# Tried: 1 nat on every distance (the bar just played too) looped single bars more often; 2 nats brought bars back
# too often (0.63 and 0.62). BENCHMARKS.md, "Phrase returns".
PHRASE_RETURNS = 1.0
PHRASE_BARS = 4


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn: ``temperature`` (> 0; lower is more conservative), then ``top_k``
    (None: no limit), then ``top_p`` (the smallest set of likeliest tokens holding this much probability);
    ``phrase_returns``: see ``PHRASE_RETURNS``."""

    temperature: float = setting(1.0, "Above 0; lower is more conservative, higher more adventurous.", short="-t")
    phrase_returns: float = setting(PHRASE_RETURNS, f"Nats added to the weight the model gives to bringing back the "
                                    f"bar {PHRASE_BARS} or more bars before (a model with lookback): phrases come "
                                    "back about as often as in real tunes (0: the model's own).")
    top_k: int | None = setting(None, "Sample only from the k likeliest tokens (default: all).")
    top_p: float = setting(1.0, "Sample only from the likeliest tokens holding this much probability, in (0, 1].")

    def __post_init__(self):
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise SettingError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise SettingError(f"top-k must be at least 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise SettingError(f"top-p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.phrase_returns <= 10:
            raise SettingError(f"phrase returns must be in 0..10 nats, got {self.phrase_returns}")


@dataclass(frozen=True)
class Primed:
    """A primer run through the model: its tokens, the logits after them and the model's state (batch 1)."""

    tokens: np.ndarray
    logits: np.ndarray
    state: object


class Sampler:
    """Stateful, batched sampling from a model with ``prime`` and ``step`` (see the module)."""

    def __init__(self, model, table: dict):
        """``table``: ``Tokenizer.token_table()``."""
        self.model = model
        self.table = {name: np.asarray(values) for name, values in table.items()}
        self.vocabulary = int(len(table["bar_steps"]))
        table = self.table
        self.is_bar, self.shift_steps, self.track_of = table["bar_steps"] > 0, table["shift_steps"], table["track_of"]
        self.follows = table["follows"]  # the note grammar: which token may come right after which
        self.steps_per_quarter = int(table["steps_per_quarter"])

    def prime(self, primer: np.ndarray, kept: ahead.KeptNotes | None = None, ending_in: int | None = None,
              header: int = 0, drums: tuple[bool, ...] = ()) -> Primed:
        """Run the primer (tokens (time,)) through the model once; ``sample`` continues from here. ``kept`` and
        ``ending_in`` (bars after the primer's last bar line): what its tokens are told (``ahead.primer_features``:
        those of its header, ``header`` tokens, nothing; ``drums``: per track, whether it is a drum track)."""
        primer = np.asarray(primer, dtype=np.intp)
        if kept is None and ending_in is None:
            logits, state = self.model.prime(primer)
        else:
            told = ahead.primer_features(primer, self.table, header, list(drums), kept, ending_in)
            logits, state = self.model.prime(primer, told)
        return Primed(primer, logits, state)

    def sample(self, primed: Primed, samples: int, allowed: np.ndarray, max_tokens: int, bars: int,
               random_seed: int, config: SamplingConfig = SamplingConfig(), penalty: np.ndarray | None = None,
               pitched: np.ndarray | None = None, ending: bool = False, kept: ahead.KeptNotes | None = None,
               chords: np.ndarray | None = None, under: np.ndarray | None = None,
               register: np.ndarray | None = None, added: np.ndarray | None = None,
               smooth: np.ndarray | None = None, pace: np.ndarray | None = None,
               held_only: np.ndarray | None = None, close: tuple | None = None,
               clash: float = 0.0, loops: tuple | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """``samples`` continuations of the primer (``prime``): ``bars`` bars in all, counting the bar
        the primer ends in, each new bar in the meter of that one. Returns one array per sample, and a bool
        per sample: whether it completed its bars (False: it reached ``max_tokens`` first and ends there).

        ``allowed``: bool (vocabulary,), the tokens a row may draw. ``penalty``: float (vocabulary,), subtracted
        from the logits (e.g. notes out of key) while the current track is one of ``pitched`` (bool per track; drums
        are not held to a key). ``ending``: tell the model, token by token, how many bars are left
        (``melody.ahead``), so that it closes. ``kept``: notes of kept parts, played into every row at their time (a
        time shift stops at the next one) and told ahead of it; the model writes no note of a kept track, and a
        written one is drawn to the pitch classes the kept ones sound as often as the primer's parts doubled them
        (``CARRY``). Prime with the same ``kept`` and ``ending_in=bars - 1``. ``chords``: int per track, the most
        notes it may start at one moment (default: no limit). ``under``: int per track, the track whose last note it
        may not rise above (-1: none): parts added under a melody, voices that keep their order; ``added``: bool per
        track, a part added under the others, which also leads its voice (``_Playing.voice_cost``, no parallels);
        ``smooth``: bool per track, a part that moves in parallel fifths or octaves with no other where it has
        another choice; ``register``: float (tracks, 2), the lowest and highest pitch each plays free of cost (nan:
        any; ``_bias``). ``pace``: float per track, the note onsets per quarter note it keeps to (nan: free;
        ``_Playing.pace_bias``); ``held_only``: bool per track, held back while ahead of its pace, drawn in while
        behind by at most ``PACE_HELD_LIMIT``. ``close`` (with ``ending``): (triad, root), bool (vocabulary,) each
        (``Tokenizer.tonic_notes``): the rows end on a chord of those notes, the lowest written pitched track on the
        root (``_Closing``). ``clash``: nats taken off a pitched note for each note of another pitched track
        sounding then that it would clash with (``_Playing.clash_bias``). ``loops``: (int (samples, steps, 12), per
        sample a list of tracks): parts that loop under the new music (``continuation.loops_sounding``): each row
        writes nothing on its silent tracks, and its clash rule hears the pitch classes its loops sound at each
        step. The same ``random_seed`` gives the same tokens.
        """
        primer = primed.tokens
        bias = self._bias(penalty, pitched, register)
        position, bar_token = self._bar_position(primer)
        forced_line = np.arange(self.vocabulary) == bar_token  # the meter's bar line, at a bar line
        bar_length = int(self.table["bar_steps"][bar_token])
        fits = self.shift_steps[None, :] <= np.arange(bar_length + 1)[:, None]  # by steps left
        closes = bool(ending and close)
        playing = _Playing(kept, samples, self.table, primer, chords, (under, added, smooth), pace, pitched,
                           held_only, hearing=bool(clash) or added is not None, watching=closes, loops=loops)
        free = self.follows & (np.asarray(allowed, bool) & ~self.is_bar & ~playing.kept_track_tokens)[None, :]
        closing = _Closing(close, self.table, playing, bars, bar_length) if closes else None

        logits, state = np.repeat(primed.logits, samples, axis=0), _repeat(primed.state, samples)
        distances = np.asarray(getattr(self.model, "lookback", ()))
        returns = {} if not config.phrase_returns or not len(distances) else \
            {"returns": np.where(distances >= PHRASE_BARS, config.phrase_returns, 0.0).astype(np.float32)}
        rng = np.random.default_rng(random_seed)
        output = np.full((samples, max_tokens), -1, np.int32)
        position, now = np.full(samples, position), np.zeros(samples, np.int64)
        bars_seen = np.ones(samples, np.int64)  # the bar the primer ends in
        finished = np.zeros(samples, bool)
        last = np.full(samples, primer[-1])
        for index in range(max_tokens):
            at_line = position >= bar_length
            finished |= at_line & (bars_seen >= bars)
            if finished.all():
                break
            left = np.minimum(np.maximum(bar_length - position, 0), playing.steps_to_next(now))
            mask = np.where(at_line[:, None], forced_line[None, :], free[last] & fits[left])
            mask &= playing.may(now)
            scores = logits + bias[playing.track + 1]
            if len(playing.paced):
                scores = scores + playing.pace_bias(now)
            if clash:
                scores = scores - clash * playing.clash_bias(now)
            if playing.carry:
                scores = scores + playing.carry_bias(now)
            if playing.adding:
                scores = scores - playing.voice_cost(now)
            if closing is not None:
                mask, scores = closing.hold(mask, scores, at_line, bars_seen, position, last, now)
            if playing.avoiding:  # no parallel fifths or octaves, where the row has another choice
                avoiding = mask & ~playing.parallel(now)
                mask = np.where(avoiding.any(axis=1, keepdims=True), avoiding, mask)
            if kept is not None:
                mask, scores, due = playing.turn(mask, scores, now, last, at_line, self.follows)
            token = _draw(np.where(mask, scores, -np.inf), rng, config)
            if kept is not None:
                playing.took(due, token)
            token[finished] = 0
            output[:, index] = np.where(finished, -1, token)
            opened = self.is_bar[token]
            position = np.where(opened, 0, position + self.shift_steps[token])
            now += self.shift_steps[token]
            bars_seen += opened
            last = token
            playing.played(token, now)
            if kept is None and not ending:
                logits, state = self.model.step(token, state, **returns)
            else:
                told = ahead.told(kept, playing.upcoming(), now, bars - bars_seen if ending else None,
                                  self.steps_per_quarter)
                logits, state = self.model.step(token, state, told, **returns)
        finished |= (position >= bar_length) & (bars_seen >= bars)  # a row whose last bar closed on the last token
        return [row[:_length(row)] for row in output], finished

    def log_likelihood(self, primed: Primed, rows: list[np.ndarray], scored_from: list[int]) -> np.ndarray:
        """Per row of tokens after the primer (``prime``), the sum of the log-probabilities the model gives its
        tokens from index ``scored_from[row]`` on, each after everything before it: how likely the model finds
        them there (e.g. the bars after a fill, given the fill). All rows step together, told nothing ahead."""
        lengths = np.array([len(row) for row in rows])
        batch = np.zeros((len(rows), max(lengths.max(initial=0), 1)), np.intp)
        for index, row in enumerate(rows):
            batch[index, :len(row)] = row
        logits, state = np.repeat(primed.logits, len(rows), axis=0), _repeat(primed.state, len(rows))
        total = np.zeros(len(rows))
        for index in range(batch.shape[1]):
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            counted = (index >= np.asarray(scored_from)) & (index < lengths)
            total += np.where(counted, log_p[np.arange(len(rows)), batch[:, index]], 0.0)
            if index + 1 < batch.shape[1]:
                logits, state = self.model.step(batch[:, index], state)
        return total

    def _bias(self, penalty: np.ndarray | None, pitched: np.ndarray | None, register=None) -> np.ndarray:
        """A row of logit bias per track (the first: no track yet): ``penalty`` on pitched tracks, none on drums,
        and for a track with a ``register`` (lowest, highest pitch), (semitones beyond it / ``REGISTER_SPREAD``)^2
        / 2 nats off each note outside it."""
        tracks = int(self.track_of.max()) + 1
        penalty = np.zeros(self.vocabulary, np.float32) if penalty is None else np.asarray(penalty, np.float32)
        pitched = np.ones(tracks, bool) if pitched is None else \
            np.concatenate([np.asarray(pitched, bool), np.zeros(tracks, bool)])[:tracks]
        bias = -penalty[None] * pitched[:, None]
        if register is not None:
            low, high = np.full((2, tracks), np.nan)
            low[:len(register)], high[:len(register)] = np.asarray(register, np.float64)[:tracks].T
            pitch = np.where(self.table["pitch_of"] >= 0, self.table["pitch_of"], np.nan)[None, :]
            away = np.nan_to_num(np.maximum(pitch - high[:, None], 0) + np.maximum(low[:, None] - pitch, 0))
            bias = bias - 0.5 * (away / REGISTER_SPREAD) ** 2
        return np.concatenate([np.zeros((1, self.vocabulary), np.float32), bias.astype(np.float32)])

    def _bar_position(self, primer: np.ndarray) -> tuple[int, int]:
        """(steps since the primer's last bar line, that bar line's token)."""
        lines = np.flatnonzero(self.is_bar[primer])
        if not len(lines):
            raise ValueError("the primer holds no bar line: the sampler cannot tell the meter")
        return int(self.shift_steps[primer[lines[-1]:]].sum()), int(primer[lines[-1]])


# A pace's weight: its lag (log onsets asked over onsets had) times PACE_GAIN, at most PACE_LIMIT nats (x400)
# either way. Chosen on pop and piano seeds (BENCHMARKS.md, "Density"): gain 1 and limit 3 left the lead of
# pop songs at 1.7-2x its pace, a lone piano line at 3x; with every part held back, gain 5 left the lead of
# pop songs within 1.5x of its pace in 19 of 24 continuations, gain 8 in 22. Counted from the primer (where
# the counts start near their steady level and one note moves the lag less), gain 8 left 43 of 56 pop and piano
# leads within 1.5x, gain 12 48 (all 24 pop leads).
PACE_GAIN = 12.0
PACE_LIMIT = 6.0
PACE_MEMORY = 8  # quarter notes: onsets fade from a pace's count with this time constant (two 4/4 bars)
# The most nats a part is behind or ahead of its pace as the new music starts: one that rested through the primer's
# last bars is drawn back in, not made to catch up on the whole rest; one that ended on a flourish waits only a little.
PACE_ENTRY = 2.0
# The most nats a lag draws in a part other than the lead (``continuation.paces``: held back while ahead, with the
# full ``PACE_LIMIT``): drawn in as hard as the lead, the parts left the lead less to play and it ran ahead; never
# drawn in, a part that fell silent stayed out. At 2 nats, on the ensemble seeds (BENCHMARKS.md, "Ensemble"): clash on
# madrigals 0.08 against the real 0.06 (never drawn in: 0.16); the parts sound in 96% of the new bars (95%). (The pop
# figures of that day were measured in the wrong ticks: "Pop measured in the wrong ticks".)
PACE_HELD_LIMIT = 2.0
# Nats that draw in a paced part resting longer than it ever did in the primer (``_rests``): a chorale voice that
# never rests a bar is not left silent for bars (BENCHMARKS.md, "Parts drawn back in").
REST_PULL = 6.0
# Nats per semitone an added part leaps beyond a whole step: 0.25 brings the mean leap of harmonized chorale parts
# to Bach's (2.2 against his 2.3 semitones; 3.0 without, 1.9 at 0.5; BENCHMARKS.md, "Harmonizing").
LEAP = 0.25
# Semitones the lowest added part (a bass under the melody) leaps for free: Bach's basses move by fourths, fifths and
# octaves. Harmonizing held-out chorale sopranos, the lower parts' mean leap then comes to his (2.29 semitones, 2.07
# with every part held to steps) and the bass's span widens from 10.4 to 11.2 semitones (his: 13.5).
BASS_LEAP = 12
# Nats off an added part's note on the pitch class the top part sounds: harmonizing 18 held-out chorale sopranos, the
# soprano then has a lower part on its pitch class 32% of the time (Bach: 34%; 46% with no cost).
DOUBLING = 0.75
# An added part may cross above the last note of the part it stays under by at most CROSS_REACH semitones, and pays
# CROSSING nats to cross at all. Bach's voices cross in 10 of the 18 held-out chorales (0.6% of the time two parts sound
# together); forbidding it, none of ours did, which alone told his harmonizations from ours 71% of the time. With 1
# nat, 56-58% of ours cross, for 0.2% of the time (BENCHMARKS.md, "Harmonizing").
CROSS_REACH = 2
CROSSING = 1.0
# Semitones: a part with a register (``continuation.registers``: an added voice's, a written part's own) pays
# (k / REGISTER_SPREAD)^2 / 2 nats for a note k semitones beyond it: 0.5 nats at 5 semitones, 2 at 10. Harmonizing
# held-out chorale sopranos, it brings the alto, tenor and bass down to Bach's mean pitches (BENCHMARKS.md,
# "Harmonizing"); continuing chorales, it keeps written voices in their ranges as often as Bach's ("Registers").
REGISTER_SPREAD = 5.0
# Nats added to a written part's note on a pitch class a kept part sounds then (``_Playing.carry_bias``): CARRY where
# the kept parts' notes in the primer were doubled (another part sounding their pitch class as they struck) at least
# CARRY_FULL of the time, nothing at CARRY_FROM or less, in proportion between. Pop parts double their melody (12
# multi-track songs: the lead on another part's pitch class 0.62 of the time, 0.61 in their seeds); rewritten under the
# kept lead with no such pull they did 0.45, with it 0.59. Chorale voices seldom double theirs (0.31; seeds 0.23-0.46):
# they get next to no pull (BENCHMARKS.md, "Writing the other parts under a kept lead").
CARRY, CARRY_FROM, CARRY_FULL = 4.5, 0.45, 0.65
CLOSE_PULL = 6.0  # nats: how hard the final downbeat draws each written part in, and holds time from moving on


class _Playing:
    """Where each row of a sample is in the kept notes (``ahead.KeptNotes``) it plays, and which track and
    velocity are in force in it. A kept note is played as its slots (Track, Velocity, Note, Duration),
    the Track and Velocity tokens only where they change, starting as soon as its time has come and the
    note grammar allows a Track token."""

    def __init__(self, kept: ahead.KeptNotes | None, rows: int, table: dict, primer: np.ndarray,
                 chords: np.ndarray | None = None, parts: tuple = (None, None, None),
                 pace: np.ndarray | None = None,
                 pitched: np.ndarray | None = None, held_only: np.ndarray | None = None, hearing: bool = False,
                 watching: bool = False, loops: tuple | None = None):
        self.kept, self.table = kept, table
        in_force = [table[name][primer][table[name][primer] >= 0] for name in ("track_of", "velocity_of")]
        self.track, self.velocity = (np.full(rows, values[-1] if len(values) else -1) for values in in_force)
        self.next = np.zeros(rows, np.int64)       # the first kept note not yet begun
        self.slot = np.zeros(rows, np.int64)       # the slot of a begun note to play next
        self.begun = np.zeros(rows, bool)
        tracks = int(table["track_of"].max()) + 1
        self.kept_tracks = np.zeros(tracks + 1, bool)  # indexed by track, the last entry for "none yet"
        self.kept_tracks[sorted(kept.tracks) if kept else []] = True
        self.kept_track_tokens = (table["track_of"] >= 0) & self.kept_tracks[table["track_of"]]
        self.chords = np.full(tracks + 1, 1 << 30)  # the most notes a track may start at one moment
        if chords is not None:
            self.chords[:len(chords)] = np.asarray(chords)[:tracks]
        self.onsets = np.zeros((rows, tracks + 1), np.int64)  # notes each track started at this moment
        self.latest = np.full(rows, -1)  # the last track that wrote at this moment
        under, added, smooth = parts  # ``Sampler.sample``'s
        self.under = np.full(tracks + 1, -1)  # per track, the track whose last note it stays under
        if under is not None:
            self.under[:len(under)] = np.asarray(under)[:tracks]
        self.added = np.zeros(tracks + 1, bool)  # per track, a part added under the others
        if added is not None:
            self.added[:len(added)] = np.asarray(added, bool)[:tracks]
        self.adding = bool(self.added.any())
        self.lowest_added = int(np.flatnonzero(self.added).max()) if self.adding else -1
        # Music written from its very start (a primer without notes): added parts wait for the kept parts' first
        # note, so a harmonization starts with its melody's pickup, not before it.
        silent_so_far = not (table["pitch_of"][primer] >= 0).any()
        self.entry = int(kept.times[0]) if self.adding and silent_so_far and kept is not None and len(kept) else 0
        self.smooth = self.added.copy()  # per track, a part that avoids parallel fifths and octaves
        if smooth is not None:
            self.smooth[:len(smooth)] |= np.asarray(smooth, bool)[:tracks]
        self.avoiding = bool(self.smooth.any())
        self.staying_under = bool((self.under >= 0).any())
        self.watching = watching  # keep each track's last pitch even without parts under parts (for the close)
        self.hearing = hearing  # keep what each track sounds, for ``clash_bias`` and ``voice_cost``
        self.pitched = np.zeros(tracks + 1, bool)  # per track and "none yet": not drums (default: every track)
        self.pitched[:tracks] = np.ones(tracks, bool) if pitched is None else \
            np.concatenate([np.asarray(pitched, bool), np.zeros(tracks, bool)])[:tracks]
        self.sounding = np.full((rows, tracks + 1), -1)  # each track's last note's pitch class (-1: none)
        self.sounding_until = np.zeros((rows, tracks + 1), np.int64)  # ... and when it ends
        self.ringing = np.zeros((rows, tracks + 1, 12), np.int64)  # ... and per pitch class (a chord's every note)
        self.silent = np.zeros((rows, tracks + 1), bool)  # per row, the tracks it leaves to their loops
        self.looping = None  # per row and step, the pitch classes the loops sound (``Sampler.sample``'s ``loops``)
        if loops is not None:
            self.looping = np.asarray(loops[0])
            for row, silent in enumerate(loops[1]):
                self.silent[row, silent] = True
        self.struck_pitch = np.full(rows, -1)  # the note whose Duration comes next
        self.keeping = kept is not None and len(kept) > 0
        doubled = _doubled(primer, table, self.kept_tracks, self.pitched) if self.keeping and hearing else math.nan
        self.carry = 0.0 if math.isnan(doubled) else \
            CARRY * min(max((doubled - CARRY_FROM) / (CARRY_FULL - CARRY_FROM), 0.0), 1.0)
        self.struck = np.zeros((rows, tracks + 1))  # moments each track began notes at, fading (PACE_MEMORY)
        self.last_pitch = np.full((rows, tracks + 1), 128)  # each track's last note (128: none yet)
        self.before_pitch = np.full((rows, tracks + 1), 128)  # the note before it
        self.last_start = np.full((rows, tracks + 1), -1)  # the time its last note started (-1: in the primer)
        for track, pitch in _last_pitches(primer, table).items():
            self.last_pitch[:, track] = pitch
        self.is_note_token = (table["pitch_of"] >= 0) | (table["velocity_of"] >= 0)
        self.is_track = table["track_of"] >= 0
        self.steps_per_quarter = int(table["steps_per_quarter"])
        self.pace = None  # per track and "none yet", onsets per step (nan: free)
        self.held = np.zeros(tracks + 1, bool)  # per track: held back, drawn in only up to PACE_HELD_LIMIT
        if pace is not None:
            self.pace = np.full(tracks + 1, np.nan)
            self.pace[:min(len(pace), tracks)] = np.asarray(pace, float)[:tracks] / self.steps_per_quarter
            if held_only is not None:
                self.held[:min(len(held_only), tracks)] = np.asarray(held_only, bool)[:tracks]
            # a part's pace clock starts at its first note in the primer: one that rested at its end starts behind
            memory = PACE_MEMORY * self.steps_per_quarter
            struck, self.playing_for = _faded_onsets(primer, table, tracks + 1, memory)
            asked = _asked(np.nan_to_num(self.pace), self.playing_for, memory)
            self.struck[:] = np.clip(struck, (1 + asked) * math.exp(-PACE_ENTRY / PACE_GAIN) - 1,
                                     (1 + asked) * math.exp(PACE_ENTRY / PACE_GAIN) - 1)
        # a paced part's longest rest in the primer, and when its last note ends (steps from where sampling starts)
        self.longest_rest, ends = (np.full(tracks + 1, np.inf), np.zeros(tracks + 1, np.int64))
        if pace is not None:
            self.longest_rest, ends = _rests(primer, table, tracks + 1)
        self.quiet_from = np.repeat(ends[None, :], rows, axis=0)
        # the paced tracks; per paced track its Track token(s); per track in force, its place among them (-1: none)
        self.paced = np.flatnonzero(~np.isnan(self.pace)) if pace is not None else np.zeros(0, np.int64)
        self.paced_tokens = (table["track_of"][None, :] == self.paced[:, None]).astype(float)
        self.in_paced = np.full(tracks + 1, -1)
        self.in_paced[self.paced] = np.arange(len(self.paced))
        # the tracks drawn in fully, and the onsets each one's pace asks for over each token's time shift (log1p)
        self.lag_top = np.where(self.held[self.paced], PACE_HELD_LIMIT, PACE_LIMIT)  # the most a lag draws each in
        self.drawn = np.flatnonzero(~self.held[self.paced])
        self.later = np.log1p(self.pace[self.paced[self.drawn], None] * table["shift_steps"][None, :]) \
            if pace is not None else np.zeros((0, len(table["shift_steps"])))

    def steps_to_next(self, now: np.ndarray) -> np.ndarray:
        """Steps each row may move before its next kept note (a large number without one)."""
        if self.kept is None or not len(self.kept):
            return np.full(len(now), 1 << 30)
        times = np.append(self.kept.times, 1 << 30)
        return np.maximum(times[np.minimum(self.next, len(self.kept))] - now, 0)

    def may(self, now: np.ndarray) -> np.ndarray:
        """Bool (rows, vocabulary): no note or velocity of the model's own while a kept track is in force, or
        one whose chord at this moment is full, or one the row leaves to its loop; no Track token of those, nor
        of a track before one already written at this moment (tracks come in their order within a moment, as in
        every training piece); for a track that stays under another, no note above that one's last (its
        parallels: ``parallel``); in music written from its very start, no note of an added part before the kept
        parts' first."""
        full = (self.onsets >= self.chords) | self.silent  # (rows, tracks + 1)
        closed = self.kept_tracks[self.track] | full[np.arange(len(self.track)), self.track]
        passed = self.table["track_of"][None, :] < self.latest[:, None]
        if self.entry:  # an added part waits for the kept parts' first note
            waiting = (now < self.entry)[:, None] & self.added[None, :]
            full, closed = full | waiting, closed | waiting[np.arange(len(self.track)), self.track]
        allowed = ~(closed[:, None] & self.is_note_token[None, :]) & \
            ~((full[:, self.table["track_of"]] | passed) & self.is_track)
        if self.staying_under:  # not over the part it stays under (an added part: not by more than CROSS_REACH)
            reach = np.where(self.added[self.track], CROSS_REACH, 0)
            allowed &= ~(self.table["pitch_of"][None, :] > (self._ceiling() + reach)[:, None])
        return allowed

    def _ceiling(self) -> np.ndarray:
        """Per row, the last pitch of the track that the track in force stays under (128: none)."""
        rows = np.arange(len(self.track))
        return np.where(self.under[self.track] >= 0, self.last_pitch[rows, self.under[self.track]], 128)

    def parallel(self, now: np.ndarray) -> np.ndarray:
        """Bool (rows, vocabulary): for a part that avoids them (``smooth``; every part added under the others),
        the notes that would move in parallel fifths or octaves with any pitched part that moved at this moment
        (the parts before it in the moment's track order, kept or written)."""
        rows = np.arange(len(self.track))
        mine = self.last_pitch[rows, self.track][:, None]  # (rows, 1) against every track's (rows, tracks + 1)
        upper, before = self.last_pitch, self.before_pitch
        interval = np.abs(before - mine) % 12
        moved = (self.last_start == now[:, None]) & (upper < 128) & (before < 128) & (upper != before) \
            & self.pitched[None, :] & (np.arange(upper.shape[1])[None, :] != self.track[:, None])
        watch = moved & (mine < 128) & ((interval == 0) | (interval == 7)) & self.smooth[self.track][:, None]
        if not watch.any():
            return np.zeros((len(rows), len(self.is_track)), bool)
        pitch = self.table["pitch_of"]
        forbidden = np.zeros((len(rows), len(pitch)), bool)
        for row, track in zip(*np.nonzero(watch)):
            same_way = (pitch - mine[row, 0]) * (upper[row, track] - before[row, track]) > 0
            forbidden[row] |= (pitch >= 0) & same_way & (np.abs(upper[row, track] - pitch) % 12 == interval[row, track])
        return forbidden

    def pace_bias(self, now: np.ndarray) -> np.ndarray:
        """Float (rows, vocabulary), added to the logits to hold each paced track (``pace``: onsets per step, nan:
        free) to its pace. Its lag at a time t is the log of the onsets its pace asks for by t over those it has,
        each plus one, times ``PACE_GAIN``, within +-``PACE_LIMIT`` (at most ``PACE_HELD_LIMIT`` for a ``held_only``
        track). The
        tokens that begin its note at a new moment (its Track token; its notes and velocities while it is in
        force) get its lag now: drawn on while it is behind, held back while ahead. While every track drawn in
        fully (not ``held_only``) is ahead, a time shift also gets the least it would take off any one's lead, so the rest comes as a
        longer shift (a lone line, which nothing but a note follows after a shift, is held to its pace that way);
        while one is behind, the model alone chooses how long to wait. A rest is still the model's to choose: it
        only weighs more."""
        rows = np.arange(len(now))
        lag = self._lag(now)  # (rows, paced tracks)
        begins = np.where(self.onsets[:, self.paced] > 0, 0.0, lag)
        bias = begins @ self.paced_tokens  # each paced track's Track token
        in_force = self.in_paced[self.track]
        bias += np.where(in_force >= 0, begins[rows, in_force], 0.0)[:, None] * self.is_note_token[None, :]
        if len(self.drawn):  # per shift, the least any part drawn in is ahead by it: a rest waits for one behind
            ahead = -np.minimum(lag[:, self.drawn], 0)
            bias += (ahead[:, :, None] * self.later[None, :, :]).min(axis=1)
        return bias

    def _lag(self, time: np.ndarray) -> np.ndarray:
        """Float (rows, paced tracks): how far each paced track is behind its pace (onsets per step) at ``time``
        (rows), in nats (``pace_bias``): onsets asked and had both fade with ``PACE_MEMORY``, so an early burst is
        not paid for with a long rest; both are counted from the part's first note in the primer."""
        memory = PACE_MEMORY * self.steps_per_quarter
        since = time[:, None] + self.playing_for[None, self.paced]  # steps since it first played (in the primer)
        asked = _asked(self.pace[self.paced][None, :], since, memory)
        lag = np.clip(PACE_GAIN * (np.log1p(asked) - np.log1p(self.struck[:, self.paced])), -PACE_LIMIT,
                      self.lag_top[None, :])
        overdue = time[:, None] - self.quiet_from[:, self.paced] > self.longest_rest[None, self.paced]
        return np.where(overdue, np.maximum(lag, REST_PULL), lag)  # resting longer than it ever did in the primer

    def voice_cost(self, now: np.ndarray) -> np.ndarray:
        """Float (rows, vocabulary): for a part added under the others (``added``: under a melody), ``LEAP``
        nats per semitone its note would leap beyond a whole step from its last note (inner parts move by step;
        the lowest added part, a bass, beyond ``BASS_LEAP``),
        ``DOUBLING`` nats for a note on the pitch class the top part (track 0) sounds at ``now``, and ``CROSSING``
        for one above the last note of the part it stays under (at most ``CROSS_REACH`` above: ``may``) (its
        register: ``Sampler._bias``)."""
        rows = np.arange(len(self.track))
        last = self.last_pitch[rows, self.track][:, None]
        pitch = self.table["pitch_of"][None, :]
        free = np.where(self.track == self.lowest_added, BASS_LEAP, 2)[:, None]
        leap = np.maximum(np.abs(pitch - last) - free, 0) * ((pitch >= 0) & (last < 128))
        top = np.where(self.sounding_until[:, 0] > now, self.sounding[:, 0], -1)[:, None]
        doubled = (pitch >= 0) & (pitch % 12 == top)
        crossing = pitch > self._ceiling()[:, None]
        return (LEAP * leap + DOUBLING * doubled + CROSSING * crossing) * self.added[self.track][:, None]

    def clash_bias(self, now: np.ndarray) -> np.ndarray:
        """Float (rows, vocabulary): per Note token, how many pitch classes the other pitched tracks sound at ``now``
        (each chord's every note; the loops of parts left silent) it would form a second, a seventh or a tritone
        with (``melody.ensemble.CLASHING``), while the track in force is pitched."""
        rows = np.arange(len(now))
        heard = (self.ringing > now[:, None, None]) & self.pitched[None, :, None]  # (rows, tracks + 1, 12)
        heard[rows, self.track] = False  # a track's own notes are its line and its chord, not a clash
        counts = heard.sum(axis=1)
        if self.looping is not None:  # and the loops of the parts left silent
            steps = self.looping.shape[1]
            counts = counts + np.where((now < steps)[:, None], self.looping[rows, np.minimum(now, steps - 1)], 0)
        clashing = counts @ _CLASHES  # (rows, 12): per pitch class, the sounding notes it clashes with
        pitch = self.table["pitch_of"]
        return np.where((pitch >= 0)[None, :] & self.pitched[self.track][:, None],
                        clashing[:, np.maximum(pitch, 0) % 12], 0.0)

    def carry_bias(self, now: np.ndarray) -> np.ndarray:
        """Float (rows, vocabulary): ``carry`` nats for a Note token on a pitch class a kept track sounds at ``now``,
        while the track in force is written (not kept, not added under a melody) and pitched."""
        heard = (self.ringing[:, self.kept_tracks] > now[:, None, None]).any(axis=1)  # (rows, 12)
        writing = self.pitched[self.track] & ~self.kept_tracks[self.track] & ~self.added[self.track]
        pitch = self.table["pitch_of"]
        return np.where((pitch >= 0)[None, :] & writing[:, None], self.carry * heard[:, np.maximum(pitch, 0) % 12], 0.0)

    def turn(self, mask: np.ndarray, scores: np.ndarray, now: np.ndarray, last: np.ndarray, at_line: np.ndarray,
             follows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whose turn it is, per row: (the tokens it may draw, their scores, the rows where a kept note is due).

        A row in the middle of a kept note plays its next slot. Where a kept note's time has come (and the
        grammar allows a Track token), the parts before it in the stream's order (tracks numbered lower, written
        first at each moment) may still write notes at this moment: the row draws one of those, or the kept
        note, which takes the model's odds of everything else it could do (``took`` begins it)."""
        if self.kept is None or not len(self.kept):
            return mask, scores, np.zeros(len(mask), bool)
        index = np.minimum(self.next, len(self.kept) - 1)
        slots = self.kept.slots[index]
        due = ~self.begun & (self.next < len(self.kept)) & ~at_line & (self.kept.times[index] == now) \
            & follows[last, slots[:, 0]]
        first = self._first_slot(slots)
        forced = np.where(self.begun, self.forced(), slots[np.arange(len(slots)), first])
        is_forced = forced[:, None] == np.arange(mask.shape[1])
        before = self.table["track_of"][slots[:, 0]]  # the due kept note's track: lower tracks write first
        track_of = self.table["track_of"]
        earlier = (track_of >= 0)[None, :] & (track_of[None, :] < before[:, None]) & ~self.kept_track_tokens[None, :]
        current = (self.track >= 0) & (self.track < before) & ~self.kept_tracks[self.track]
        earlier |= current[:, None] & self.is_note_token[None, :]
        earlier &= mask & due[:, None]
        rest = (mask & ~earlier) | is_forced
        share = np.logaddexp.reduce(np.where(rest, scores, -np.inf), axis=1)
        scores = np.where(due[:, None] & is_forced, share[:, None], scores)
        mask = np.where(self.begun[:, None], is_forced, np.where(due[:, None], earlier | is_forced, mask))
        self._pending_first = first
        return mask, scores, due

    def took(self, due: np.ndarray, token: np.ndarray) -> None:
        """After the draw: the due rows that drew their kept note begin it (from its first slot not in force)."""
        if self.kept is None or not len(self.kept):
            return
        index = np.minimum(self.next, len(self.kept) - 1)
        starts = due & (token == self.kept.slots[index, self._pending_first])
        self.begun |= starts
        self.slot = np.where(starts, self._pending_first, self.slot)

    def _first_slot(self, slots: np.ndarray) -> np.ndarray:
        """Per row, the first slot of its next kept note not already in force (its Track, its Velocity)."""
        same_track = self.table["track_of"][slots[:, 0]] == self.track
        same_velocity = self.table["velocity_of"][slots[:, 1]] == self.velocity
        return np.where(same_track, np.where(same_velocity, 2, 1), 0)

    def forced(self) -> np.ndarray:
        """The token each begun row plays next (meaningless for the others)."""
        if self.kept is None or not len(self.kept):
            return np.zeros(len(self.next), np.int64)
        return self.kept.slots[np.minimum(self.next, len(self.kept) - 1), np.minimum(self.slot, 3)]

    def played(self, token: np.ndarray, now: np.ndarray) -> None:
        """After each row's token: the track and velocity in force, and how far its kept note has been played."""
        for name, values in (("track_of", "track"), ("velocity_of", "velocity")):
            changed = self.table[name][token]
            setattr(self, values, np.where(changed >= 0, changed, getattr(self, values)))
        moved = (self.table["shift_steps"][token] > 0) | (self.table["bar_steps"][token] > 0)
        self.onsets[moved] = 0
        rows, striking = np.arange(len(token)), self.table["pitch_of"][token] >= 0
        self.onsets[rows, self.track] += striking
        if self.pace is not None:
            self.struck *= np.exp(-self.table["shift_steps"][token] / (PACE_MEMORY * self.steps_per_quarter))[:, None]
            self.struck[rows, self.track] += striking & (self.onsets[rows, self.track] == 1)
        self.latest = np.where(moved, -1, np.where(striking, self.track, self.latest))
        if self.staying_under or self.watching or self.avoiding:  # what the rules of parts and the close look at
            hit = np.flatnonzero(striking)
            self.before_pitch[hit, self.track[hit]] = self.last_pitch[hit, self.track[hit]]
            self.last_pitch[hit, self.track[hit]] = self.table["pitch_of"][token[hit]]
            self.last_start[hit, self.track[hit]] = now[hit]
        lasting = self.table["duration_steps"][token]
        if self.pace is not None:  # when each track last falls quiet (its rests: ``_lag``)
            held = np.flatnonzero(lasting > 0)
            self.quiet_from[held, self.track[held]] = np.maximum(self.quiet_from[held, self.track[held]],
                                                                 now[held] + lasting[held])
        if self.hearing:  # a note sounds from its Duration on
            ends = np.flatnonzero(lasting > 0)
            self.sounding[ends, self.track[ends]] = self.struck_pitch[ends] % 12
            self.sounding_until[ends, self.track[ends]] = now[ends] + lasting[ends]
            ringing = self.ringing[ends, self.track[ends], self.struck_pitch[ends] % 12]
            self.ringing[ends, self.track[ends], self.struck_pitch[ends] % 12] = np.maximum(ringing,
                                                                                        now[ends] + lasting[ends])
            self.struck_pitch = np.where(striking, self.table["pitch_of"][token], self.struck_pitch)
        if self.keeping:
            self.slot = np.where(self.begun, self.slot + 1, self.slot)
            # after its Track token, a kept note's Velocity only where it changes the velocity in force
            velocity = self.table["velocity_of"][self.kept.slots[np.minimum(self.next, len(self.kept) - 1), 1]]
            self.slot = np.where(self.begun & (self.slot == 1) & (velocity == self.velocity), 2, self.slot)
            done = self.begun & (self.slot == 4)
            self.next += done
            self.begun &= ~done

    def upcoming(self) -> np.ndarray:
        """Per row, the first kept note not yet sounding in its stream (its Note token not yet played)."""
        return self.next + (self.begun & (self.slot == 3))


class _Closing:
    """The close (``--ending``): every written pitched part arrives on the tonic chord at the last bar's downbeat.

    before the last bar     no note of the model's own is held across its downbeat
    at its downbeat         pitched notes only from the tonic triad, the lowest written pitched track's only on
                            the tonic; each written part's at or below every note struck there before it
                            (parts come top down: no crossing in the last chord); the next written pitched
                            part not yet there drawn in (its Track token +PULL, no later part's before it) and
                            time held (a time shift -PULL) while one is missing; the chord lasts the bar
    after it                nothing new of the model's own: the chord rings to the end
    """

    def __init__(self, close: tuple, table: dict, playing: "_Playing", bars: int, bar_length: int):
        triad, root = (np.asarray(notes, bool) for notes in close)
        self.written = playing.pitched & ~playing.kept_tracks  # per track and "none yet"
        lowest = np.flatnonzero(self.written)
        is_note = table["pitch_of"] >= 0
        self.chord = np.where(playing.pitched[:, None], ~is_note[None, :] | triad[None, :], True)  # (track + 1, vocab)
        if len(lowest):
            self.chord[lowest[-1]] &= ~is_note | root
        self.pitch_of = table["pitch_of"]
        self.own = playing.is_note_token | playing.is_track  # what starts a note of the model's own
        self.switching = ~(playing.is_track | (table["velocity_of"] >= 0))  # after these, a Track token may come
        self.is_shift, self.track_of = table["shift_steps"] > 0, table["track_of"]
        self.duration_steps, self.playing = table["duration_steps"], playing
        self.bars, self.bar_length = bars, bar_length

    def hold(self, mask: np.ndarray, scores: np.ndarray, at_line: np.ndarray, bars_seen: np.ndarray,
             position: np.ndarray, last: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask, scores) with the close's rules applied to each row (see the class)."""
        playing, inside = self.playing, ~at_line
        final = inside & (bars_seen >= self.bars)  # in the last bar
        downbeat = final & (position == 0)
        to_close = np.where(final, 0, (self.bars - bars_seen) * self.bar_length - position)
        too_long = (inside & ~final)[:, None] & (self.duration_steps[None, :] > np.maximum(to_close, 0)[:, None])
        short = downbeat[:, None] & ((self.duration_steps > 0) & (self.duration_steps < self.bar_length))[None, :]
        after = (final & (position > 0))[:, None] & self.own[None, :]
        mask = mask & ~too_long & ~short & ~after & np.where(downbeat[:, None], self.chord[playing.track], True)
        here = (playing.last_start[:, :-1] == now[:, None]) & (playing.onsets[:, :-1] > 0)  # struck at the downbeat
        floor = np.where(here, playing.last_pitch[:, :-1], 128).min(axis=1)
        under = downbeat & self.written[np.maximum(playing.track, 0)] & (playing.track >= 0)
        mask &= ~(under[:, None] & (self.pitch_of[None, :] > floor[:, None]))
        missing = self.written[None, :-1] & (playing.onsets[:, :-1] == 0) & \
            (np.arange(len(self.written) - 1)[None, :] > playing.latest[:, None])  # parts still to come here
        waiting = downbeat & missing.any(axis=1)
        first = np.where(waiting, missing.argmax(axis=1), -2)  # the next part to come in
        pull = downbeat[:, None] & (self.track_of[None, :] == first[:, None])
        # a note of the track in force, itself after the next part to come in, would shut that part out
        skipping = waiting & self.switching[last] & (first < playing.track)
        mask = mask & ~(skipping[:, None] & playing.is_note_token[None, :])
        mask &= ~(waiting[:, None] & (self.track_of[None, :] > first[:, None]))  # no part before its turn
        scores = scores + CLOSE_PULL * pull - CLOSE_PULL * (waiting[:, None] & self.is_shift)
        return mask, scores


# _CLASHES[a, b]: pitch classes a and b a second, a seventh or a tritone apart
_CLASHES = np.array([[float((b - a) % 12 in CLASHING) for b in range(12)] for a in range(12)])


def _asked(pace: np.ndarray, steps: np.ndarray, memory: float) -> np.ndarray:
    """The onsets a pace (per step) asks for over ``steps``, each fading by e^(-steps since / ``memory``)."""
    return pace * memory * -np.expm1(-steps / memory)


def _faded_onsets(primer: np.ndarray, table: dict, tracks: int, memory: float) -> tuple[np.ndarray, np.ndarray]:
    """Per track: the moments it began notes at in ``primer``, each faded by e^(-steps before the primer's end /
    ``memory``), summed; and the steps from its first to the primer's end (0 if it has none)."""
    struck, time = {}, 0
    for token, track, time in _walk(primer, table):
        if table["pitch_of"][token] >= 0 and track >= 0:
            struck[int(track), time] = True
    faded, first = np.zeros(tracks), np.full(tracks, time)
    for track, start in struck:
        faded[track] += math.exp(-(time - start) / memory)
        first[track] = min(first[track], start)
    return faded, time - first


def _rests(primer: np.ndarray, table: dict, tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per track: the longest time (steps) it sounds nothing in ``primer``, between its notes or from its last note
    to the primer's end (inf: no notes), and when its last note ends, in steps from the primer's end (<= 0)."""
    time, notes = 0, [[] for _ in range(tracks)]
    for token, track, time in _walk(primer, table):
        if table["duration_steps"][token] > 0 and 0 <= track < tracks:
            notes[track].append((time, time + int(table["duration_steps"][token])))
    longest, ends = np.full(tracks, np.inf), np.zeros(tracks, np.int64)
    for track, spans in enumerate(notes):
        if spans:
            starts, stops = np.array(spans).T
            sounded = np.maximum.accumulate(stops)
            gaps = np.append(starts[1:] - sounded[:-1], time - sounded[-1])
            longest[track], ends[track] = max(int(gaps.max()), 0), sounded[-1] - time
    return longest, ends


def _doubled(primer: np.ndarray, table: dict, kept_tracks: np.ndarray, pitched: np.ndarray) -> float:
    """Share of the notes of the ``kept_tracks`` (bool per track) in ``primer`` struck on a pitch class another pitched
    track sounds at that moment (nan: no such note); of its last 1,024 notes at most, which bounds the work (a primer
    of ``melody.continuation.MAX_PRIMER_TOKENS`` has fewer)."""
    notes, pitch = [], -1  # (start, end, pitch class, track)
    for token, track, time in _walk(primer, table):
        if table["pitch_of"][token] >= 0:
            pitch = int(table["pitch_of"][token])
        elif table["duration_steps"][token] > 0 and track >= 0 and pitch >= 0 and pitched[track]:
            notes.append((time, time + int(table["duration_steps"][token]), pitch % 12, int(track)))
    if not notes:
        return math.nan
    start, end, pitch_class, track = np.array(notes[-1024:]).T
    kept = kept_tracks[track]
    if not kept.any():
        return math.nan
    doubling = (track[None, :] != track[kept, None]) & (pitch_class[None, :] == pitch_class[kept, None]) & \
        (start[None, :] <= start[kept, None]) & (start[kept, None] < end[None, :])
    return float(doubling.any(axis=1).mean())


def _last_pitches(primer: np.ndarray, table: dict) -> dict[int, int]:
    """Each track's last note in ``primer`` (by the Track token in force before it)."""
    last = {}
    for token, track, _ in _walk(primer, table):
        if table["pitch_of"][token] >= 0 and track >= 0:
            last[int(track)] = int(table["pitch_of"][token])
    return last


def _walk(primer: np.ndarray, table: dict):
    """Each token of ``primer`` with the track in force (-1: none yet) and the time (steps) after its own shift."""
    track, time = -1, 0
    for token in primer:
        track = table["track_of"][token] if table["track_of"][token] >= 0 else track
        time += int(table["shift_steps"][token])
        yield token, track, time


def _repeat(state, samples: int):
    """The primed state (batch 1) once per sample."""
    if isinstance(state, (list, tuple)):
        return type(state)(_repeat(part, samples) for part in state)
    return np.repeat(state, samples, axis=0)


def _length(row: np.ndarray) -> int:
    """Tokens before the first end mark (-1)."""
    stops = np.flatnonzero(row < 0)
    return int(stops[0]) if len(stops) else len(row)


def _draw(logits: np.ndarray, rng: np.random.Generator, config: SamplingConfig) -> np.ndarray:
    """Temperature, then top-k, then top-p, then one draw per row from what is left (-inf: never)."""
    logits = logits / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[1]:
        kth = -np.partition(-logits, config.top_k - 1, axis=1)[:, config.top_k - 1:config.top_k]
        logits = np.where(logits < kth, -np.inf, logits)                                   # top-k
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    if config.top_p < 1.0:
        ordered = -np.sort(-weights, axis=1)                                               # descending
        before = (np.cumsum(ordered, axis=1) - ordered) / ordered.sum(axis=1, keepdims=True)  # mass above each
        threshold = np.where(before < config.top_p, ordered, np.inf).min(axis=1, keepdims=True)
        weights = np.where(weights < threshold, 0.0, weights)                              # top-p
    cumulative = np.cumsum(weights, axis=1, dtype=np.float32)
    point = (1.0 - rng.random(len(logits), dtype=np.float32)) * cumulative[:, -1]  # in (0, total]: never weight 0
    return (cumulative < point[:, None]).sum(axis=1)
