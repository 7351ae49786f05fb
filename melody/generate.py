"""Generation: continue a seed (or start from nothing) by sampling the model one token at a time.

The sampling loop, in ``Sampler.sample``:

    1. the primer (the seed's last bars as tokens) runs through the network once;
       its final LSTM states [h, c] and logits are kept;
    2. then, per new token, for all samples at once (one batch):
         logits / temperature -> keep the top-k -> keep the top-p nucleus
         -> draw a token (stateless: seeded by (random seed, step))
         -> embed it -> one LSTM step per layer, carrying [h, c] -> new logits
       until every sample has produced End or its number of bars, or the token cap.

The whole loop is one compiled TensorFlow graph (``tf.function``; with XLA for a
single sample, where fusing each step's many small operations measured faster, see
BENCHMARKS.md): no Python per token and never a re-run of the network over a
sliding window. The first layer's input projection is precomputed for every token.

``generate`` wraps it for people: it reads the seed, primes, samples, decodes
and writes MIDI files that keep the seed's tempo, time signature, key and
instruments.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.bundle import Bundle, load_bundle
from melody.errors import MelodyError
from melody.files import atomic_write, check_writable
from melody.midi_io import midi_bytes, read_midi
from melody.score import Instrument, Note, Score, melody_line
from melody.tokenizer import BAR, BEGIN, END, PAD, Tokenizer

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
MAX_PRIMER_TOKENS = 1024
TOKENS_PER_BAR_CAP = 256


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn: ``temperature`` (> 0; lower is more conservative), then ``top_k``
    (None: no limit), then ``top_p`` (the smallest set of likeliest tokens holding this much probability)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0

    def __post_init__(self):
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top-k must be at least 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")


class Sampler:
    """Compiled, stateful, batched sampling from a model built by ``melody.model.build_model``."""

    def __init__(self, model, jit_compile: bool | None = None):
        """``jit_compile``: XLA for the loop; None chooses by batch (XLA for one sample, where it
        measured 1.5x faster; plain graphs for batches, where XLA measured slower)."""
        import tensorflow as tf

        from melody.cell import LSTM

        self.embedding = model.get_layer("embedding")
        self.recurrent = [layer for layer in model.layers if isinstance(layer, LSTM)]
        self.logits = model.get_layer("logits")
        # The first layer's input projection of every token, computed once: a step looks it up.
        first = self.recurrent[0].cell
        self.first_projection = first.project(self.embedding.embeddings)  # (vocabulary, 4 units)
        self.jit_compile = jit_compile
        self._prime = tf.function(self._prime_graph, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        self._loops = {jit: tf.function(self._loop_graph, jit_compile=jit, reduce_retracing=True)
                       for jit in (False, True)}

    # --------------------------------------------------------------------- graphs

    def _prime_graph(self, primer):
        """Run the primer (batch, time) once: the logits after it and every layer's [h, c]."""
        x = self.embedding(primer)
        states = []
        for layer in self.recurrent:
            x, h, c = layer(x, return_state=True)
            states.append((h, c))
        return self.logits(x[:, -1]), states

    def step(self, token, states):
        """One token (batch,) through the network, carrying each layer's [h, c]: (logits, states)."""
        import tensorflow as tf

        x, new_states = None, []
        for index, (layer, (h, c)) in enumerate(zip(self.recurrent, states)):
            projected = tf.gather(self.first_projection, token) if index == 0 else layer.cell.project(x)
            h, c = layer.cell.step(projected, h, c)
            new_states.append((h, c))
            x = h
        return self.logits(x), new_states

    def _loop_graph(self, logits, states, max_tokens: int, bars, seed, temperature, top_k, top_p):
        import tensorflow as tf

        batch = tf.shape(logits)[0]
        output = tf.TensorArray(tf.int32, size=max_tokens)
        bars_seen = tf.zeros((batch,), tf.int32)
        finished = tf.zeros((batch,), tf.bool)

        # Pad, Begin and End never come next: a piece ends when it has its bars (or at the token cap).
        banned = tf.scatter_nd([[PAD], [BEGIN], [END]], [-np.inf] * 3, tf.shape(logits)[-1:])

        def body(index, logits, states, bars_seen, finished, output):
            token = _draw(logits + banned, tf.stack([seed, index]), temperature, top_k, top_p)
            token = tf.where(finished, PAD, token)
            bars_seen += tf.cast(token == BAR, tf.int32)
            finished = finished | (bars_seen > bars)
            output = output.write(index, token)
            logits, states = self.step(token, states)
            return index + 1, logits, states, bars_seen, finished, output

        def going(index, logits, states, bars_seen, finished, output):
            return (index < max_tokens) & ~tf.reduce_all(finished)

        count, *_, output = tf.while_loop(going, body, (0, logits, states, bars_seen, finished, output),
                                          maximum_iterations=max_tokens)
        return tf.transpose(output.stack()), count  # rows after `count` are unwritten zeros (Pad)

    # --------------------------------------------------------------------- use

    def sample(self, primer: np.ndarray, max_tokens: int, bars: int, random_seed: int,
               config: SamplingConfig = SamplingConfig()) -> np.ndarray:
        """New tokens (samples, n) after ``primer`` (samples, time); a finished row is padded with Pad.

        A row finishes with the Bar token that would open bar ``bars + 1``, or at ``max_tokens``.
        """
        import tensorflow as tf

        logits, states = self._prime(tf.constant(primer, tf.int32))
        jit = self.jit_compile if self.jit_compile is not None else len(primer) == 1
        tokens, count = self._loops[jit](logits, states, int(max_tokens), tf.constant(bars),
                            tf.constant(random_seed % 2**31, tf.int32), tf.constant(config.temperature, tf.float32),
                            tf.constant(config.top_k or 0, tf.int32), tf.constant(config.top_p, tf.float32))
        return tokens.numpy()[:, :int(count)]


