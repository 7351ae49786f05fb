"""The model folder: its only reader and writer. Everything generation needs, and proof of how it was made.

    config.json     the manifest: {"format": "melody-model", "version": 2, "model": {...}, "train": {...},
                    "programs": [instruments the training headers declared; -1 is drums],
                    "tracks": the most tracks a training piece had, "velocities": [velocity bins met],
                    "pitches": [lowest, highest note met] (these three absent in older folders)}
    tokenizer.json  its vocabulary (and whether it learned melodies only)
    model.keras     the trained network (float32, no optimizer state), loaded with safe_mode=True
    metrics.json    {"epochs": [...one entry per finished epoch...], "corpus": {...}, ...}
    corpus.npz      the token sequences it was trained and validated on (for ``melody evaluate``:
                    the n-gram baselines are fitted on them, generated music is checked against them)
    checkpoint/     what ``melody train --resume`` continues from: epoch-N.keras (model with
                    optimizer) and state.json naming it

``read_manifest`` reads everything but the network without TensorFlow, so a
wrong folder is reported at once and ``melody info`` never loads TensorFlow;
``load_weights`` reads the network's weight arrays out of model.keras, also
without TensorFlow (what ``melody generate`` runs on, see ``melody.numpy_lstm``);
``load_bundle`` builds the Keras network (for training and evaluation) and checks
that it predicts the tokenizer's vocabulary. Every file is read as a bounded
regular file inside the folder, and model.keras is checked against config.json
and the tokenizer before anything it declares is built.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from melody.errors import BundleError
from melody.files import atomic_write, read_json_file, sync_folder
from melody.model import ModelConfig, Network
from melody.tokenizer import Tokenizer
from melody.train_config import TrainConfig

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"  # the model shipped with melody
SHIPPED = "default"  # what ``--init-from`` calls it


def model_folder(name: str | os.PathLike) -> Path:
    """The model folder ``name`` names: ``SHIPPED`` is the model shipped with melody, unless a folder of that name
    is here (``./default`` then names the shipped one's namesake)."""
    return DEFAULT_MODEL if str(name) == SHIPPED and not Path(name).exists() else Path(name)


FORMAT = "melody-model"
FORMAT_VERSION = 2
CHECKPOINT = "checkpoint"


@dataclass
class Manifest:
    """What a model folder says about itself, read without TensorFlow."""

    path: Path
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig
    programs: list[int]  # instruments seen in training: General MIDI programs, -1 for drums
    metrics: dict
    # What training met, where the folder says (older folders do not): the most tracks a piece had, the velocity
    # bins and the lowest and highest note. The primer is made of these only (``continuation.Learned``).
    tracks: int | None = None
    velocities: tuple[int, ...] | None = None
    pitches: tuple[int, int] | None = None

    @property
    def melody_only(self) -> bool:
        return self.tokenizer.config.melody_only

    @property
    def network(self) -> Network:
        return Network(self.model_config, len(self.tokenizer))

    def network_stamp(self) -> tuple | None:
        """Which version of model.keras the folder holds (changes whenever it is written), None if none."""
        try:
            status = (self.path / "model.keras").stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size, status.st_ino


@dataclass
class Bundle(Manifest):
    """A manifest with its trained network (a ``keras.Model``)."""

    model: object = None


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """The model folder's config, tokenizer and metrics; BundleError says what is missing or wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such model folder")
    if not (folder / "config.json").exists():
        raise BundleError(f"{folder}: not a melody model folder (no config.json)")
    for name in ("config.json", "tokenizer.json", "metrics.json"):
        if (folder / name).exists() or (folder / name).is_symlink():
            _regular_inside(folder / name, folder)
    config = read_json_file(folder / "config.json", BundleError)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise BundleError(f"{folder}: not a melody model folder (config.json is not a melody model config)")
    if config.get("version") != FORMAT_VERSION:
        raise BundleError(f"{folder}: model format version {config.get('version')!r}; this melody reads version "
                          f"{FORMAT_VERSION}. Train the model again with this melody")
    tokenizer = Tokenizer.load(folder / "tokenizer.json")  # a TokenizerError names the file
    try:
        model_config = ModelConfig(**_model_settings(config["model"]))
        train_config = TrainConfig(**config["train"])
        programs = [int(program) for program in config["programs"]]
        if not all(-1 <= p <= 127 for p in programs):
            raise ValueError("programs outside -1..127")
        learned = _learned(config, tokenizer)
    except (TypeError, ValueError, KeyError) as error:
        raise BundleError(f"{folder}/config.json: unusable settings ({error})") from None
    metrics = read_json_file(folder / "metrics.json", BundleError) if (folder / "metrics.json").exists() else {}
    return Manifest(folder, tokenizer, model_config, train_config, programs,
                    metrics if isinstance(metrics, dict) else {}, *learned)


def _learned(config: dict, tokenizer: Tokenizer) -> tuple:
    """config.json's tracks, velocities and pitches (None where absent); ValueError for values no tokenizer has."""
    tracks, velocities, pitches = (config.get(key) for key in ("tracks", "velocities", "pitches"))
    if tracks is not None and not (isinstance(tracks, int) and 1 <= tracks <= tokenizer.config.max_tracks):
        raise ValueError(f"tracks {tracks!r} outside 1..{tokenizer.config.max_tracks}")
    if velocities is not None:
        velocities = tuple(int(bin_) for bin_ in velocities[:tokenizer.config.velocity_bins + 1])
        if not velocities or not all(0 <= bin_ < tokenizer.config.velocity_bins for bin_ in velocities):
            raise ValueError(f"velocities {velocities!r} outside 0..{tokenizer.config.velocity_bins - 1}")
    if pitches is not None:
        pitches = tuple(int(pitch) for pitch in pitches[:3])
        if len(pitches) != 2 or not 0 <= pitches[0] <= pitches[1] <= 127:
            raise ValueError(f"pitches {pitches!r}: not a lowest and highest note")
    return tracks, velocities, pitches


def load_bundle(folder: str | os.PathLike) -> Bundle:
    """The manifest and the network; BundleError if the network is missing or does not fit the tokenizer."""
    manifest = read_manifest(folder)
    check_network(manifest.path / "model.keras", manifest.network)
    model = _load_network(manifest.path / "model.keras")
    outputs = model.output_shape[-1]
    if outputs != len(manifest.tokenizer):
        raise BundleError(f"{manifest.path}: the model predicts {outputs} tokens but tokenizer.json has "
                          f"{len(manifest.tokenizer)}; the two files come from different trainings")
    return Bundle(**vars(manifest), model=model)


MAX_ARCHIVE_BYTES = 2 * 1024**3  # a 2 x 2048 network is under 300 MB; anything past this is not ours


def check_network(path: Path, network: Network) -> None:
    """Read what ``model.keras`` declares before Keras builds anything: exactly the layers of ``network``
    (``melody.model.Network``: names, classes and sizes from config.json and the tokenizer), in an archive
    of bounded size. BundleError otherwise."""
    import zipfile

    _regular_inside(path, path.parent)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info.file_size for info in archive.infolist()}
            if sum(members.values()) > MAX_ARCHIVE_BYTES or members.get("config.json", 0) > 1024**2:
                raise BundleError(f"{path}: declares {sum(members.values()):,} bytes unpacked; too large for a "
                                  "melody model")
            document = json.loads(archive.read("config.json"))
        declared = {layer["config"]["name"]: (layer["class_name"], layer["config"])
                    for layer in document["config"]["layers"] if layer["class_name"] != "InputLayer"}
    except BundleError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path}: not a Keras model archive melody can read ({type(error).__name__})") from None
    kinds = {kind for kind, _ in declared.values()} - {layer.kind for layer in network.layers}
    if kinds:
        raise BundleError(f"{path}: holds layers melody does not build ({', '.join(sorted(kinds))})")
    wrong = []
    for layer in network.layers:
        kind, settings = declared.get(layer.name, (None, {}))
        if kind != layer.kind:
            wrong.append(f"{layer.name} is {'missing' if kind is None else 'a ' + kind}, expected a {layer.kind}")
        else:
            wrong += [f"{layer.name}.{key} = {settings.get(key)!r}, expected {value!r}"
                      for key, value in layer.sizes.items() if settings.get(key) != value]
    wrong += [f"{name} is not a layer of the network"
              for name in sorted(declared.keys() - {layer.name for layer in network.layers})]
    if wrong:
        raise BundleError(f"{path}: does not match config.json and tokenizer.json ({'; '.join(wrong[:3])})")


