"""Small builders shared by the tests: hand-written MIDI bytes and real files from the wild.

``smf(...)`` and ``track(...)`` spell a Standard MIDI File byte for byte, so each
edge case reads like the file it is. Real files come from two places:

* music21 ships 23 MIDI files (its MIDI test set and two Mozart files);
* the MidiTok sdist on PyPI holds real pop songs with drums, piano performances
  (MAESTRO, POP909), a type 0 file and a corrupt file. The test session fetches it
  once with ``pip download`` into ``~/.cache/melody-tests`` (nothing is committed);
  if that fails, those tests skip, except under CI where they fail.

``bundle`` and ``melody_bundle`` are tiny models really trained (seconds) on
shipped corpus files, shared by the whole session.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"
WILD_PACKAGE = "miditok==3.1.0"


def pytest_configure(config):
    """Corpora prepared by `melody train` during the tests go to a temporary cache, not the user's."""
    os.environ["MELODY_CACHE"] = tempfile.mkdtemp(prefix="melody-test-cache-")


# ----------------------------------------------------------------------------- bytes

def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def track(*events: bytes, end: bool = True) -> bytes:
    """An MTrk chunk from events given as delta-time-prefixed bytes; end-of-track added."""
    body = b"".join(events) + (b"\x00\xff\x2f\x00" if end else b"")
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(*tracks: bytes, file_format: int = 1, division: int = 480) -> bytes:
    """A whole Standard MIDI File from MTrk chunks."""
    return b"MThd" + struct.pack(">IHHH", 6, file_format, len(tracks), division) + b"".join(tracks)


def ev(delta: int, *data: int) -> bytes:
    """One event: delta time, then raw bytes."""
    return vlq(delta) + bytes(data)


def tempo(delta: int, bpm: float) -> bytes:
    return ev(delta, 0xFF, 0x51, 0x03) + round(60_000_000 / bpm).to_bytes(3, "big")


def note(channel: int, pitch: int, length: int, velocity: int = 100, delta: int = 0) -> bytes:
    """A note-on after ``delta`` ticks and its note-off ``length`` ticks later."""
    return ev(delta, 0x90 | channel, pitch, velocity) + ev(length, 0x80 | channel, pitch, 0)


def require_fluidsynth() -> None:
    """The real synthesizer: CI installs it (Debian fluidsynth, fluid-soundfont-gm); elsewhere tests skip without it."""
    if shutil.which("fluidsynth") is None or not os.path.exists("/usr/share/sounds/sf2/FluidR3_GM.sf2"):
        message = "FluidSynth or the FluidR3 GM soundfont is not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# ----------------------------------------------------------------------------- melody in a child process

# Starts melody as a terminal would: SIGINT neither blocked nor ignored, whatever the test process inherited
# (a signal mask or an ignored SIGINT carries over to a child; twice in full runs a child never saw Ctrl-C).
_AS_FROM_A_TERMINAL = ("import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                       "signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execv(sys.executable, [sys.executable, '-m', 'melody', *sys.argv[1:]])")


def melody_command(*args, as_from_a_terminal: bool = False) -> list[str]:
    """The command that runs ``melody ARGS`` in a child process, with this interpreter (the melody it
    imports: this checkout's when run from ROOT, the installed one elsewhere)."""
    if as_from_a_terminal:
        return [sys.executable, "-c", _AS_FROM_A_TERMINAL, *map(str, args)]
    return [sys.executable, "-m", "melody", *map(str, args)]


def run_melody(*args, cwd=ROOT, **options) -> subprocess.CompletedProcess:
    """``melody ARGS`` run to its end in a child process, its output captured as text."""
    return subprocess.run(melody_command(*args), capture_output=True, text=True, cwd=cwd, **options)


# ----------------------------------------------------------------------------- real files

def music21_midi_files() -> list[Path]:
    import music21

    base = Path(music21.__file__).parent
    return sorted(base.glob("midi/testPrimitive/*.mid")) + sorted(base.glob("omr/*.mid"))


def _fetch_wild(cache: Path) -> Path:
    target = cache / "miditok-3.1.0" / "tests"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        WILD_PACKAGE, "-d", download], check=True, timeout=600, capture_output=True)
        archive = next(Path(download).glob("*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/tests/MIDIs_" in m.name and m.isfile()]
            tar.extractall(cache, members=members, filter="data")
    return target


@pytest.fixture(scope="session")
def wild() -> Path:
    """Folder of real-world MIDI files: MIDIs_multitrack, MIDIs_one_track, MIDIs_corrupted."""
    cache = Path(os.environ.get("MELODY_TEST_CACHE", Path.home() / ".cache" / "melody-tests"))
    try:
        return _fetch_wild(cache)
    except Exception as error:  # no registry in reach
        message = f"real-world MIDI files unavailable ({WILD_PACKAGE} could not be fetched: {error})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def pop_song(wild) -> Path:
    """A real multi-track pop arrangement with drums (13 instruments)."""
    return wild / "MIDIs_multitrack" / "Aicha.mid"


def corpus_files(name: str) -> list[Path]:
    return sorted((CORPORA / name).glob("*.mid"))


def _tiny_bundle(tmp_path_factory, name, files, melody_only=False, units=32, epochs=2, steps=40,
                 lookback=(1, 2, 4, 8)):
    """A small model really trained for a few seconds on ``files`` (a lookback model unless ``lookback=()``)."""
    from melody.bundle import load_bundle
    from melody.model import ModelConfig
    from melody.tokenizer import TokenizerConfig
    from melody.train import TrainConfig, train

    folder = tmp_path_factory.mktemp(name)
    for path in files:
        shutil.copy(path, folder)
    out = tmp_path_factory.mktemp(name + "-model") / "model"
    config = TrainConfig(epochs=epochs, steps_per_epoch=steps, batch_size=16, seq_len=32, learning_rate=0.01)
    train(folder, out, ModelConfig(units=units, layers=2, embedding=16, dropout=0.0, lookback=lookback), config,
          TokenizerConfig(melody_only=melody_only))
    return load_bundle(out)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """A tiny full-score model on 60 folk songs and 20 chorales, better than the unigram baseline."""
    return _tiny_bundle(tmp_path_factory, "folk", corpus_files("folk")[:60] + corpus_files("chorales")[:20],
                        units=64, epochs=3, steps=100)


@pytest.fixture(scope="session")
def melody_bundle(tmp_path_factory):
    """A tiny melody-only plain LSTM (no lookback) on 30 chorales."""
    return _tiny_bundle(tmp_path_factory, "lead", corpus_files("chorales")[:30], melody_only=True, lookback=())