def _draw(logits, seed, temperature, top_k, top_p):
    """Temperature, then top-k, then top-p, then one stateless draw per row."""
    import tensorflow as tf

    logits = logits / temperature
    filtering = (top_k > 0) | (top_p < 1.0)
    logits = tf.cond(filtering, lambda: _top_k_top_p(logits, top_k, top_p), lambda: logits)
    return tf.cast(tf.random.stateless_categorical(logits, 1, seed)[:, 0], tf.int32)


def _top_k_top_p(logits, top_k, top_p):
    """Logits outside the ``top_k`` likeliest (0: no limit) and outside the ``top_p`` nucleus set to -inf."""
    import tensorflow as tf

    vocabulary = tf.shape(logits)[-1]
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary), vocabulary)
    ordered = tf.math.top_k(logits, k=vocabulary).values                     # descending
    kth = tf.gather(ordered, k - 1, axis=-1)[:, None]
    logits = tf.where(logits < kth, -np.inf, logits)                          # top-k
    ordered = tf.where(tf.range(vocabulary)[None] < k, ordered, -np.inf)
    before = tf.math.cumsum(tf.nn.softmax(ordered), axis=-1, exclusive=True)  # mass above each token
    kept = tf.where(before < top_p, ordered, np.inf)
    threshold = tf.reduce_min(kept, axis=-1, keepdims=True)                   # smallest kept logit
    return tf.where(logits < threshold, -np.inf, logits)                      # top-p


# ----------------------------------------------------------------------------- for people

@dataclass
class Generation:
    """What ``generate`` made: the scores, the files written (if any) and a summary."""

    scores: list[Score]
    files: list[Path]
    summary: dict
    continuation_starts: list[int | None]  # tick of each score's first new note (None: no seed before it)

    def pretty_midi(self) -> list:
        """The scores as ``pretty_midi.PrettyMIDI`` objects."""
        from melody.midi_io import to_pretty_midi

        return [to_pretty_midi(score) for score in self.scores]


def output_paths(out: str | os.PathLike | None, seed: str | os.PathLike | None, num_samples: int) -> list[Path]:
    """``out`` (default: '<seed>-continued.mid' or 'melody.mid'); with several samples out-1.mid, out-2.mid ..."""
    out = Path(out) if out else Path(f"{Path(seed).stem}-continued.mid" if seed else "melody.mid")
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{number}{out.suffix or '.mid'}") for number in range(1, num_samples + 1)]