def load_weights(manifest: Manifest) -> dict[str, np.ndarray]:
    """The network's weights, read from model.keras without TensorFlow, as float32 arrays named as
    ``melody.model.Network`` names them (what ``model.network_weights`` gives a Keras model). Each
    array's shape is checked against config.json and the tokenizer before it is read; BundleError otherwise."""
    import zipfile

    import h5py

    path = manifest.path / "model.keras"
    if not path.exists():
        raise BundleError(f"{manifest.path}: no model.keras (training has not finished an epoch yet?)")
    network = manifest.network
    check_network(path, network)
    expected = network.float32_bytes()
    if expected > MAX_ARCHIVE_BYTES:
        raise BundleError(f"{path}: config.json declares {expected:,} bytes of weights; too large for a melody model")
    weights, stored = {}, network.stored()
    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("model.weights.h5").file_size
        if size < expected:  # Keras stores weights uncompressed: less means compressed inside (a bomb) or missing
            raise BundleError(f"{path}: holds {size:,} bytes of weights where the network needs {expected:,}")
        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as member, \
                h5py.File(member, "r") as document:
            for weight in network.weights():
                dataset = document.get(f"layers/{stored[weight.name]}")
                if not isinstance(dataset, h5py.Dataset) or dataset.shape != weight.shape:
                    found = getattr(dataset, "shape", None)
                    raise BundleError(f"{path}: weight {weight.name} is {found}, expected {weight.shape}")
                weights[weight.name] = np.asarray(dataset[()], dtype=np.float32)
    except BundleError:
        raise
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
        raise BundleError(f"{path}: its weights cannot be read ({type(error).__name__})") from None
    return weights


