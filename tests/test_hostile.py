"""Hostile model folders and MIDI files, and faults: one clear error or a bounded result, nothing lost.

Every case runs the command line in a child process limited to CPU_SECONDS of CPU time
(the kernel stops it past that: a resource limit, not a timing assertion) and WALL_SECONDS
of waiting (a blocked read); its own peak memory is read back from the kernel (``wait4``
of that child), so a case that allocates first and checks later fails here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPORA, ROOT, ev, melody_command, note, require_fluidsynth, smf, track

from melody.midi_write import validate_midi

LIMIT_BYTES = 1.5 * 1024**3
CPU_SECONDS, WALL_SECONDS = 30, 90
SEED = CORPORA / "chorales" / "bwv10.7.mid"


# A child's peak memory as the kernel reports it includes the memory of the process that forked it, so
# a pytest process grown by earlier tests would hide the child's own peak: the children are started by
# a small launcher process instead, which forks each one, applies the CPU limit and reports wait4's numbers.
LAUNCHER = """
import json, os, resource, subprocess, sys, threading
for line in sys.stdin:
    job = json.loads(line)
    limit = lambda: resource.setrlimit(resource.RLIMIT_CPU, (job["cpu"], job["cpu"]))
    with open(job["out"], "w") as out, open(job["err"], "w") as err:
        child = subprocess.Popen(job["args"], stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=job["cwd"],
                                 env=job["env"], preexec_fn=limit)
        timer = threading.Timer(job["wall"], child.kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
    print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024]), flush=True)