def generate(model: str | os.PathLike | Bundle | None = None, seed: str | os.PathLike | None = None,
             out: str | os.PathLike | None = None, bars: int = 8, sampling: SamplingConfig = SamplingConfig(),
             num_samples: int = 1, random_seed: int | None = None, primer_bars: int | None = None,
             continuation_only: bool = False, force: bool = False, write: bool = True) -> Generation:
    """Continue ``seed`` (a MIDI file; None starts from scratch) with ``num_samples`` samples of ``bars`` bars.

    Writes the files unless ``write`` is False and returns them with their scores and a
    summary (``files``, ``bars``, ``notes``, ``seconds``, ``tokens``, ``tokens_per_second``, ``random_seed``).
    Existing files are never replaced unless ``force``; nothing is written when any would be.
    """
    for name, value in (("bars", bars), ("num_samples", num_samples)):
        if not isinstance(value, int) or value < 1:
            raise MelodyError(f"{name.replace('_', '-')} must be at least 1, got {value}")
    if primer_bars is not None and primer_bars < 1:
        raise MelodyError(f"primer-bars must be at least 1, got {primer_bars}")
    paths = output_paths(out, seed, num_samples) if write else []
    for path in paths:
        check_writable(path, force)
    seed_score = read_midi(seed) if seed else None
    bundle = model if isinstance(model, Bundle) else load_bundle(model or DEFAULT_MODEL)
    tokenizer = bundle.tokenizer
    primer, primer_start = _primer(seed_score, tokenizer, bundle.melody_only, primer_bars)
    random_seed = secrets.randbelow(2**31) if random_seed is None else random_seed
    sampler, batch = _sampler(bundle), np.tile(primer, (num_samples, 1))
    max_tokens = min(TOKENS_PER_BAR_CAP * bars, 8192)
    sampler.sample(batch, max_tokens, 0, 0, sampling)  # compile (stops at the first bar line): tokens/s below
    started = time.perf_counter()                      # measures sampling alone
    generated = sampler.sample(batch, max_tokens, bars, random_seed, sampling)
    seconds = time.perf_counter() - started
    primer_notes = tokenizer.decode(primer)
    primer_end = max((n.start for n in primer_notes.notes), default=0)
    scores, notes = [], 0
    for row in generated:
        new = row[:_length(row)]
        continuation = _difference(tokenizer.decode(np.concatenate([primer, new])), primer_notes)
        if bundle.melody_only and seed_score is not None:
            continuation = _on_lead(continuation, melody_line(seed_score).instruments[0])
        score = _arrange(seed_score, continuation, primer_start, primer_end, tokenizer, continuation_only, bars)
        notes += len(score.notes) - (0 if seed_score is None or continuation_only else len(seed_score.notes))
        scores.append(score)
    tokens = int(sum(_length(row) for row in generated))
    for path, score in zip(paths, scores):
        atomic_write(path, midi_bytes(score), force=force)
    summary = {"files": [str(path) for path in paths], "samples": num_samples, "bars": bars, "notes": notes,
               "seconds": round(max(score.duration_seconds for score in scores), 2), "tokens": tokens,
               "tokens_per_second": round(tokens / max(seconds, 1e-9), 1), "random_seed": random_seed,
               "model": str(bundle.path), "seed": str(seed) if seed else None}
    starts = [None if seed_score is None or continuation_only else _first_new_tick(score, seed_score)
              for score in scores]
    return Generation(scores, paths, summary, starts)


def _first_new_tick(score: Score, seed: Score) -> int | None:
    old = {(note.start, note.pitch) for note in seed.notes}
    return min((note.start for note in score.notes if (note.start, note.pitch) not in old), default=None)


_SAMPLERS: dict[int, tuple[object, Sampler]] = {}


def _sampler(bundle: Bundle) -> Sampler:
    """One compiled sampler per model object, so repeated calls do not trace again
    (the model is held with it, so its id cannot be reused by another)."""
    key = id(bundle.model)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = (bundle.model, Sampler(bundle.model))
    return _SAMPLERS[key][1]


def _length(row: np.ndarray) -> int:
    """Tokens up to (not including) the first End or Pad."""
    stops = np.flatnonzero((row == END) | (row == PAD))
    return int(stops[0]) if len(stops) else len(row)


def _primer(seed: Score | None, tokenizer: Tokenizer, melody_only: bool, primer_bars: int | None):
    """(primer tokens without End, the grid step in the quantized seed where the primer starts)."""
    if seed is None:
        return np.array([BEGIN], dtype=np.int32), 0
    source = melody_line(seed) if melody_only else seed
    if not source.instruments:
        raise MelodyError("the seed has no pitched notes to take a melody from")
    quantized = tokenizer.quantize(source)
    bar_lines = quantized.bar_lines(until=quantized.end_tick)
    count = min(primer_bars or len(bar_lines), len(bar_lines))
    while True:
        start = bar_lines[-count] if count else 0
        tokens = tokenizer.encode(_from(quantized, start))[:-1].astype(np.int32)
        if len(tokens) <= MAX_PRIMER_TOKENS or count <= 1:
            return tokens[-MAX_PRIMER_TOKENS:] if count <= 1 else tokens, start
        count -= 1


def _from(score: Score, start: int) -> Score:
    """The part of ``score`` from ``start`` on, moved to begin at 0 (with the time signature then in force)."""
    signatures = [s for s in score.time_signatures if s.tick <= start][-1:] or []
    later = [s for s in score.time_signatures if s.tick > start]
    return score.replace(
        instruments=[dataclasses.replace(i, notes=[dataclasses.replace(n, start=n.start - start)
                                                   for n in i.notes if n.start >= start]) for i in score.instruments],
        time_signatures=[dataclasses.replace(s, tick=max(0, s.tick - start)) for s in signatures + later],
        tempos=[], key_signatures=[])


