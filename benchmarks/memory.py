"""Memory: peak resident memory of ``melody train`` or ``melody evaluate`` on a corpus and on the same
corpus ten times over.

    python benchmarks/memory.py [--command train|evaluate] [--files 8462] [--steps 20]

Each run is a fresh process; its peak RSS is read from the kernel when it ends.
train: preparing the folder, then a short training of a 2 x 256 model; tokens are
streamed to the cache and read through memory maps. evaluate: the shipped model's
likelihood on every file, read and measured a group at a time. Either way ten times
the music should cost little more memory: the target is at most 20% more.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_corpus(folder: Path, files: list[Path], copies: int) -> None:
    """``copies`` hard links of every file under distinct names (no extra disk, distinct paths)."""
    for copy in range(copies):
        target = folder / f"copy-{copy}"
        target.mkdir(parents=True)
        for path in files:
            os.link(path, target / path.name)


def peak_rss(task: str, corpus: Path, out: Path, cache: Path, steps: int) -> tuple[float, float]:
    """(peak RSS in MiB of the process or any of its workers, seconds)."""
    command = [sys.executable, "-m", "melody", "train", str(corpus), "--out", str(out), "--max-steps", str(steps),
               "--quiet", "--melody-only"] if task == "train" else \
        [sys.executable, "-m", "melody", "evaluate", str(corpus), "--json", "--quiet"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "MELODY_CACHE": str(cache)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{task} failed: {process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", choices=("train", "evaluate"), default="train")
    parser.add_argument("--files", type=int, default=8462, help="folk songs in the base corpus")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    args = parser.parse_args()
    files = sorted((ROOT / "corpora" / "folk").glob("*.mid"))[:args.files]
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as scratch:
        for copies in (1, 10):
            corpus = Path(scratch) / f"corpus-x{copies}"
            make_corpus(corpus, files, copies)
            rss, seconds = peak_rss(args.command, corpus, Path(scratch) / f"model-x{copies}", Path(scratch) / "cache",
                                    args.steps)
            rows.append((copies, len(files) * copies, rss, seconds))
    what = f"train --melody-only --max-steps {args.steps}, default 2 x 256 model" if args.command == "train" \
        else "evaluate FOLDER with the shipped model"
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {what}")
    print(f"{'corpus':10} {'files':>8} {'peak RSS MiB':>13} {'seconds':>8}")
    for copies, count, rss, seconds in rows:
        print(f"{'x' + str(copies):10} {count:>8} {rss:>13.0f} {seconds:>8.0f}")
    print(f"ratio x10 / x1: {rows[1][2] / rows[0][2]:.2f} (target at most 1.20)")


if __name__ == "__main__":
    main()
