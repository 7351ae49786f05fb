"""Scaling: preparing a big corpus with 1 and 2 workers, preparing it again after 1% new files, and
training on two worker processes (tf.distribute on loopback) against one process.

    python benchmarks/scaling.py [--copies 10] [--steps 30]

The corpus is the shipped one (folk songs and chorales), hard-linked ``--copies`` times
under other names. Every run is a fresh process; peak memory is the kernel's
``ru_maxrss`` of the process (and its workers), read when it ends. Training runs the
default 2 x 256 model on batches of 32 x 128 for ``--steps`` steps; tokens/s counts the
global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from memory import make_corpus  # noqa: E402


def run(*args, env=None) -> tuple[float, float, subprocess.Popen]:
    """(seconds, peak RSS in MiB, the finished process) of ``melody ARGS``."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "melody", *map(str, args)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"melody {' '.join(map(str, args))} failed: {process.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def add_new_files(corpus: Path, files: list[Path], count: int) -> None:
    """``count`` files of new content: shipped files with their first note a semitone higher."""
    target = corpus / "new"
    target.mkdir()
    for index, path in enumerate(files[:count]):
        data = bytearray(path.read_bytes())
        at = data.index(b"\x90") + 1
        data[at] = data[at] + 1 if data[at] < 120 else data[at] - 1
        (target / f"new-{index}-{path.name}").write_bytes(bytes(data))


def prepare_rows(scratch: Path, files: list[Path], copies: int) -> list[tuple]:
    rows = []
    for scale in (1, copies):
        corpus = scratch / f"corpus-x{scale}"
        make_corpus(corpus, files, scale)
        for workers in (1, 2):
            out = scratch / f"cache-x{scale}-j{workers}"
            seconds, rss, _ = run("prepare", corpus, "--out", out, "-j", workers, "-q")
            rows.append((f"prepare x{scale}, {workers} worker{'s' if workers > 1 else ''}", len(files) * scale,
                         seconds, rss, folder_bytes(out)))
        add_new_files(corpus, files, len(files) * scale // 100)
        seconds, rss, _ = run("prepare", corpus, "--out", out, "-j", 2, "-q")
        rows.append((f"prepare x{scale} again, +1% new files", len(files) * scale * 101 // 100, seconds, rss,
                     folder_bytes(out)))
    return rows


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("localhost", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports


def training_rows(scratch: Path, cache: Path, steps: int) -> list[tuple]:
    args = ["--max-steps", steps, "--batch-size", 32, "--seq-len", 128, "-q"]
    seconds, rss, _ = run("train", cache, "--out", scratch / "alone", *args)
    alone = json.loads((scratch / "alone" / "metrics.json").read_text())
    cluster = ",".join(f"localhost:{port}" for port in free_ports(2))
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-m", "melody", "train", str(cache), "--out",
                                 str(scratch / f"worker{index}"), *map(str, args), "--cluster", cluster,
                                 "--task-index", str(index)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE) for index in range(2)]
    peaks = []
    for worker in workers:
        _, status, usage = os.wait4(worker.pid, 0)
        if status != 0:
            raise SystemExit(f"worker failed: {worker.stderr.read().decode()[-2000:]}")
        peaks.append(usage.ru_maxrss / 1024)
    together = json.loads((scratch / "worker0" / "metrics.json").read_text())
    tokens = steps * 32 * 128
    return [("train, one process", tokens / alone["training_seconds"], seconds, rss, alone["epochs"][-1]["loss"]),
            ("train, 2 workers on loopback", tokens / together["training_seconds"], time.perf_counter() - started,
             max(peaks), together["epochs"][-1]["loss"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    files = sorted((ROOT / "corpora" / "folk").glob("*.mid")) + sorted((ROOT / "corpora" / "chorales").glob("*.mid"))
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as scratch:
        scratch = Path(scratch)
        prepared = prepare_rows(scratch, files, args.copies)
        trained = training_rows(scratch, scratch / "cache-x1-j2", args.steps)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'run':40} {'files':>8} {'seconds':>8} {'files/s':>8} {'peak MiB':>9} {'cache MB':>9}")
    for name, count, seconds, rss, size in prepared:
        print(f"{name:40} {count:>8} {seconds:>8.1f} {count / seconds:>8.0f} {rss:>9.0f} {size / 1e6:>9.1f}")
    full = {name: seconds for name, _, seconds, _, _ in prepared}
    for scale in (1, args.copies):
        again, fresh = full[f"prepare x{scale} again, +1% new files"], full[f"prepare x{scale}, 2 workers"]
        print(f"x{scale}: 2 workers / 1 worker {full[f'prepare x{scale}, 1 worker'] / fresh:.2f}x; "
              f"again after +1% takes {again / fresh:.0%} of a full run")
    print(f"{'run':40} {'tokens/s':>9} {'wall s':>8} {'peak MiB':>9} {'last loss':>9}")
    for name, speed, seconds, rss, loss in trained:
        print(f"{name:40} {speed:>9.0f} {seconds:>8.1f} {rss:>9.0f} {loss:>9.4f}")
    print(f"2 workers / one process: {trained[1][1] / trained[0][1]:.2f}x")


if __name__ == "__main__":
    main()
