"""The LSTM cell, as the textbook has it, built to train fast on a CPU.

For each time step t, with input x_t, previous output h and memory cell c:

    z               = x_t W + b + h U                 (W, U, b: the four gates fused side by side)
    input_gate      = sigmoid(z_i)                    what of the candidate enters the memory cell
    forget_gate     = sigmoid(z_f)                    what the memory cell keeps of its past
    candidate       = tanh(z_g)                       new content proposed for the memory cell
    output_gate     = sigmoid(z_o)                    what of the memory cell leaves as output
    c               = forget_gate * c + input_gate * candidate
    h               = output_gate * tanh(c)

The memory cell c is updated by addition, gated rather than squashed through a
weight matrix at every step, so gradients flow back across many steps without
vanishing: that is what lets an LSTM learn the structure of a piece (phrases,
bars, a return of the theme). The forget-gate bias starts at 1 so the cell
remembers by default early in training.

Speed (Keras has no fused LSTM kernel on the CPU, its ``LSTM`` runs two matrix
products per step and lets autodiff unroll the backward pass):

* ``LSTMCell.project`` computes x_t W + b for every time step in ONE matrix
  product before the recurrence, so each step multiplies only h U;
* ``recurrence`` has a hand-written backward pass: per step it only carries
  the gradient back through h U^T; the gradient of U for all steps is then one
  large matrix product (h_{t-1}^T dz_t summed over t), not T small ones;
* each step's h U is two independent products (input+forget, candidate+output
  columns) that two CPU cores compute at once.

``LSTMCell`` follows the Keras cell contract (``state_size``, ``build``,
``call(inputs, states, training)`` returning ``(h, [h, c])``, ``get_config``) and holds
the weights. ``LSTM``, the layer the model trains, uses the cell's weights and input
projection but runs the steps itself in ``recurrence`` (for the backward pass above).
The equations are written once, in ``gates``, which both call; generation runs a NumPy
copy (``melody.numpy_lstm``), held to this one by the tests that compare their logits.
All of it uses ``keras.ops`` only.

Lookback: what the piece did k bars ago, for the phrase that comes back
-----------------------------------------------------------------------
The gates let the memory cell carry information across a phrase, but to play a
bar again note for note the network would have to hold every token of it in c.
Folk tunes come back mostly 4 and 8 bars later (a phrase answered, a strain
repeated; measured on 1,500 folk tunes of the shipped corpus: of all bars, 6.1% repeat
the bar 4 before, 3.3% the bar 8 before, 2.7% the bar 2 before, 1.1% the bar
before). So the model is shown, for each distance k of ``distances`` (bars):

    aligned_k(t)    the token at the same place k bars ago: the bar line of the bar
                    k before the current one, plus as many tokens as the current token
                    is past its own bar line (none if that bar is shorter, or not there)
    matched_k(t)    1 if token t equals aligned_k(t), else 0       an input to the first LSTM
    ahead_k(t)      aligned_k(t + 1): what came next at that place  (none: -1)

``Lookback`` computes both from the token ids (no weights). ``matched`` goes into the
first layer beside the embedding, so the gates can see whether the bar so far
repeats one k bars ago. ``Repeat`` turns the last layer's output h into a score s_k
per distance, "play again what came k bars ago", and mixes it into the next token's
distribution:

    p(y) proportional to  exp(logit_y) + sum over k with ahead_k = y of exp(s_k)

(Magenta's Lookback RNN has the same idea as two extra output classes, "repeat 1/2
bars ago"; a mixture keeps the output a distribution over real tokens, so the
likelihood stays comparable with the plain LSTM's.) Token places, not time, are
aligned, because a repeated bar is the same run of tokens. Attention over the last
40 outputs (Magenta's Attention RNN) would not reach 8 bars back (a folk bar is
about 12 tokens) and costs a product over the window at every sampled token; a
lookback costs K lookups.
"""

from __future__ import annotations

import keras
from keras import ops


def gates(z_input, z_forget, z_candidate, z_output, c):
    """The LSTM's gate equations, the only copy Keras runs (the cell's ``step`` and, in training,
    ``recurrence``): the four gate pre-activations and the memory cell c -> (h, new c, the gates and
    tanh(c), side by side, which the hand-written backward pass needs)."""
    input_gate = ops.sigmoid(z_input)          # what of the candidate enters the memory cell
    forget_gate = ops.sigmoid(z_forget)        # what the memory cell keeps of its past
    candidate = ops.tanh(z_candidate)          # new content proposed for the memory cell
    output_gate = ops.sigmoid(z_output)        # what of the memory cell leaves as output
    c = forget_gate * c + input_gate * candidate
    tanh_c = ops.tanh(c)
    h = output_gate * tanh_c
    return h, c, ops.concatenate([input_gate, forget_gate, candidate, output_gate, tanh_c], axis=-1)


