"""The LSTM cell is an LSTM: same outputs as Keras's own for the same weights, right gradients, Keras contract."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from melody.cell import LSTM, LSTMCell

BATCH, TIME, FEATURES, UNITS = 3, 9, 5, 4


@pytest.fixture
def sequence():
    return np.random.default_rng(0).normal(size=(BATCH, TIME, FEATURES)).astype("float32")


def test_one_step_equals_keras_lstm_cell(sequence):
    ours, theirs = LSTMCell(UNITS), keras.layers.LSTMCell(UNITS)
    ours.build((BATCH, FEATURES))
    theirs.build((BATCH, FEATURES))
    ours.set_weights([w + 0.1 for w in theirs.get_weights()])
    theirs.set_weights(ours.get_weights())
    states = [np.full((BATCH, UNITS), 0.3, "float32"), np.full((BATCH, UNITS), -0.2, "float32")]
    h, (h_state, c) = ours(sequence[:, 0], states)
    h_ref, (_, c_ref) = theirs(sequence[:, 0], states)
    np.testing.assert_allclose(h, h_ref, atol=1e-6)
    np.testing.assert_allclose(c, c_ref, atol=1e-6)
    np.testing.assert_array_equal(h, h_state)


def test_sequence_layer_equals_keras_lstm(sequence):
    theirs = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    expected = theirs(sequence)
    ours = LSTM(UNITS)
    ours(sequence)
    ours.cell.set_weights(theirs.get_weights())
    for got, want in zip(ours(sequence, return_state=True), expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_hand_written_backward_pass_equals_autodiff(sequence):
    layer = LSTM(UNITS)
    layer(sequence)
    reference = keras.layers.RNN(layer.cell, return_sequences=True)  # autodiff through the same cell
    x = tf.constant(sequence)
    initial = [tf.constant(np.full((BATCH, UNITS), v, "float32")) for v in (0.1, -0.4)]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, *initial])
        ours = tf.reduce_sum(tf.sin(layer(x, initial_state=initial)) * tf.range(UNITS, dtype="float32"))
        theirs = tf.reduce_sum(tf.sin(reference(x, initial_state=initial)) * tf.range(UNITS, dtype="float32"))
    targets = [x, *initial, *layer.cell.trainable_variables]
    for got, want in zip(tape.gradient(ours, targets), tape.gradient(theirs, targets)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_forget_gate_bias_starts_at_one():
    cell = LSTMCell(UNITS)
    cell.build((1, FEATURES))
    bias = np.asarray(cell.bias).reshape(4, UNITS)  # input, forget, candidate, output
    np.testing.assert_array_equal(bias, [[0] * UNITS, [1] * UNITS, [0] * UNITS, [0] * UNITS])


def test_config_round_trip_and_save_without_custom_objects(tmp_path, sequence):
    inputs = keras.Input((None, FEATURES))
    model = keras.Model(inputs, LSTM(UNITS)(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(sequence), model(sequence), atol=1e-6)
    assert LSTMCell.from_config(LSTMCell(7).get_config()).units == 7


def test_units_are_validated():
    with pytest.raises(ValueError, match="units must be a positive integer, received units=0"):
        LSTMCell(0)
