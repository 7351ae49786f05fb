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

from melody.ahead import WIDTH as AHEAD_WIDTH
from melody.errors import SettingError
from melody.settings import setting


MAX_UNITS = 4096  # a 2 x 4096 network holds 1 GB of float32 weights; beyond it is a typo, not a model
MAX_LAYERS = 16
MAX_LOOKBACK = 64  # bars


def parse_bar_distances(text: str) -> tuple[int, ...]:
    """'1,2,4,8' -> (1, 2, 4, 8); 'none' -> () (the plain LSTM)."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SettingError(f"expected bar distances such as 1,2,4,8 or 'none', got {text!r}") from None


@dataclass(frozen=True)
class ModelConfig:
    """Layer sizes: ``units`` per LSTM layer, ``layers`` stacked, ``embedding`` width, ``dropout`` between;
    ``lookback``: the distances in bars the structured model looks back (empty: the plain LSTM); ``ahead``:
    the first layer also reads ``melody.ahead``'s features of each token."""

    units: int = setting(256, "LSTM units per layer.")
    layers: int = setting(2, "Stacked LSTM layers.")
    embedding: int = setting(128, "Token embedding width.")
    dropout: float = setting(0.2, "Dropout between layers.")
    lookback: tuple[int, ...] = setting((1, 2, 4, 8), "Bar distances the model looks back to bring phrases back "
                                        "(comma-separated), or 'none' for the plain LSTM.",
                                        parse=parse_bar_distances, metavar="BARS")
    ahead: bool = setting(True, "Tell the network what kept parts play next and where the music is to end "
                          "(melody.ahead), so it can write around parts and close on a cadence.")

    def __post_init__(self):
        for name, top in (("units", MAX_UNITS), ("layers", MAX_LAYERS), ("embedding", MAX_UNITS)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingError(f"{name} must be a positive integer, got {value!r}")
            if value > top:
                raise SettingError(f"{name} must be at most {top}, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SettingError(f"dropout must be in [0, 1), got {self.dropout!r}")
        lookback = tuple(self.lookback) if isinstance(self.lookback, (list, tuple)) else None
        if lookback is None or not all(isinstance(d, int) and 1 <= d <= MAX_LOOKBACK for d in lookback) \
                or len(set(lookback)) != len(lookback) or len(lookback) > 8:
            raise SettingError(f"lookback must be at most 8 different bar distances in 1..{MAX_LOOKBACK}, "
                             f"got {self.lookback!r}")
        object.__setattr__(self, "lookback", lookback)
        if not isinstance(self.ahead, bool):
            raise SettingError(f"ahead must be true or false, got {self.ahead!r}")


@dataclass(frozen=True)
class Weight:
    """One weight array: ``name`` as melody calls it (``<layer>/<array>``, or the layer's name for its only
    array), ``shape``, ``vocabulary_axis``: the axis with one entry per token (None: no such axis), and for a
    kernel reading several inputs side by side, ``row_blocks``: (input, rows) in order."""

    name: str
    shape: tuple[int, ...]
    vocabulary_axis: int | None = None
    row_blocks: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Layer:
    """One layer: its ``name``, its Keras class (``kind``), the settings its Keras config holds (``sizes``, the
    keyword arguments it is built with) and its weights in the order Keras keeps them."""

    name: str
    kind: str
    sizes: dict
    weights: tuple[Weight, ...] = ()


# Where Keras keeps a layer's arrays inside model.keras's model.weights.h5: a group named after its class
# (lstm, lstm_1, ... in model order), the LSTM's under its cell.
_STORED = {"Embedding": ("embedding", ""), "LSTM": ("lstm", "cell/"), "Dense": ("dense", ""),
           "Repeat": ("repeat", "")}


class Network:
    """The one description of the network for ``config`` and a vocabulary of ``vocabulary`` tokens: its
    layers in model order, each with its Keras settings and its weights' names and shapes.

        embedding                Embedding  (vocabulary, embedding)
        lookback, with_lookback  Lookback, Concatenate (with lookback: the embedding gains K columns)
        with_ahead               Concatenate (with ahead: then ahead.WIDTH columns, the second input's)
        lstm_k                   LSTM       kernel (inputs, 4 units), recurrent_kernel (units, 4 units),
                                            bias (4 units,); gate order input, forget, candidate, output
        dropout_k                Dropout    before each LSTM layer but the first, and after the last
        logits                   Dense      kernel (units, vocabulary), bias (vocabulary,)
        repeat                   Repeat     kernel (units, K), bias (K,) (with lookback)

    ``build_model`` builds it in Keras; ``bundle`` checks a model folder against it and reads its weights
    without TensorFlow; ``numpy_lstm`` steps it in NumPy; ``transfer_weights`` carries weights between two.
    """

    def __init__(self, config: ModelConfig, vocabulary: int):
        self.config, self.vocabulary = config, vocabulary
        self.layers = tuple(self._layers())

    def _layers(self):
        config, units, distances = self.config, self.config.units, len(self.config.lookback)
        yield Layer("embedding", "Embedding", {"input_dim": self.vocabulary, "output_dim": config.embedding},
                    (Weight("embedding", (self.vocabulary, config.embedding), vocabulary_axis=0),))
        blocks = [("embedding", config.embedding)]
        if distances:
            yield Layer("lookback", "Lookback", {"distances": list(config.lookback)})
            yield Layer("with_lookback", "Concatenate", {})
            blocks.append(("lookback", distances))
        if config.ahead:
            yield Layer("with_ahead", "Concatenate", {})
            blocks.append(("ahead", AHEAD_WIDTH))
        for k in range(config.layers):
            if k > 0 and config.dropout > 0:
                yield Layer(f"dropout_{k}", "Dropout", {"rate": config.dropout})
            inputs = sum(rows for _, rows in blocks)
            yield Layer(f"lstm_{k}", "LSTM", {"units": units},
                        (Weight(f"lstm_{k}/kernel", (inputs, 4 * units), row_blocks=tuple(blocks) if k == 0 else ()),
                         Weight(f"lstm_{k}/recurrent_kernel", (units, 4 * units)),
                         Weight(f"lstm_{k}/bias", (4 * units,))))
            blocks = [(f"lstm_{k}", units)]
        if config.dropout > 0:
            yield Layer(f"dropout_{config.layers}", "Dropout", {"rate": config.dropout})
        yield Layer("logits", "Dense", {"units": self.vocabulary},
                    (Weight("logits/kernel", (units, self.vocabulary), vocabulary_axis=1),
                     Weight("logits/bias", (self.vocabulary,), vocabulary_axis=0)))
        if distances:
            yield Layer("repeat", "Repeat", {"distances": distances},
                        (Weight("repeat/kernel", (units, distances)), Weight("repeat/bias", (distances,))))

    def recurrent(self) -> list[Layer]:
        """The LSTM layers, first to last."""
        return [layer for layer in self.layers if layer.kind == "LSTM"]

    def weights(self) -> list[Weight]:
        return [weight for layer in self.layers for weight in layer.weights]

    def float32_bytes(self) -> int:
        return sum(4 * int(np.prod(weight.shape)) for weight in self.weights())

    def stored(self) -> dict[str, str]:
        """Each weight's place inside model.weights.h5 (under ``layers/``), by name."""
        places, seen = {}, {}
        for layer in self.layers:
            if layer.weights:
                group, inside = _STORED[layer.kind]
                count = seen[group] = seen.get(group, -1) + 1
                prefix = f"{group}_{count}" if count else group
                places.update({weight.name: f"{prefix}/{inside}vars/{index}"
                               for index, weight in enumerate(layer.weights)})
        return places


def build_model(config: ModelConfig, vocabulary_size: int, recurrent_layer=None, bar_tokens=()):
    """The ``Network`` for ``vocabulary_size`` tokens as a Keras model: int tokens (batch, time) -> float32
    logits (batch, time, vocab); with ``ahead`` its inputs are (tokens, float32 features (batch, time,
    ahead.WIDTH)) (``plain_inputs`` makes them for tokens alone).

    ``bar_tokens``: the ids of the bar lines (``Tokenizer.bar_tokens``), needed with ``lookback``.
    ``recurrent_layer(units, name=...)`` builds each recurrent layer; benchmarks pass
    ``keras.layers.LSTM`` (with ``return_sequences``) or ``SimpleRNN`` to compare like with like.
    """
    keras = load_keras()

    from melody.cell import LSTM, Lookback, Repeat

    recurrent_layer = recurrent_layer or LSTM
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    told = keras.Input(shape=(None, AHEAD_WIDTH), dtype="float32", name="ahead") if config.ahead else None
    x = matched = repeat_at = h = None
    for layer in Network(config, vocabulary_size).layers:
        if layer.kind == "Embedding":
            x = keras.layers.Embedding(**layer.sizes, name=layer.name)(tokens)
        elif layer.kind == "Lookback":
            matched, repeat_at = Lookback(bar_tokens, **layer.sizes, name=layer.name)(tokens)
        elif layer.kind == "Concatenate":
            beside = matched if layer.name == "with_lookback" else told
            x = keras.layers.Concatenate(name=layer.name)([x, beside])
        elif layer.kind == "Dropout":
            x = keras.layers.Dropout(**layer.sizes, name=layer.name)(x)
        elif layer.kind == "LSTM":
            x = recurrent_layer(**layer.sizes, name=layer.name)(x)
        elif layer.kind == "Dense":
            h, x = x, keras.layers.Dense(**layer.sizes, dtype="float32", name=layer.name)(x)
        elif layer.kind == "Repeat":
            x = Repeat(**layer.sizes, dtype="float32", name=layer.name)(h, x, repeat_at)
    return keras.Model([tokens, told] if config.ahead else tokens, x, name="melody")


def plain_inputs(model, tokens):
    """What the Keras ``model`` takes for ``tokens`` (batch, time) told nothing ahead: the tokens alone, or for
    a model with ``ahead`` the tokens and zeros beside them (also inside a ``tf.function``)."""
    if len(model.inputs) == 1:
        return tokens
    import tensorflow as tf

    tokens = tf.convert_to_tensor(tokens)
    return tokens, tf.zeros(tf.concat([tf.shape(tokens), [AHEAD_WIDTH]], 0), tf.float32)


def network_weights(model, config: ModelConfig) -> dict[str, np.ndarray]:
    """A Keras model from ``build_model(config, ...)`` as the named float32 arrays of its ``Network`` (what
    ``bundle.load_weights`` reads from a model folder and ``melody.numpy_lstm.NumpyLSTM`` runs on)."""
    weights = {}
    for layer in Network(config, model.output_shape[-1]).layers:
        arrays = model.get_layer(layer.name).weights
        weights.update({weight.name: np.asarray(array.numpy(), dtype=np.float32)
                        for weight, array in zip(layer.weights, arrays)})
    return weights


def transfer_weights(model, config: ModelConfig, source, rows: np.ndarray) -> None:
    """Copy into ``model`` (built from ``config``) what the Keras model ``source`` (any melody network) knows.

    ``rows[i]``: the index in ``source``'s vocabulary of our token i (-1: it has none). Along a weight's
    vocabulary axis (embedding rows, logits columns) tokens are matched this way; a token with no
    match keeps its fresh initial value. Any other weight is copied from the layer of the same name
    when the shapes agree. The first LSTM kernel is copied by its row blocks (``Weight.row_blocks``):
    a block the source lacks (the lookback's ``matched`` for a plain LSTM, the ahead features for a
    network without them) starts at zero, so the network computes what the one copied from did. A
    layer is copied whole or not at all.
    """
    known = rows >= 0
    their_weights = {weight.name: weight for weight in _network_of(source).weights()}
    for layer in Network(config, model.output_shape[-1]).layers:
        try:
            theirs = source.get_layer(layer.name).get_weights()
        except ValueError:
            continue
        target = model.get_layer(layer.name)
        ours = target.get_weights()
        carried = [_carried(weight, mine, other, rows, known, their_weights.get(weight.name))
                   for weight, mine, other in zip(layer.weights, ours, theirs)]
        if len(theirs) == len(ours) and all(array is not None for array in carried):
            target.set_weights(carried)


def _carried(weight: Weight, mine: np.ndarray, other: np.ndarray, rows: np.ndarray, known: np.ndarray,
             theirs: Weight | None):
    """``mine`` with what ``other`` passes on to it (see ``transfer_weights``); None if it cannot take it."""
    if weight.vocabulary_axis is not None:
        axis = weight.vocabulary_axis
        if np.delete(mine.shape, axis).tolist() == np.delete(other.shape, axis).tolist():
            np.moveaxis(mine, axis, 0)[known] = np.moveaxis(other, axis, 0)[rows[known]]
        return mine
    if weight.row_blocks and theirs is not None and theirs.row_blocks and mine.shape[1:] == other.shape[1:]:
        source_blocks = dict(_block_rows(theirs.row_blocks))
        result = np.zeros_like(mine)
        for name, place in _block_rows(weight.row_blocks):
            there = source_blocks.get(name)
            if there is not None and there.stop - there.start == place.stop - place.start:
                result[place] = other[there]
            elif there is not None:
                return None
        return result
    return other if mine.shape == other.shape else None


def _network_of(model) -> Network:
    """The ``Network`` a Keras model built by ``build_model`` (this melody's or an older one's) is."""
    names = {layer.name for layer in model.layers}
    recurrent = [layer for layer in model.layers if layer.name.startswith("lstm_")]
    config = ModelConfig(units=recurrent[0].units, layers=len(recurrent),
                         embedding=model.get_layer("embedding").output_dim,
                         lookback=tuple(model.get_layer("lookback").distances) if "lookback" in names else (),
                         ahead="with_ahead" in names, dropout=0.0)
    return Network(config, model.output_shape[-1])


def _block_rows(blocks) -> list[tuple[str, slice]]:
    """(input, the rows it takes) for each of a kernel's row blocks."""
    places, first = [], 0
    for name, rows in blocks:
        places.append((name, slice(first, first + rows)))
        first += rows
    return places


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