@keras.saving.register_keras_serializable(package="melody")
class LSTMCell(keras.layers.Layer):
    """One LSTM step. Weights: ``kernel`` (input, 4 units), ``recurrent_kernel`` (units, 4 units),
    ``bias`` (4 units), each split in gate order input, forget, candidate, output."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"LSTMCell units must be a positive integer, received units={units!r}")
        self.units = units
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(shape=(input_dim, 4 * self.units), initializer="glorot_uniform",
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units), initializer="orthogonal",
                                                name="recurrent_kernel")
        self.bias = self.add_weight(shape=(4 * self.units,), initializer=self._bias_initializer, name="bias")

    def _bias_initializer(self, shape, dtype=None):
        """Zeros, except 1 for the forget gate: remember by default."""
        units = self.units
        return ops.concatenate([ops.zeros((units,), dtype), ops.ones((units,), dtype),
                                ops.zeros((2 * units,), dtype)])

    def project(self, inputs):
        """The input's contribution x W + b to the four gates, for any number of leading axes."""
        return ops.matmul(inputs, self.kernel) + self.bias

    def step(self, projected, h, c):
        """One step from the projected input: returns the new (h, c)."""
        z = projected + ops.matmul(h, self.recurrent_kernel)
        h, c, _ = gates(*ops.split(z, 4, axis=-1), c)
        return h, c

    def call(self, inputs, states, training=None):
        h, c = self.step(self.project(inputs), states[0], states[1])
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in range(2)]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="melody")
class LSTM(keras.layers.Layer):
    """An LSTM over whole sequences: (batch, time, features) -> (batch, time, units).

    ``call(inputs, initial_state=None, return_state=False)``; with ``return_state``
    it returns ``(outputs, h, c)``. The cell is ``self.cell``.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.cell = LSTMCell(units, dtype=self.dtype_policy, name="cell")
        self.units = units

    def build(self, input_shape):
        self.cell.build(input_shape)

    def call(self, inputs, initial_state=None, return_state=False, training=None):
        batch = ops.shape(inputs)[0]
        h, c = initial_state if initial_state is not None else self.cell.get_initial_state(batch)
        projected = ops.transpose(self.cell.project(inputs), (1, 0, 2))  # time-major: (time, batch, 4 units)
        # A plain tensor (a copy of the weight), so the custom gradient is taken w.r.t. an input, not a variable.
        recurrent_kernel = ops.copy(self.cell.recurrent_kernel)
        outputs, h, c = recurrence(projected, h, c, recurrent_kernel)
        outputs = ops.transpose(outputs, (1, 0, 2))
        return (outputs, h, c) if return_state else outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@ops.custom_gradient
def recurrence(projected, h0, c0, recurrent_kernel):
    """Run the LSTM over time-major projected inputs (time, batch, 4 units).

    Returns (outputs (time, batch, units), last h, last c). The backward pass is
    written out (see the module docstring) instead of left to autodiff.
    ``ops.scan`` stacks what each step returns; here every step returns its whole
    carry, so the carries hold what the backward pass needs.
    """
    units = ops.shape(h0)[-1]
    # Two independent halves of h U (gates input+forget, candidate+output): the two
    # cores multiply them at once, where one product of the whole runs at half speed.
    kernel_if, kernel_go = recurrent_kernel[:, :2 * units], recurrent_kernel[:, 2 * units:]

    def forward(carry, z_input):
        h, c, _ = carry
        z_if = z_input[:, :2 * units] + ops.matmul(h, kernel_if)
        z_go = z_input[:, 2 * units:] + ops.matmul(h, kernel_go)
        carry = gates(*ops.split(z_if, 2, axis=-1), *ops.split(z_go, 2, axis=-1), c)
        return carry, carry

    nothing = ops.zeros_like(ops.concatenate([projected[0], h0], axis=-1))  # (batch, 5 units)
    (h_last, c_last, _), (hs, cs, saved) = ops.scan(forward, (h0, c0, nothing), projected)
    h_before = ops.concatenate([h0[None], hs[:-1]], axis=0)  # h_{t-1} for every t
    c_before = ops.concatenate([c0[None], cs[:-1]], axis=0)

    kernel_if_t, kernel_go_t = ops.transpose(kernel_if), ops.transpose(kernel_go)

    def backward(carry, step):
        dh_next, dc_next, _ = carry
        dh_out, saved_step, c_prev = step
        input_gate, forget_gate, candidate, output_gate, tanh_c = ops.split(saved_step, 5, axis=-1)
        dh = dh_out + dh_next
        dc = dc_next + dh * output_gate * (1.0 - tanh_c * tanh_c)
        dz_if = ops.concatenate([dc * candidate * input_gate * (1.0 - input_gate),
                                 dc * c_prev * forget_gate * (1.0 - forget_gate)], axis=-1)
        dz_go = ops.concatenate([dc * input_gate * (1.0 - candidate * candidate),
                                 dh * tanh_c * output_gate * (1.0 - output_gate)], axis=-1)
        dh_prev = ops.matmul(dz_if, kernel_if_t) + ops.matmul(dz_go, kernel_go_t)
        carry = (dh_prev, dc * forget_gate, ops.concatenate([dz_if, dz_go], axis=-1))
        return carry, carry

    def grad(*upstream, **_):
        d_outputs, d_h_last, d_c_last = (ops.zeros_like(value) if gradient is None else gradient
                                         for gradient, value in zip(upstream, (hs, h_last, c_last)))
        no_dz = ops.zeros_like(projected[0])
        (dh0, dc0, _), (_, _, dz) = ops.scan(backward, (d_h_last, d_c_last, no_dz), (d_outputs, saved, c_before),
                                             reverse=True)
        d_recurrent = ops.matmul(ops.transpose(ops.reshape(h_before, (-1, units))),
                                 ops.reshape(dz, (-1, 4 * units)))
        return dz, dh0, dc0, d_recurrent

    return (hs, h_last, c_last), grad


@keras.saving.register_keras_serializable(package="melody")
class Lookback(keras.layers.Layer):
    """The piece ``distances`` bars ago (see the module): tokens (batch, time) int ->
    ``(matched, ahead)``, float (batch, time, K) and int32 (batch, time, K), -1 where nothing is there.
    ``bar_tokens``: the ids of the tokens that open a bar (the tokenizer's bar lines)."""

    def __init__(self, bar_tokens, distances, **kwargs):
        super().__init__(**kwargs)
        self.bar_tokens = [int(token) for token in bar_tokens]
        self.distances = [int(distance) for distance in distances]
        if not self.bar_tokens or not self.distances or min(self.distances) < 1:
            raise ValueError(f"Lookback needs bar tokens and distances >= 1, received {self.distances!r}")

    def call(self, tokens):
        tokens = ops.cast(tokens, "int32")
        length = ops.shape(tokens)[1]
        places = ops.arange(length, dtype="int32")[None, :]
        is_bar = ops.any(tokens[..., None] == ops.convert_to_tensor(self.bar_tokens, "int32"), axis=-1)
        bar = ops.cumsum(ops.cast(is_bar, "int32"), axis=1) - 1          # which bar line each token follows
        lines = ops.sort(ops.where(is_bar, places, length), axis=1)     # bar line j's place (length: none)

        def line(j):
            return ops.take_along_axis(lines, ops.maximum(j, 0), axis=1)

        def token_at(place):
            return ops.take_along_axis(tokens, ops.clip(place, 0, length - 1), axis=1)

        matched, ahead = [], []
        for distance in self.distances:
            there = bar - distance >= 0
            aligned = line(bar - distance) + places - line(bar)          # same place, ``distance`` bars ago
            end = line(bar - distance + 1)                               # the bar line closing that bar
            matched.append(there & (aligned <= end) & (token_at(aligned) == tokens))
            ahead.append(ops.where(there & (aligned + 1 <= end), token_at(aligned + 1), -1))
        return ops.cast(ops.stack(matched, axis=-1), self.compute_dtype), ops.stack(ahead, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = (*input_shape, len(self.distances))
        return shape, shape

    def get_config(self):
        return {**super().get_config(), "bar_tokens": self.bar_tokens, "distances": self.distances}


@keras.saving.register_keras_serializable(package="melody")
class Repeat(keras.layers.Layer):
    """The logits mixed with "play again what came k bars ago" (see the module):
    ``(h, logits, ahead)`` -> logits, where h (batch, time, units), logits (batch, time, vocabulary) and
    ahead (batch, time, K) from ``Lookback``. Weights: ``kernel`` (units, K), ``bias`` (K)."""

    def __init__(self, distances: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(distances, int) or distances < 1:
            raise ValueError(f"Repeat distances must be a positive integer, received distances={distances!r}")
        self.distances = distances

    def build(self, h_shape, logits_shape=None, ahead_shape=None):
        self.kernel = self.add_weight(shape=(h_shape[-1], self.distances), initializer="glorot_uniform",
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.distances,), initializer="zeros", name="bias")

    def call(self, h, logits, ahead):
        scores = ops.matmul(ops.cast(h, self.compute_dtype), self.kernel) + self.bias   # s_k: (batch, time, K)
        logits = ops.cast(logits, self.compute_dtype)
        there, token = ahead >= 0, ops.maximum(ahead, 0)
        # Several distances may point at one token: its copy mass is the sum of their exp(s_k), added once.
        same = (ahead[..., :, None] == ahead[..., None, :]) & there[..., None, :]      # (batch, time, K, K)
        mass = ops.logsumexp(ops.where(same, scores[..., None, :], -1e9), axis=-1)    # log of that sum, per k
        order = ops.arange(self.distances)
        counted = ops.any(same & (order[None, :] < order[:, None]), axis=-1)          # an earlier k points there
        at_token = ops.take_along_axis(logits, token, axis=-1)                          # logit_y at y = ahead_k
        raise_by = ops.where(there & ~counted, ops.logaddexp(at_token, mass) - at_token, 0.0)
        # Only K logits per position change: a (K, vocabulary) one-hot spreads the raises, no exp over the vocabulary.
        spread = ops.one_hot(token, ops.shape(logits)[-1], dtype=self.compute_dtype)
        return logits + ops.einsum("btk,btkv->btv", raise_by, spread)

    def compute_output_shape(self, h_shape, logits_shape=None, ahead_shape=None):
        return logits_shape

    def get_config(self):
        return {**super().get_config(), "distances": self.distances}
