"""The trained network run in NumPy, one token at a time: what ``melody generate`` samples from.

Training needs TensorFlow (``melody.cell``, ``melody.model``); running a trained
network forward does not. Importing TensorFlow alone takes 3-6 s, far longer than
sampling eight bars, so generation reads the saved weights (``bundle.load_weights``)
and steps the same network here, in plain NumPy:

    embedding    x_t = E[token]
    each layer   z = x_t W + b + h U, then the LSTM cell's gates exactly as ``melody.cell`` defines them:
                 input_gate = sigmoid(z_i), forget_gate = sigmoid(z_f), candidate = tanh(z_g),
                 output_gate = sigmoid(z_o), c = forget_gate * c + input_gate * candidate,
                 h = output_gate * tanh(c); the next layer's x_t is this h
    logits       h W_out + b_out of the last layer

``melody.cell`` is the definition; this is a second implementation of the same
step, and ``tests/test_generate.py`` pins the two together (the same logits as the
Keras model, to 1e-5, on real sequences). Dropout is not applied: it is off at
inference.

For speed the first layer's x_t W + b is looked up per token (precomputed for the
whole vocabulary), and a deeper layer's two products are one: [x_t, h] [W; U].

``NumpyLSTM`` has the prime/step protocol ``melody.sampler`` samples from.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written through tanh so that no value overflows."""
    return 0.5 * np.tanh(0.5 * z) + 0.5


def lstm_step(z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cell's gates from z = x W + b + h U (gate order input, forget, candidate, output): new (h, c)."""
    units = c.shape[-1]
    input_gate = sigmoid(z[..., :units])
    forget_gate = sigmoid(z[..., units:2 * units])
    candidate = np.tanh(z[..., 2 * units:3 * units])
    output_gate = sigmoid(z[..., 3 * units:])
    c = forget_gate * c + input_gate * candidate
    h = output_gate * np.tanh(c)
    return h, c


class NumpyLSTM:
    """The network of ``melody.model.build_model`` from its named weights (``bundle.load_weights``)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        embedding = weights["embedding"]
        layers = sum(name.endswith("/recurrent_kernel") for name in weights)
        self.units = weights["lstm_0/recurrent_kernel"].shape[0]
        # First layer: x_t W + b for every token of the vocabulary, looked up per step.
        self.first_projection = embedding @ weights["lstm_0/kernel"] + weights["lstm_0/bias"]
        self.first_recurrent = weights["lstm_0/recurrent_kernel"]
        # Deeper layers: one product of [x_t, h] with [W; U].
        self.stacked = [(np.concatenate([weights[f"lstm_{k}/kernel"], weights[f"lstm_{k}/recurrent_kernel"]]),
                         weights[f"lstm_{k}/bias"]) for k in range(1, layers)]
        self.logits_kernel, self.logits_bias = weights["logits/kernel"], weights["logits/bias"]

    def prime(self, tokens: np.ndarray) -> tuple[np.ndarray, list]:
        """tokens (time,) -> (logits after the last token (1, vocabulary), state: [(h, c)] per layer).
        Each layer's input products for all steps are one matrix product before its recurrence."""
        tokens = np.asarray(tokens, dtype=np.intp)
        if tokens.ndim != 1 or not len(tokens):
            raise ValueError("prime needs a non-empty sequence of tokens")
        projected, recurrent, state = self.first_projection[tokens], self.first_recurrent, []
        # [W; U] split back into views: a deeper layer's W is its first ``units`` rows.
        deeper = [(stacked[:self.units], stacked[self.units:], bias) for stacked, bias in self.stacked]
        for kernel, next_recurrent, bias in [*deeper, (None, None, None)]:
            h = c = np.zeros((1, self.units), np.float32)
            outputs = np.empty((len(tokens), self.units), np.float32)
            for t in range(len(tokens)):
                h, c = lstm_step(projected[t:t + 1] + h @ recurrent, c)
                outputs[t] = h[0]
            state.append((h, c))
            if kernel is not None:  # the next layer's inputs, all steps in one product
                projected, recurrent = outputs @ kernel + bias, next_recurrent
        return h @ self.logits_kernel + self.logits_bias, state

    def step(self, tokens: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """One token per row (batch,) through the network, carrying each layer's (h, c): (logits, new state)."""
        (h, c), *deeper = state
        h, c = lstm_step(self.first_projection[tokens] + h @ self.first_recurrent, c)
        new_state = [(h, c)]
        for (stacked, bias), (h_before, c_before) in zip(self.stacked, deeper):
            h, c = lstm_step(np.concatenate([h, h_before], axis=1) @ stacked + bias, c_before)
            new_state.append((h, c))
        return h @ self.logits_kernel + self.logits_bias, new_state