"""


@pytest.fixture(scope="module", autouse=True)
def launcher():
    global _launcher
    _launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
    yield
    _launcher.stdin.close()
    _launcher.wait(timeout=10)


def run_limited(*args, env=None) -> tuple[subprocess.CompletedProcess, int]:
    """``melody ARGS`` in a child process under the limits above; its result and its own peak memory in bytes."""
    with tempfile.TemporaryDirectory() as scratch:
        job = {"args": melody_command(*args), "cwd": str(ROOT),
               "env": {**os.environ, **(env or {})}, "cpu": CPU_SECONDS, "wall": WALL_SECONDS,
               "out": f"{scratch}/out", "err": f"{scratch}/err"}
        _launcher.stdin.write(json.dumps(job) + "\n")
        _launcher.stdin.flush()
        returncode, peak = json.loads(_launcher.stdout.readline())
        result = subprocess.CompletedProcess(args, returncode, Path(job["out"]).read_text(),
                                             Path(job["err"]).read_text())
    return result, peak


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

    learned = copy("learned")
    config = json.loads((learned / "config.json").read_text())
    (learned / "config.json").write_text(json.dumps({**config, "velocities": list(range(10**6)), "pitches": "C2"}))
    cases["a million velocities learned"] = (learned, "generate", "unusable settings (velocities")
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


# ----------------------------------------------------------------------------- MIDI files small but expensive

QUARTER = 480  # conftest's files have 480 ticks per quarter; at the default 120 bpm a quarter is half a second


def far_apart(seconds: float) -> bytes:
    """Two notes ``seconds`` apart at 120 bpm: a few bytes that last that long."""
    return smf(track(note(0, 60, QUARTER), note(0, 64, QUARTER, delta=round(seconds * 2 * QUARTER))))


def midi_files(tmp_path) -> dict:
    """label -> (command arguments, expected words in the error, or None for a bounded success)."""
    def write(name, data):
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    out = tmp_path / "out"
    silence = write("silence.mid", far_apart(27.8 * 3600))
    dense = bytearray(ev(0, 0x90, 36, 64))  # then running status: 3 bytes per event, one tick apart
    for n in range(1, 2_000_000):
        dense += bytes((1, 36 + (n // 2) % 48, 64 if n % 2 == 0 else 0))
    dense = write("dense.mid", smf(track(bytes(dense))))
    sixty_fourth = write("64th.mid", smf(track(ev(0, 0xFF, 0x58, 0x04, 1, 6, 24, 8), note(0, 60, QUARTER),
                                               note(0, 64, QUARTER, delta=199_000 * QUARTER))))
    tracks = write("tracks.mid", smf(*[track(note(0, 60, QUARTER))] * 32_767))  # 655 KB
    pipe = tmp_path / "pipe.mid"
    os.mkfifo(pipe)
    return {
        "27.8 hours of silence, info": (["info", silence], "beyond 200,000 quarter notes"),
        "27.8 hours of silence, generate": (["generate", "--seed", silence, "--out", out / "a.mid"],
                                            "beyond 200,000 quarter notes"),
        "6 MB of notes one tick apart, info": (["info", dense], "too many events (over 500,000)"),
        "6 MB of notes one tick apart, quantize": (["quantize", dense, out / "b.mid"], "too many events"),
        "1/64 time over 200,000 quarters, generate": (["generate", "--seed", sixty_fourth, "--bars", 4,
                                                        "--out", out / "c.mid"], None),
        "32,767 tracks of one note, render": (["render", tracks, "--png", out / "d.png"], None),
        "32,767 tracks of one note, generate": (["generate", "--seed", tracks, "--bars", 4,
                                                  "--out", out / "e.mid"], None),
        "a FIFO named pipe.mid, info": (["info", pipe], "not a regular file"),
    }


@pytest.mark.slow
def test_small_but_expensive_midi_files_get_a_clear_error_or_a_bounded_result(tmp_path):
    for label, (args, expected) in midi_files(tmp_path).items():
        result, peak = run_limited(*args)
        assert peak < LIMIT_BYTES, (label, peak)
        if expected is None:
            written = Path(args[-1])
            assert result.returncode == 0, (label, result.stderr[-400:])
            if written.suffix == ".mid":
                assert validate_midi(written) == [], label
            else:
                assert written.stat().st_size > 1000, label
        else:
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2, (label, result.returncode, result.stderr[-400:])
            assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (label, lines)


def test_audio_is_streamed_to_the_wav_not_held_in_memory(tmp_path):
    """Twenty minutes of music: the WAV is 212 MB and FluidSynth's float samples twice that; the
    command's peak memory stays under the WAV's size."""
    require_fluidsynth()
    (tmp_path / "far.mid").write_bytes(far_apart(20 * 60))
    result, peak = run_limited("render", tmp_path / "far.mid", "--wav", tmp_path / "far.wav")
    assert result.returncode == 0, result.stderr
    wav_bytes = (tmp_path / "far.wav").stat().st_size
    assert wav_bytes > 200e6 and peak < wav_bytes, (wav_bytes, peak)


# ----------------------------------------------------------------------------- faults

@contextlib.contextmanager
def small_disk(tmp_path, size: str):
    """A tmpfs of ``size`` mounted at tmp_path/disk: a disk that fills up (needs root; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_temporary_folder_while_rendering_is_an_error_not_a_silent_tail(tmp_path):
    """FluidSynth exits 0 when its disk fills up: what it delivered is checked against the music's length."""
    require_fluidsynth()
    (tmp_path / "long.mid").write_bytes(far_apart(5 * 60))  # 301 s of music: 106 MB of float samples
    with small_disk(tmp_path, "20m") as disk:
        result, _ = run_limited("render", tmp_path / "long.mid", "--wav", tmp_path / "long.wav",
                                env={"TMPDIR": str(disk)})
    assert result.returncode == 2 and not (tmp_path / "long.wav").exists()
    assert re.fullmatch(r"Error: the synthesizer delivered \d+\.\d s of the 301\.0 s of music; is the temporary "
                        r"folder \(.*/disk\) full\?", result.stderr.strip()), result.stderr


def test_a_disk_filling_up_during_a_batch_leaves_none_of_its_files(tmp_path):
    """``generate -n 3`` onto a disk with room for two of its three files: one error, and no file at all."""
    args = ("generate", "--seed", SEED, "-n", 3, "--random-seed", 1)
    result, _ = run_limited(*args, "--out", tmp_path / "probe" / "take.mid")
    sizes = sorted(path.stat().st_size for path in (tmp_path / "probe").glob("*.mid"))
    assert result.returncode == 0 and len(sizes) == 3
    pages = [-(-size // 4096) * 4096 for size in sizes]
    with small_disk(tmp_path, "1m") as disk:
        room = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(bytes(room - pages[0] - pages[1] - 2048))
        result, _ = run_limited(*args, "--out", disk / "take.mid")
        left = sorted(path.name for path in disk.iterdir())
    assert left == ["filler"], left
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: cannot write ") and lines[0].endswith(
        "(No space left on device); none of them was written"), lines
