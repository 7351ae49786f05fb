"""Ctrl-C and SIGTERM at random moments of ``melody train``, on a loaded machine.

    python benchmarks/interrupts.py [--runs 30] [--seed 0] [--no-load]

A small network trains on 40 folk tunes of the shipped corpus (several epochs of a few
seconds, each with a validation pass and a checkpoint). First one uninterrupted run is
timed and kept as the reference. Then, ``--runs`` times, a fresh run gets SIGINT (two in
three) or SIGTERM at a random moment between its start and the reference's end (start-up,
preparing, a step, validation, a checkpoint being written), and the script checks:

* the exit code (130 for SIGINT, 143 for SIGTERM) and that it came within 10 s;
* the last line on stderr, "Interrupted; continue with: ..." naming the command to run;
* that running that command (``--resume`` when a checkpoint exists, else the same command)
  ends with the reference's epochs: loss and validation loss to the last digit saved.

Unless ``--no-load``, another ``melody train`` runs beside it the whole time (the machine
loaded as a user's would be). Prints one row per run and the totals; exits 1 on a failure.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
print = functools.partial(print, flush=True)  # rows as they come, also into a file
NETWORK = ["--units", "32", "--embedding", "16", "--batch-size", "16", "--seq-len", "32", "--epochs", "4",
           "--val-split", "0.25", "--quiet"]
PATIENCE = 10.0  # seconds an interrupted run may take to exit


def melody(*args) -> list[str]:
    return [sys.executable, "-m", "melody", *map(str, args)]


def epochs(out: Path) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "seconds"}
            for e in json.loads((out / "metrics.json").read_text())["epochs"]]


def interrupt_once(corpus: Path, out: Path, delay: float, number: int, env: dict) -> dict:
    """Start a run, signal it after ``delay`` s, and see how it ends; then finish it as it says."""
    process = subprocess.Popen(melody("train", corpus, "--out", out, *NETWORK), cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    if process.poll() is not None:
        return {"outcome": "finished before the signal"}
    process.send_signal(number)
    sent = time.perf_counter()
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        return {"outcome": "HANG", "seconds": 120.0}
    seconds = time.perf_counter() - sent
    if process.returncode == -number and "Corpus:" not in stderr:
        return {"outcome": "killed by the signal while Python imported melody, before its command line ran "
                           f"(a shell reports {128 + number})", "code": 128 + number}
    if "Trained" in stdout:  # the run was over; the signal came while the process shut down
        return {"outcome": f"finished before the signal took effect (exit {process.returncode})",
                "code": process.returncode}
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    state_path = out / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    where = "before the first checkpoint" if state is None else \
        f"epoch {state['epoch'] + 1}, {len(state.get('epoch_losses', []))} steps in"
    again = melody("train", corpus, "--out", out, *NETWORK, *(["--resume"] if state is not None else []))
    expected_line = f"Interrupted; continue with: melody train {corpus} --out {out} --resume" if state else \
        "Interrupted; continue with: the same command (no checkpoint was written yet)"
    finished = subprocess.run(again, cwd=ROOT, env=env, capture_output=True, text=True)
    return {"outcome": "ok", "code": process.returncode, "seconds": seconds, "line": last == expected_line,
            "last": last, "where": where, "resumed": finished.returncode == 0,
            "error": finished.stderr.strip().splitlines()[-1:] if finished.returncode else [],
            "epochs": epochs(out) if finished.returncode == 0 else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-load", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="melody-interrupts-"))
    env = {**os.environ, "MELODY_CACHE": str(work / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    corpus = work / "folk"
    corpus.mkdir()
    for path in sorted((ROOT / "corpora" / "folk").glob("*.mid"))[:40]:
        shutil.copy(path, corpus)
    load = None if args.no_load else subprocess.Popen(
        ["bash", "-c", " ; ".join([f"{' '.join(melody('train', corpus, '--out', work / f'load{i}', *NETWORK))}"
                                   for i in range(200)])], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        started = time.perf_counter()
        subprocess.run(melody("train", corpus, "--out", work / "reference", *NETWORK), cwd=ROOT, env=env, check=True,
                       capture_output=True)
        length = time.perf_counter() - started
        reference = epochs(work / "reference")
        print(f"reference run: {length:.1f} s, {len(reference)} epochs; signals at random in 0..{0.9 * length:.1f} s"
              + ("" if load is None else ", another training running beside it"))
        failures = done = 0
        for run in range(args.runs):
            number = signal.SIGTERM if rng.random() < 1 / 3 else signal.SIGINT
            delay = rng.uniform(0.0, 0.9 * length)  # while it runs: the last tenth is its shutdown
            result = interrupt_once(corpus, work / f"run{run}", delay, number, env)
            if result["outcome"] != "ok":
                print(f"{run:2d} {number.name:7s} at {delay:5.1f} s: {result['outcome']}")
                # Python resets its handlers when it shuts down: a signal then ends the process by the signal
                # itself, which a shell reports as 128 + n, as it should; any other code is a failure.
                failures += result["outcome"] == "HANG" or result.get("code") not in (None, 0, 128 + number, -number)
                continue
            done += 1
            good = (result["code"] == 128 + number and result["seconds"] <= PATIENCE and result["line"]
                    and result["resumed"] and result["epochs"] == reference)
            failures += not good
            print(f"{run:2d} {number.name:7s} at {delay:5.1f} s: exit {result['code']} after {result['seconds']:.1f} s, "
                  f"{result['where']}; line {'ok' if result['line'] else repr(result['last'])}; resumed "
                  + ("= reference" if result["epochs"] == reference else f"DIFFERS {result['error']}")
                  + ("" if good else "  <-- FAIL"))
        print(f"{done - failures if failures <= done else 0} of {done} interrupted runs exited as they should "
              f"within {PATIENCE:.0f} s and resumed to the reference; {failures} failed")
        return 1 if failures else 0
    finally:
        if load is not None:
            os.killpg(load.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
