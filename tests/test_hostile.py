"""Model folders from strangers: each hostile folder gets one clear error, in bounded time and memory.

Every case runs the command line in a child process with a time limit; its peak memory
is read back from the kernel (``getrusage`` of the finished child), so a case that
allocates first and checks later fails here.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import CORPORA, ROOT

LIMIT_BYTES = 1.5 * 1024**3
SEED = CORPORA / "chorales" / "bwv10.7.mid"


def run_limited(*args) -> tuple[subprocess.CompletedProcess, int]:
    """``melody ARGS`` in a child process (at most 60 s); its result and its peak memory in bytes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run([sys.executable, "-m", "melody", *map(str, args)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return result, max(peak, before) * 1024  # ru_maxrss is in KiB on Linux; the largest child so far


def rewrite_archive(path, change):
    """``model.keras`` with its config.json passed through ``change``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def bomb(path):
    """A corpus.npz of a few kilobytes that unpacks to 4 GB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("train_tokens.npy", "w", force_zip64=True) as member:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<u2", "fortran_order": False,
                                                          "shape": (2 * 1024**3,)})
            member.write(header.getvalue())
            block = bytes(1 << 20)
            for _ in range(4096):
                member.write(block)
    path.write_bytes(buffer.getvalue())


def compress_weights(path):
    """``model.keras`` with its weight arrays (zeros, the shapes unchanged) gzip-compressed inside the HDF5
    file: a few kilobytes that would unpack to the whole network, the shape of a decompression bomb."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    packed = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as source, h5py.File(packed, "w") as target:
        source.visititems(lambda name, item: target.create_dataset(name, data=np.zeros(item.shape, item.dtype),
                                                                   compression="gzip")
                          if isinstance(item, h5py.Dataset) else None)
    members["model.weights.h5"] = packed.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def folders(bundle, tmp_path):
    """label -> (folder, command, expected words in the error)."""
    def copy(label):
        folder = tmp_path / label
        shutil.copytree(bundle.path, folder, ignore=shutil.ignore_patterns("checkpoint"))
        return folder

    cases = {}
    huge_grid = copy("huge-grid")
    document = json.loads((huge_grid / "tokenizer.json").read_text())
    document["config"]["steps_per_quarter"] = 400_000_000
    (huge_grid / "tokenizer.json").write_text(json.dumps(document))
    cases["tokenizer with a 400-million-step grid"] = (huge_grid, "info", "steps_per_quarter must be")

    wide = copy("wide-logits")
    rewrite_archive(wide / "model.keras", lambda c: [layer["config"].update(units=1_000_000)
                                                     for layer in c["config"]["layers"]
                                                     if layer["config"]["name"] == "logits"])
    cases["logits layer declaring a million units"] = (wide, "generate", "logits.units = 1000000, expected 608")

    strange = copy("strange-layer")
    rewrite_archive(strange / "model.keras", lambda c: c["config"]["layers"][3].update(class_name="Lambda"))
    cases["a layer melody never builds"] = (strange, "generate", "holds layers melody does not build (Lambda)")

    packed = copy("packed-weights")
    compress_weights(packed / "model.keras")
    cases["weights compressed inside model.keras"] = (packed, "generate", "bytes of weights where the network needs")

    bombed = copy("bomb")
    bomb(bombed / "corpus.npz")
    cases["corpus.npz unpacking to 4 GB"] = (bombed, "info", "unpacks to")

    zero = copy("dev-zero")
    (zero / "config.json").unlink()
    (zero / "config.json").symlink_to("/dev/zero")
    cases["config.json linked to /dev/zero"] = (zero, "info", "not a regular file")

    outside = copy("outside")
    (tmp_path / "elsewhere.json").write_text((outside / "tokenizer.json").read_text())
    (outside / "tokenizer.json").unlink()
    (outside / "tokenizer.json").symlink_to(tmp_path / "elsewhere.json")
    cases["tokenizer.json linked out of the folder"] = (outside, "info", "points outside its model folder")

    fifo = copy("fifo")
    (fifo / "corpus.npz").unlink()
    os.mkfifo(fifo / "corpus.npz")
    cases["a FIFO named corpus.npz"] = (fifo, "info", "not a regular file")

    typed = copy("badly-typed")
    config = json.loads((typed / "config.json").read_text())
    config["model"]["units"] = "many"
    (typed / "config.json").write_text(json.dumps(config))
    cases["badly typed settings"] = (typed, "generate", "unusable settings")
    return cases


@pytest.mark.slow
def test_hostile_model_folders_get_one_clear_error_in_bounded_time_and_memory(bundle, tmp_path):
    for label, (folder, command, expected) in folders(bundle, tmp_path).items():
        args = ["info", folder] if command == "info" else ["generate", "--model", folder, "--seed", SEED,
                                                            "--out", tmp_path / f"{folder.name}.mid"]
        result, peak = run_limited(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (label, result.stderr[-400:])
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (label, lines)
        assert peak < LIMIT_BYTES, (label, peak)


def test_a_checkpoint_named_outside_the_folder_is_refused(bundle, tmp_path):
    from melody.errors import BundleError
    from melody.train import train

    folder = tmp_path / "model"
    shutil.copytree(bundle.path, folder)
    (folder / "checkpoint").mkdir(exist_ok=True)
    (folder / "checkpoint" / "state.json").write_text(json.dumps({"checkpoint": "../../../etc/passwd.keras"}))
    with pytest.raises(BundleError, match="names no checkpoint file inside the folder"):
        train(CORPORA / "chorales", folder, resume=True)


def test_info_prints_only_printable_text_from_a_strangers_folder(bundle, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bundle.path, folder, ignore=shutil.ignore_patterns("checkpoint"))
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["stopped"] = "done\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J"
    (folder / "metrics.json").write_text(json.dumps(metrics))
    result, _ = run_limited("info", folder)
    assert result.returncode == 0 and "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "done]52;c;ZWNobyBwd25lZA== [2J" in result.stdout


def test_a_tiny_file_declaring_a_day_of_silence_is_not_rendered(tmp_path):
    """37 bytes: one note held for 16 million ticks (about 24 hours). The WAV is refused before any audio
    is made; the picture is drawn."""
    body = b"\x00\x90\x3c\x40" + bytes([0x87, 0xFF, 0xFF, 0x7F]) + b"\x80\x3c\x00" + b"\x00\xff\x2f\x00"
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60" + b"MTrk" + len(body).to_bytes(4, "big") + body
    (tmp_path / "day.mid").write_bytes(data)
    result, peak = run_limited("render", tmp_path / "day.mid", "--wav", tmp_path / "day.wav")
    assert result.returncode == 2 and result.stderr.strip() == \
        "Error: the music lasts 24.3 hours; melody renders audio up to 2 hours"
    assert not (tmp_path / "day.wav").exists() and peak < LIMIT_BYTES
    result, _ = run_limited("render", tmp_path / "day.mid", "--png", tmp_path / "day.png")
    assert result.returncode == 0 and (tmp_path / "day.png").stat().st_size > 1000
