"""The sampling loop: new tokens from any sequence model that can be primed and stepped.

A sequence model for sampling implements two TensorFlow-traceable methods:

    prime(tokens)        tokens: int32 (batch, time)  ->  (logits (batch, vocabulary), state)
    step(token, state)   token: int32 (batch,)         ->  (logits (batch, vocabulary), state)

``state`` is whatever the model carries from one token to the next (a nested
structure of tensors of fixed shapes: the LSTM's [h, c] per layer, for
``melody.model.LSTMStepper``). The sampler never looks inside it, so another
kind of model plugs in without touching this module.

The loop, in ``Sampler.sample``:

    1. the primer runs through the model once (``prime``);
    2. then, per new token, for all samples at once (one batch):
         logits, masked to what may come next (below)
         -> / temperature -> keep the top-k -> keep the top-p nucleus
         -> draw a token (stateless: seeded by (random seed, step))
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

so bar lines fall exactly where the meter puts them and time never crosses one
unmarked: ``bars`` asked are ``bars`` written. The bar the primer ends in counts as
the first (a primer made by ``continuation.make_primer`` ends with a bar line).

The whole loop is one compiled TensorFlow graph (``tf.function``; with XLA for a
single sample, where fusing each step's many small operations measured faster, see
BENCHMARKS.md): no Python per token and never a re-run of the network over a
sliding window. What a token means is the tokenizer's business: the sampler gets
tables over the vocabulary (``Tokenizer.token_table``), not token ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
    """Compiled, stateful, batched sampling from a model with ``prime`` and ``step`` (see the module)."""

    def __init__(self, model, table: dict, jit_compile: bool | None = None):
        """``table``: ``Tokenizer.token_table()``. ``jit_compile``: XLA for the loop; None chooses by batch
        (XLA for one sample, where it measured 1.5x faster; plain graphs for batches, where XLA measured slower)."""
        import tensorflow as tf

        self.model = model
        self.table = {name: tf.constant(values) for name, values in table.items()}
        self.vocabulary = int(len(table["bar_steps"]))
        self.jit_compile = jit_compile
        self._prime = tf.function(model.prime, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        self._loops = {jit: tf.function(self._loop_graph, jit_compile=jit, reduce_retracing=True)
                       for jit in (False, True)}

    def _loop_graph(self, logits, state, allowed, penalty, pitched, position, bar_token, track, last_token,
                    max_tokens: int, bars, seed, temperature, top_k, top_p):
        import tensorflow as tf

        table = self.table
        is_bar, shift_steps = table["bar_steps"] > 0, table["shift_steps"]
        is_note, is_duration, track_of = table["is_note"], table["is_duration"], table["track_of"]
        is_velocity = table["is_velocity"]
        # What may follow each token (the note grammar), as a (vocabulary, vocabulary) table.
        follows = tf.where(is_note[:, None], is_duration[None, :],
                           tf.where((track_of >= 0)[:, None], (is_note | is_velocity)[None, :],
                                    tf.where(is_velocity[:, None], is_note[None, :], ~is_duration[None, :])))
        free = follows & (allowed & ~is_bar)[None, :]  # what may follow each token inside a bar
        # A bias row per track (the first: no track yet): the penalty on pitched tracks, nothing on drums.
        bias = tf.concat([tf.zeros((1, self.vocabulary)), -penalty[None, :] * tf.cast(pitched, tf.float32)[:, None]], 0)
        batch = tf.shape(logits)[0]
        output = tf.TensorArray(tf.int32, size=max_tokens)
        bars_seen = tf.ones((batch,), tf.int32)  # the bar the primer ends in
        finished = tf.zeros((batch,), tf.bool)
        forced = tf.one_hot(bar_token, self.vocabulary) > 0  # the meter's bar line, at a bar line
        bar_length = tf.gather(table["bar_steps"], bar_token)

        def body(index, logits, state, position, bars_seen, last, track, finished, output):
            at_line = position >= bar_length
            finished = finished | (at_line & (bars_seen >= bars))
            fits = shift_steps[None, :] <= (bar_length - position)[:, None]
            mask = tf.where(at_line[:, None], forced, tf.gather(free, last) & fits)
            logits = logits + tf.gather(bias, track + 1)
            token = _draw(tf.where(mask, logits, -np.inf), tf.stack([seed, index]), temperature, top_k, top_p)
            token = tf.where(finished, 0, token)
            output = output.write(index, tf.where(finished, -1, token))
            opened = tf.gather(is_bar, token)
            position = tf.where(opened, 0, position + tf.gather(shift_steps, token))
            bars_seen += tf.cast(opened, tf.int32)
            last = token
            switched = tf.gather(track_of, token)
            track = tf.where(switched >= 0, switched, track)
            logits, state = self.model.step(token, state)
            return index + 1, logits, state, position, bars_seen, last, track, finished, output

        def going(index, logits, state, position, bars_seen, last, track, finished, output):
            return (index < max_tokens) & ~tf.reduce_all(finished)

        count, *_, finished, output = tf.while_loop(
            going, body, (0, logits, state, position, bars_seen, tf.fill([batch], last_token), tf.fill([batch], track),
                          finished, output),
            maximum_iterations=max_tokens)
        return tf.transpose(output.stack()), count, finished

    def sample(self, primer: np.ndarray, allowed: np.ndarray, max_tokens: int, bars: int, random_seed: int,
               config: SamplingConfig = SamplingConfig(), penalty: np.ndarray | None = None,
               pitched: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """New tokens after ``primer`` (samples, time): ``bars`` bars in all, counting the bar the primer
        ends in, each new bar in the meter of that one. Returns one array per sample, and a bool per
        sample: whether it completed its bars (False: it reached ``max_tokens`` first and ends there).

        ``allowed``: bool (vocabulary,), the tokens a row may draw. ``penalty``: float (vocabulary,),
        subtracted from the logits (e.g. notes out of key) while the current track is one of ``pitched``
        (bool per track; drums are not held to a key).
        """
        import tensorflow as tf

        primer = np.asarray(primer, dtype=np.int32)
        rows = len(primer)
        tracks = int(self.table["track_of"].numpy().max()) + 1
        penalty = np.zeros(self.vocabulary, np.float32) if penalty is None else np.asarray(penalty, np.float32)
        pitched = np.ones(tracks, bool) if pitched is None else \
            np.concatenate([np.asarray(pitched, bool), np.zeros(tracks, bool)])[:tracks]
        position, bar_token = self._bar_position(primer[0])
        switches = self.table["track_of"].numpy()[primer[0]]
        track = int(switches[switches >= 0][-1]) if (switches >= 0).any() else -1  # the track playing at the end
        logits, state = self._prime(tf.constant(primer))
        jit = self.jit_compile if self.jit_compile is not None else rows == 1
        tokens, count, finished = self._loops[jit](
            logits, state, tf.constant(np.asarray(allowed, dtype=bool)), tf.constant(penalty),
            tf.constant(pitched), tf.fill([rows], position), tf.fill([rows], bar_token),
            tf.constant(track, tf.int32), tf.constant(int(primer[0, -1]), tf.int32),
            int(max_tokens), tf.constant(bars), tf.constant(random_seed % 2**31, tf.int32),
            tf.constant(config.temperature, tf.float32), tf.constant(config.top_k or 0, tf.int32),
            tf.constant(config.top_p, tf.float32))
        tokens = tokens.numpy()[:, :int(count)]
        return [row[:_length(row)] for row in tokens], finished.numpy()

    def _bar_position(self, primer: np.ndarray) -> tuple[int, int]:
        """(steps since the primer's last bar line, that bar line's token)."""
        bar_steps, shift_steps = self.table["bar_steps"].numpy(), self.table["shift_steps"].numpy()
        lines = np.flatnonzero(bar_steps[primer] > 0)
        if not len(lines):
            raise ValueError("the primer holds no bar line: the sampler cannot tell the meter")
        return int(shift_steps[primer[lines[-1]:]].sum()), int(primer[lines[-1]])


def _length(row: np.ndarray) -> int:
    """Tokens before the first end mark (-1)."""
    stops = np.flatnonzero(row < 0)
    return int(stops[0]) if len(stops) else len(row)


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