def _regular_inside(path: Path, folder: Path) -> None:
    """BundleError unless ``path`` is a regular file whose real location is inside ``folder``."""
    import stat

    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise BundleError(f"{folder}: no {path.name}") from None
    except OSError as error:
        raise BundleError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not stat.S_ISREG(status.st_mode):
        raise BundleError(f"{path}: not a regular file")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise BundleError(f"{path}: points outside its model folder")


def _load_network(path: Path, compile: bool = False):
    from melody.model import load_keras

    keras = load_keras()
    import melody.cell  # noqa: F401  (registers the custom layers for deserialisation)

    if not path.is_file():
        raise BundleError(f"{path.parent}: no {path.name} (training has not finished an epoch yet?)")
    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise BundleError(f"{path}: cannot be loaded ({type(error).__name__}: {error})") from None


def initialising_vocabulary(folder: str | os.PathLike) -> list[str]:
    """The token names of a model folder of any melody format, read without TensorFlow, after checking that it
    holds a network: what ``melody train --init-from`` matches tokens by (checked before training starts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such model folder")
    _regular_inside(folder / "tokenizer.json", folder)
    _regular_inside(folder / "model.keras", folder)
    document = read_json_file(folder / "tokenizer.json", BundleError)
    names = document.get("vocabulary") if isinstance(document, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise BundleError(f"{folder}/tokenizer.json: no vocabulary list")
    return names


def load_for_initialising(folder: str | os.PathLike) -> tuple[object, list[str]]:
    """(network, its vocabulary's token names) of any melody model folder, older formats included:
    what ``melody train --init-from`` copies weights from, matching tokens by name."""
    names = initialising_vocabulary(folder)
    model = _load_network(Path(folder) / "model.keras")
    if model.output_shape[-1] != len(names):
        raise BundleError(f"{folder}: the model predicts {model.output_shape[-1]} tokens but its vocabulary "
                          f"has {len(names)}")
    return model, names


# ----------------------------------------------------------------------------- writing (by training)

def save_config(folder: Path, model_config: ModelConfig, train_config: TrainConfig, tokenizer: Tokenizer,
                programs: set[int], learned: dict) -> None:
    """Write config.json (the manifest, with what training met: ``learned``'s tracks, velocities and pitches) and
    tokenizer.json."""
    document = {"format": FORMAT, "version": FORMAT_VERSION, "model": asdict(model_config),
                "train": asdict(train_config), "programs": sorted(programs), **learned}
    atomic_write(folder / "config.json", json.dumps(document, indent=1) + "\n", force=True)
    tokenizer.save(folder / "tokenizer.json", force=True)


def _model_settings(saved: dict) -> dict:
    """config.json's model settings; a folder written before the lookback (or ``ahead``) existed holds a
    network without it."""
    return {"lookback": [], "ahead": False, **saved} if isinstance(saved, dict) else saved


def save_metrics(folder: Path, metrics: dict) -> None:
    atomic_write(folder / "metrics.json", json.dumps(metrics, indent=1) + "\n", force=True)


def save_model(model, path: Path) -> None:
    """``model.save`` to a temporary .keras file beside ``path`` (a name no other run uses), flushed to disk,
    then renamed; the temporary file is removed if anything fails."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.{os.urandom(4).hex()}.tmp.keras")
    try:
        model.save(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def save_best(model, folder: Path) -> None:
    save_model(model, folder / "model.keras")


def save_checkpoint(model, state: dict, folder: Path) -> None:
    """Model with optimizer state to checkpoint/epoch-N.keras (epoch-N-step-S.keras when interrupted in the epoch
    after N, at step S), then state.json naming it, then drop the old."""
    checkpoints = folder / CHECKPOINT
    checkpoints.mkdir(exist_ok=True)
    name = f"epoch-{state['epoch']}" + (f"-step-{state['step']}" if state.get("epoch_losses") else "") + ".keras"
    save_model(model, checkpoints / name)
    state["checkpoint"] = name
    atomic_write(checkpoints / "state.json", json.dumps(state, indent=1) + "\n", force=True)
    for old in checkpoints.glob("epoch-*.keras"):
        if old.name != name:
            old.unlink()


def checkpoint_state(folder: Path) -> dict | None:
    """The checkpoint's state.json, or None if there is no checkpoint."""
    path = Path(folder) / CHECKPOINT / "state.json"
    if not path.exists():
        return None
    state = read_json_file(path, BundleError)
    name = state.get("checkpoint") if isinstance(state, dict) else None
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".keras"):
        raise BundleError(f"{path}: names no checkpoint file inside the folder")
    return state


def load_checkpoint(folder: Path, state: dict):
    """The model with its optimizer, as the checkpoint ``state`` names it."""
    return _load_network(Path(folder) / CHECKPOINT / state["checkpoint"], compile=True)


MELODY_FILES = ("config.json", "tokenizer.json", "model.keras", "metrics.json", "corpus.npz", CHECKPOINT)


def is_temporary(path: Path) -> bool:
    """A file melody writes before renaming it into place (``files.atomic_write``, ``save_model``)."""
    return path.name.startswith(".") and (path.name.endswith(".tmp") or path.name.endswith(".tmp.keras"))


def unfinished(folder: Path) -> bool:
    """Whether ``folder`` holds only what a run killed before its first checkpoint leaves (settings, corpus,
    perhaps a first model.keras, temporary files): nothing to resume, and nothing a restart would lose."""
    from melody.files import LOCK

    if (folder / CHECKPOINT / "state.json").exists() or (folder / "metrics.json").exists():
        return False
    entries = [entry for entry in folder.iterdir() if entry.name != LOCK]
    checkpoint = folder / CHECKPOINT
    inside = list(checkpoint.iterdir()) if checkpoint.is_dir() else []
    return all(entry.name in MELODY_FILES or is_temporary(entry) for entry in entries) and \
        all(is_temporary(entry) or entry.name.startswith("epoch-") for entry in inside)


def remove_temporaries(folder: Path) -> None:
    """Delete temporary files a killed run left (call only while holding the folder's lock)."""
    for place in (folder, folder / CHECKPOINT):
        if place.is_dir():
            for entry in place.iterdir():
                if is_temporary(entry) and entry.is_file():
                    entry.unlink(missing_ok=True)


def clear(folder: Path) -> None:
    """Make ``folder`` ready for a fresh run: created, without an earlier run's model, metrics, checkpoint or
    temporary files. Only what melody writes is deleted: anything else in the folder stays."""
    checkpoint = folder / CHECKPOINT
    if checkpoint.is_dir():
        for entry in checkpoint.iterdir():
            if entry.is_file() and (entry.name == "state.json" or is_temporary(entry)
                                    or (entry.name.startswith("epoch-") and entry.name.endswith(".keras"))):
                entry.unlink()
        try:
            checkpoint.rmdir()  # only if nothing else is in it
        except OSError:
            pass
    for name in ("model.keras", "metrics.json"):
        (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporaries(folder)


# ----------------------------------------------------------------------------- the corpus it learned

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
    """The file names of the (training, validation) pieces in a model folder's corpus.npz ([], [] if none)."""
    folder = Path(folder)
    if not (folder / "corpus.npz").exists():
        return [], []
    arrays = _corpus_arrays(folder / "corpus.npz", folder)
    try:
        return tuple(arrays[f"{side}_files"].tolist() for side in ("train", "validation"))
    except KeyError:
        return [], []


MAX_CORPUS_BYTES = 1024**3  # unpacked: 500 million tokens, 300 times the shipped corpus


def load_corpus(folder: str | os.PathLike,
                vocabulary: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training pieces, validation pieces) from a model folder's corpus.npz, checked: bounded unpacked
    size, offsets rising from 0 to the token count, tokens below ``vocabulary`` (when given)."""
    folder = Path(folder)
    path = folder / "corpus.npz"
    if not path.exists():
        raise BundleError(f"{folder}: no corpus.npz (the model was trained by an older melody); "
                          "train it again to evaluate it against baselines")
    arrays = _corpus_arrays(path, folder)
    try:
        sides = []
        for side in ("train", "validation"):
            tokens, offsets = arrays[f"{side}_tokens"], arrays[f"{side}_offsets"].astype(np.int64)
            if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(tokens) or (np.diff(offsets) < 0).any():
                raise ValueError(f"{side} offsets do not cut its tokens into pieces")
            if vocabulary is not None and len(tokens) and int(tokens.max()) >= vocabulary:
                raise ValueError(f"{side} tokens beyond the vocabulary of {vocabulary}")
            sides.append([tokens[start:end] for start, end in zip(offsets[:-1], offsets[1:])])
        return tuple(sides)
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{path}: unusable ({error})") from None


def _corpus_arrays(path: Path, folder: Path) -> dict[str, np.ndarray]:
    """The arrays of corpus.npz, after checking their unpacked size (a small file may unpack to gigabytes)."""
    import zipfile

    _regular_inside(path, folder)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_CORPUS_BYTES:
            raise BundleError(f"{path}: unpacks to {unpacked:,} bytes, more than a melody corpus holds "
                              f"({MAX_CORPUS_BYTES:,})")
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}  # each access decompresses: once only
    except BundleError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise BundleError(f"{path}: unreadable ({error})") from None