def _difference(full: Score, primer: Score) -> list[Instrument]:
    """The instruments of ``full`` holding only the notes that ``primer`` does not have."""
    old = {(i.is_drum, i.program): {(n.start, n.pitch) for n in i.notes} for i in primer.instruments}
    result = []
    for instrument in full.instruments:
        known = old.get((instrument.is_drum, instrument.program), set())
        notes = [n for n in instrument.notes if (n.start, n.pitch) not in known]
        if notes:
            result.append(Instrument(instrument.program, instrument.is_drum, instrument.name, notes))
    return result


def _on_lead(parts: list[Instrument], lead: Instrument) -> list[Instrument]:
    """A melody model's continuation played by the seed's lead instrument, whatever program it sampled."""
    notes = sorted(note for part in parts if not part.is_drum for note in part.notes)
    return [Instrument(lead.program, False, lead.name, notes)] if notes else []


def _arrange(seed: Score | None, continuation: list[Instrument], primer_start: int, primer_end: int,
             tokenizer: Tokenizer, continuation_only: bool, bars: int) -> Score:
    """The output score: the seed followed by ``bars`` bars of continuation (cut at that bar line),
    in the seed's ticks, tempo, metre and instruments."""
    steps = tokenizer.config.steps_per_quarter
    timing = seed if seed is not None else Score(steps)
    ticks = timing.ticks_per_quarter

    def at(step: int) -> int:
        return round((step + primer_start) * ticks / steps)

    limit = _bar_limit(timing, at(primer_end), bars)
    moved = [Instrument(i.program, i.is_drum, i.name, [
        Note(at(n.start), n.pitch, max(1, min(at(n.end), limit) - at(n.start)), n.velocity)
        for n in i.notes if at(n.start) < limit]) for i in continuation]
    moved = [part for part in moved if part.notes]
    if seed is None:
        return Score(steps, moved)
    if continuation_only:
        first = min((n.start for i in moved for n in i.notes), default=0)
        bar = max([b for b in seed.bar_lines(until=first + 1) if b <= first], default=0)
        return _shifted(seed, moved, bar)
    instruments = list(seed.instruments)
    moved = _after_seed(moved, seed)
    for part in moved:
        same = [k for k, i in enumerate(instruments)
                if (i.is_drum, 0 if i.is_drum else i.program) == (part.is_drum, part.program)]
        match = next((k for k in same if instruments[k].name == part.name), same[0] if same else None)
        if match is None:
            instruments.append(part)
        else:
            instruments[match] = Instrument(instruments[match].program, instruments[match].is_drum,
                                            instruments[match].name, instruments[match].notes + tuple(part.notes))
    return seed.replace(instruments=instruments)


def _after_seed(parts: list[Instrument], seed: Score) -> list[Instrument]:
    """``parts`` moved on by whole bars, if need be, so that they start once the seed has ended.

    The model continues after the primer's last onset; but the seed may sound on after that (a
    melody model's lead line falls silent while the band plays an outro, or a final chord is held
    longer than a duration token can say). New music follows the seed, it does not play over it.
    """
    notes = [note for part in parts for note in part.notes]
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
    return [dataclasses.replace(part, notes=tuple(
        dataclasses.replace(n, start=lines[bar(n.start) + shift] + n.start - lines[bar(n.start)]) for n in part.notes))
        for part in parts]


def _bar_limit(timing: Score, position: int, bars: int) -> int:
    """The bar line ``bars`` bars on from ``position`` (the rest of a bar begun counts as a bar more)."""
    longest = max([s.bar_ticks(timing.ticks_per_quarter) for s in timing.time_signatures] or
                  [4 * timing.ticks_per_quarter])
    lines = timing.bar_lines(until=position + (bars + 2) * longest)
    current = max(index for index, line in enumerate(lines) if line <= position)
    return lines[current + bars + (1 if lines[current] < position else 0)]


def _shifted(seed: Score, parts: list[Instrument], bar: int) -> Score:
    """Only ``parts``, moved back by ``bar`` ticks, with the seed's tempo, metre and key then in force."""
    def from_bar(events):
        before = [e for e in events if e.tick <= bar][-1:]
        return [dataclasses.replace(e, tick=max(0, e.tick - bar)) for e in before + [e for e in events if e.tick > bar]]

    names = {(i.is_drum, i.program): i.name for i in seed.instruments}
    return seed.replace(
        instruments=[Instrument(p.program, p.is_drum, names.get((p.is_drum, p.program), p.name),
                                [dataclasses.replace(n, start=n.start - bar) for n in p.notes]) for p in parts],
        tempos=from_bar(seed.tempos), time_signatures=from_bar(seed.time_signatures),
        key_signatures=from_bar(seed.key_signatures))
