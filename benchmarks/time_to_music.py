"""Time to music: the whole ``melody generate`` command, from starting the process to the file
written, as a user waits for it.

    python benchmarks/time_to_music.py [--runs 7] [--bars 8] [--seed corpora/chorales/bwv1.6.mid] [--wild DIR]

The requests: ``--bars`` bars after a four-part chorale (``--seed``); the same 32 times (``-n 32``, 32
variations in one batch); with ``--wild DIR`` (MidiTok's test files, as the tests fetch them) ``--bars``
bars after a 13-track pop song with drums (Aicha.mid: every pitched part written, the drums looped);
``melody harmonize`` of the chorale's soprano, its first 16 bars alone, in four parts; and bars 9-12 of
the chorale filled, every part written again and the rest kept (``--from-bar 9 --bars 4``; and the
likeliest of 8 candidates, ``--candidates 8``). For each,
side by side, alternating run by run so that machine load falls on both alike:

* ``melody generate`` (or ``harmonize``) with the shipped model: the network runs in NumPy from the
  saved weights, TensorFlow is never imported;
* the same generation with the network loaded the way melody did before, through Keras
  (``import tensorflow`` and ``keras.models.load_model``) before sampling: what every
  generation cost when sampling needed TensorFlow.

Prints each side's median, fastest and slowest wall time and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

THROUGH_KERAS = """
import sys
from melody.bundle import load_bundle
from melody.cli import cli
from melody.generate import DEFAULT_MODEL
load_bundle(DEFAULT_MODEL)  # import TensorFlow, build the Keras model
cli.main(sys.argv[1:])
"""


def timed(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{result.stderr[-2000:]}")
    return seconds


def sixteen_bar_melody(chorale: str, folder: str) -> str:
    """The chorale's top part alone, its first 16 bars, written into ``folder``: a melody to harmonize."""
    sys.path.insert(0, str(ROOT))
    from melody.midi_read import read_midi
    from melody.midi_write import write_midi
    from melody.score import cut

    score = read_midi(chorale)
    melody = cut(score.replace(instruments=score.instruments[:1]), score.bar_lines(until=score.end_tick)[16])
    return str(write_midi(melody, Path(folder) / "melody-16-bars.mid", force=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seed", default=str(ROOT / "corpora" / "chorales" / "bwv1.6.mid"))
    parser.add_argument("--wild", default=None, help="the MidiTok test files folder (for the 13-track song)")
    args = parser.parse_args()
    chorale = str(Path(args.seed).resolve())
    continued = ["--bars", str(args.bars)]
    requests = {f"{Path(chorale).name}, {args.bars} bars": ["generate", "--seed", chorale, *continued, "-n", "1"],
                f"{Path(chorale).name}, 32 x {args.bars} bars": ["generate", "--seed", chorale, *continued, "-n", "32"]}
    if args.wild:
        song = Path(args.wild).resolve() / "MIDIs_multitrack" / "Aicha.mid"
        requests[f"{song.name} (13 tracks, drums), {args.bars} bars"] = ["generate", "--seed", str(song), *continued]
    fill = ["generate", "--seed", chorale, "--from-bar", "9", "--bars", "4"]
    requests[f"{Path(chorale).name}, fill bars 9-12"] = fill
    requests[f"{Path(chorale).name}, fill 9-12, best of 8"] = [*fill, "--candidates", "8"]
    sides = {"melody (NumPy)": [sys.executable, "-m", "melody"],
             "network loaded through Keras first": [sys.executable, "-c", THROUGH_KERAS]}
    print(f"# {os.cpu_count()} cores, {args.runs} runs each, the shipped model, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'request':<40} {'command':<36} {'median s':>9} {'fastest':>8} {'slowest':>8}")
    with tempfile.TemporaryDirectory() as folder:
        requests["its 16-bar soprano harmonized, 4 parts"] = ["harmonize", sixteen_bar_melody(chorale, folder)]
        for request, asked in requests.items():
            times = {name: [] for name in sides}
            for run in range(args.runs):
                for name, command in sides.items():
                    arguments = [*asked, "--random-seed", str(run), "--out", "out.mid", "--force", "--quiet"]
                    times[name].append(timed(command + arguments, folder))
            for name, seconds in times.items():
                print(f"{request if name.startswith('melody') else '':<40} {name:<36} "
                      f"{statistics.median(seconds):9.2f} {min(seconds):8.2f} {max(seconds):8.2f}")
            ours, theirs = (statistics.median(seconds) for seconds in times.values())
            print(f"{'':<40} {'ratio of medians':<36} {theirs / ours:9.1f}x")

if __name__ == "__main__":
    main()
