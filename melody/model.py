"""The network: Embedding -> stacked LSTM layers (dropout between) -> Dense logits over the vocabulary.

With ``lookback`` distances (bars), the structured model of ``melody.cell``: the first
layer also sees whether each token repeats the one at its place k bars ago, and the
logits are mixed with "play again what came k bars ago" (``Lookback``, ``Repeat``).

The vocabulary size always comes from the tokenizer; ``ModelConfig`` holds only
the sizes a user chooses. Keras is imported inside ``build_model`` so that the
config can be read without loading TensorFlow.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np


MAX_UNITS = 4096  # a 2 x 4096 network holds 1 GB of float32 weights; beyond it is a typo, not a model
MAX_LAYERS = 16
MAX_LOOKBACK = 64  # bars


@dataclass(frozen=True)
class ModelConfig:
    """Layer sizes: ``units`` per LSTM layer, ``layers`` stacked, ``embedding`` width, ``dropout`` between;
    ``lookback``: the distances in bars the structured model looks back (empty: the plain LSTM)."""

    units: int = 256
    layers: int = 2
    embedding: int = 128
    dropout: float = 0.2
    lookback: tuple[int, ...] = (1, 2, 4, 8)

    def __post_init__(self):
        for name, top in (("units", MAX_UNITS), ("layers", MAX_LAYERS), ("embedding", MAX_UNITS)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if value > top:
                raise ValueError(f"{name} must be at most {top}, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        lookback = tuple(self.lookback) if isinstance(self.lookback, (list, tuple)) else None
        if lookback is None or not all(isinstance(d, int) and 1 <= d <= MAX_LOOKBACK for d in lookback) \
                or len(set(lookback)) != len(lookback) or len(lookback) > 8:
            raise ValueError(f"lookback must be at most 8 different bar distances in 1..{MAX_LOOKBACK}, "
                             f"got {self.lookback!r}")
        object.__setattr__(self, "lookback", lookback)


def build_model(config: ModelConfig, vocabulary_size: int, recurrent_layer=None, bar_tokens=()):
    """The model for ``vocabulary_size`` tokens: int tokens (batch, time) -> float32 logits (batch, time, vocab).

    ``bar_tokens``: the ids of the bar lines (``Tokenizer.bar_tokens``), needed with ``lookback``.
    ``recurrent_layer(units)`` builds each recurrent layer; benchmarks pass
    ``keras.layers.LSTM`` (with ``return_sequences``) or ``SimpleRNN`` to compare like with like.
    """
    keras = load_keras()

    from melody.cell import LSTM, Lookback, Repeat

    recurrent_layer = recurrent_layer or LSTM
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, config.embedding, name="embedding")(tokens)
    if config.lookback:
        matched, ahead = Lookback(bar_tokens, config.lookback, name="lookback")(tokens)
        x = keras.layers.Concatenate(name="with_lookback")([x, matched])
    for index in range(config.layers):
        if index > 0 and config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
        x = recurrent_layer(config.units, name=f"lstm_{index}")(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name=f"dropout_{config.layers}")(x)
    logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")(x)
    if config.lookback:
        logits = Repeat(len(config.lookback), dtype="float32", name="repeat")(x, logits, ahead)
    return keras.Model(tokens, logits, name="melody")


def network_weights(model) -> dict:
    """A network from ``build_model`` as the named float32 arrays ``bundle.load_weights`` reads from a
    model folder (what ``melody.numpy_lstm.NumpyLSTM`` runs on)."""
    from melody.cell import LSTM

    weights = {"embedding": model.get_layer("embedding").embeddings,
               "logits/kernel": model.get_layer("logits").kernel, "logits/bias": model.get_layer("logits").bias}
    if any(layer.name == "repeat" for layer in model.layers):
        weights.update({"repeat/kernel": model.get_layer("repeat").kernel,
                        "repeat/bias": model.get_layer("repeat").bias})
    for k, layer in enumerate(layer for layer in model.layers if isinstance(layer, LSTM)):
        weights.update({f"lstm_{k}/kernel": layer.cell.kernel, f"lstm_{k}/bias": layer.cell.bias,
                        f"lstm_{k}/recurrent_kernel": layer.cell.recurrent_kernel})
    return {name: np.asarray(value.numpy(), dtype=np.float32) for name, value in weights.items()}


def parameter_count(model) -> int:
    return int(sum(weight.numpy().size for weight in model.weights))


def load_keras():
    """Import Keras (and TensorFlow), keeping TensorFlow's start-up chatter (CUDA probes, absl
    notices written straight to file descriptor 2) off the user's terminal."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    import keras

    return keras
