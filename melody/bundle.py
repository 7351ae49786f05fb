"""A model folder: everything generation needs, and proof of how it was made.

    model.keras     the trained network (float32, no optimizer state), loaded with safe_mode=True
    tokenizer.json  its vocabulary
    config.json     {"format": "melody-model", "version": 1, "model": {...}, "train": {...}}
    metrics.json    {"epochs": [...one entry per finished epoch...], "corpus": {...}, ...}
    corpus.npz      the token sequences it was trained and validated on (for ``melody evaluate``:
                    the n-gram baselines are fitted on them, generated music is checked against them)
    checkpoint/     what ``melody train --resume`` continues from (model with optimizer, state.json)

``load_bundle`` checks the format version and that the tokenizer's vocabulary
size matches the model's output, and names what is wrong when they do not.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from melody.errors import BundleError, MelodyError
from melody.files import atomic_write
from melody.model import ModelConfig
from melody.tokenizer import Tokenizer

FORMAT = "melody-model"
FORMAT_VERSION = 1


@dataclass
class Bundle:
    model: object  # keras.Model
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: dict
    metrics: dict
    path: Path

    @property
    def melody_only(self) -> bool:
        return bool(self.train_config.get("melody_only"))


def save_config(folder: Path, model_config: ModelConfig, train_config) -> None:
    document = {"format": FORMAT, "version": FORMAT_VERSION, "model": asdict(model_config),
                "train": asdict(train_config)}
    atomic_write(folder / "config.json", json.dumps(document, indent=1) + "\n", force=True)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.parent}: not a melody model folder (no {path.name})") from None
    except (OSError, ValueError) as error:
        raise BundleError(f"{path}: unreadable ({error})") from None


def save_corpus(folder: Path, train: list[np.ndarray], validation: list[np.ndarray],
                names: tuple[list[str], list[str]] = ([], [])) -> None:
    """Write corpus.npz: each side as one uint16 token array, its piece offsets and the pieces' file names."""
    arrays = {}
    for side, pieces, files in (("train", train, names[0]), ("validation", validation, names[1])):
        arrays[f"{side}_tokens"] = np.concatenate(pieces or [np.zeros(0)]).astype(np.uint16)
        arrays[f"{side}_offsets"] = np.cumsum([0] + [len(piece) for piece in pieces]).astype(np.int64)
        arrays[f"{side}_files"] = np.array(files, dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(folder / "corpus.npz", buffer.getvalue(), force=True)


def corpus_files(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The file names of the (training, validation) pieces in a model folder's corpus.npz."""
    try:
        with np.load(Path(folder) / "corpus.npz") as archive:
            return tuple(archive[f"{side}_files"].tolist() for side in ("train", "validation"))
    except (OSError, ValueError, KeyError):
        return [], []


def load_corpus(folder: str | os.PathLike) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training pieces, validation pieces) from a model folder's corpus.npz."""
    path = Path(folder) / "corpus.npz"
    if not path.is_file():
        raise BundleError(f"{folder}: no corpus.npz (the model was trained by an older melody); "
                          "train it again to evaluate it against baselines")
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}  # each access decompresses: once only
        return tuple([arrays[f"{side}_tokens"][start:end] for start, end in
                      zip(arrays[f"{side}_offsets"][:-1], arrays[f"{side}_offsets"][1:])]
                     for side in ("train", "validation"))
    except (OSError, ValueError, KeyError) as error:
        raise BundleError(f"{path}: unreadable ({error})") from None


def save_model_atomically(model, path: Path) -> None:
    """``model.save`` to a temporary .keras file beside ``path``, then rename."""
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)


def load_bundle(folder: str | os.PathLike) -> Bundle:
    """Load a model folder; BundleError says what is missing or inconsistent."""
    from melody.model import load_keras

    keras = load_keras()
    import melody.cell  # noqa: F401  (registers the custom layers for deserialisation)

    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such model folder")
    config = read_json(folder / "config.json")
    if config.get("format") != FORMAT:
        raise BundleError(f"{folder}/config.json: not a melody model config")
    if config.get("version") != FORMAT_VERSION:
        raise BundleError(f"{folder}: model format version {config.get('version')}, this melody reads "
                          f"version {FORMAT_VERSION}; retrain the model or upgrade melody")
    try:
        tokenizer = Tokenizer.load(folder / "tokenizer.json")
        model_config = ModelConfig(**config["model"])
    except (MelodyError, TypeError, ValueError, KeyError) as error:
        raise BundleError(f"{folder}: {error}") from None
    if not (folder / "model.keras").is_file():
        raise BundleError(f"{folder}: no model.keras (training has not finished an epoch yet?)")
    try:
        model = keras.models.load_model(folder / "model.keras", compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise BundleError(f"{folder}/model.keras: cannot be loaded ({type(error).__name__}: {error})") from None
    outputs = model.output_shape[-1]
    if outputs != len(tokenizer):
        raise BundleError(f"{folder}: the model predicts {outputs} tokens but tokenizer.json has "
                          f"{len(tokenizer)}; the two files come from different trainings")
    metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
    return Bundle(model, tokenizer, model_config, config.get("train", {}), metrics, folder)
