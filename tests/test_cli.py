"""The command line as a user meets it: help, the two commands, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, corpus_files, run_melody
from melody.bundle import DEFAULT_MODEL
from melody.cli import cli
from melody.midi_read import read_midi
from melody.midi_write import validate_midi


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def test_help_lists_every_command_with_examples():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("prepare", "quantize", "train", "generate", "harmonize", "evaluate", "render", "info"):
        assert command in result.output
        assert "Example" in run(command, "--help").output


def test_help_is_instant_without_tensorflow():
    code = "import sys; from melody.cli import cli; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.strip() \
        == "False"


def test_root_cli_script_runs_from_a_checkout():
    result = subprocess.run([sys.executable, "cli.py", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "prepare" in result.stdout


def test_quantize_keeps_notes_and_timing(tmp_path, wild):
    source = wild / "MIDIs_one_track" / "POP909_010.mid"  # 23 tempo changes
    out = tmp_path / "q.mid"
    result = run("quantize", source, out)
    assert result.exit_code == 0, result.output
    assert validate_midi(out) == []
    before, after = read_midi(source), read_midi(out)
    last_onset = [score.tick_to_seconds(score.notes[-1].start) for score in (before, after)]
    assert last_onset[1] == pytest.approx(last_onset[0], abs=0.05)  # within one grid step
    assert len(after.tempos) == 23
    assert len(after.notes) >= 0.95 * len(before.notes)


def test_prepare_reports_and_summarises(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in corpus_files("folk")[:4]:
        shutil.copy(path, folder)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00")
    result = run("prepare", folder, "--out", tmp_path / "cache", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert "Prepared 5 files: 4 ok, 1 skipped" in result.output
    assert "skipped " in result.output and "broken.mid: truncated file" in result.output


def _bad_inputs(tmp_path):
    song = corpus_files("folk")[0]
    taken = tmp_path / "taken.mid"
    taken.write_bytes(b"keep me")
    (tmp_path / "pic.png").write_bytes(b"keep me")
    not_midi = tmp_path / "page.mid"
    not_midi.write_text("<html></html>")
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mid").write_text("not midi")
    two = tmp_path / "two"
    two.mkdir()
    for path in corpus_files("folk")[:2]:
        shutil.copy(path, two)
    model = tmp_path / "model"
    no_notes = tmp_path / "silence.mid"
    no_notes.write_bytes(bytes.fromhex("4d546864000000060001000101e04d54726b0000000b00ff510307a12000ff2f00"))
    broken_model = tmp_path / "broken-model"
    broken_model.mkdir()
    (broken_model / "config.json").write_text("{not json")
    old_model = tmp_path / "old-model"
    old_model.mkdir()
    (old_model / "config.json").write_text('{"format": "melody-model", "version": 1}')
    before_ahead = tmp_path / "before-ahead"  # a model folder written before the ahead inputs: no "ahead" key
    shutil.copytree(DEFAULT_MODEL, before_ahead, ignore=shutil.ignore_patterns("checkpoint"))
    config = json.loads((before_ahead / "config.json").read_text())
    config["model"].pop("ahead", None)
    (before_ahead / "config.json").write_text(json.dumps(config))
    gen = ["generate", "--seed", song, "--out", tmp_path / "g.mid"]
    pipe = tmp_path / "pipe.mid"
    os.mkfifo(pipe)  # reading it would block forever
    return {
        "generate: seed is a pipe": (["generate", "--seed", pipe, "--out", tmp_path / "g.mid"], "not a regular file"),
        "info: a pipe": (["info", pipe], "not a regular file"),
        "generate: output inside a file": (["generate", "--seed", song, "--out", taken / "g.mid"],
                                           "taken.mid is a file, not a folder"),
        "train: units past any machine": (["train", two, "--out", model, "--units", "1000000000"],
                                          "units must be at most 4096"),
        "train: batch past any machine": (["train", two, "--out", model, "--batch-size", "100000", "--seq-len",
                                           "100000"], "batch_size x seq_len must be at most"),
        "generate: missing seed": (["generate", "--seed", tmp_path / "nope.mid"], "no such file"),
        "generate: keep a track the seed lacks": (["generate", "--seed", song, "--keep", "Flute", "--out",
                                                   tmp_path / "g.mid"], "the seed has no track 'Flute'"),
        "generate: write from bar 0": (["generate", "--seed", song, "--from-bar", "0"], "from-bar must be 1 or more"),
        "generate: after a bar past the seed's end": (gen + ["--after", "1000"], "bars; continue after bar 1 to"),
        "generate: a new part on no instrument": (["generate", "--seed", song, "--add", "Bass=kazoo"],
                                                  "no General MIDI instrument is called 'kazoo'"),
        "harmonize: a new part on no instrument": (["harmonize", song, "--parts", "Alto,Bass=kazoo"],
                                                   "no General MIDI instrument is called 'kazoo'"),
        "harmonize: missing melody": (["harmonize", tmp_path / "nope.mid"], "no such file"),
        "generate: keep without a seed": (["generate", "--keep", "1"], "give a seed"),
        "generate: output that is not MIDI": (["generate", "--seed", song, "--out", tmp_path / "x.txt"],
                                              "give --out a name ending in .mid"),
        "generate: candidates with nothing after them": (["generate", "--seed", song, "--candidates", "3", "--out",
                                                          tmp_path / "g.mid"], "candidates are judged by the seed's"),
        "generate: an ending from an older model": (["generate", "--seed", song, "--ending", "--model", before_ahead,
                                                     "--out", tmp_path / "g.mid"], "trained without ahead inputs"),
        "generate: seed not MIDI": (["generate", "--seed", not_midi, "--out", tmp_path / "g.mid"], "not a MIDI"),
        "generate: seed without notes": (["generate", "--seed", no_notes, "--out", tmp_path / "g.mid"], "no notes"),
        "generate: temperature 0": (gen + ["--temperature", "0"], "temperature must be > 0"),
        "generate: negative temperature": (gen + ["--temperature", "-1"], "temperature must be > 0"),
        "generate: top-p 0": (gen + ["--top-p", "0"], "top-p must be in (0, 1]"),
        "generate: top-p above 1": (gen + ["--top-p", "1.5"], "top-p must be in (0, 1]"),
        "generate: top-k 0": (gen + ["--top-k", "0"], "top-k must be at least 1"),
        "generate: bars 0": (gen + ["--bars", "0"], "bars must be in 1..256, got 0"),
        "generate: too many bars": (gen + ["--bars", "100000"], "bars must be in 1..256, got 100000"),
        "generate: model of an older melody": (gen + ["--model", old_model], "model format version 1"),
        "generate: unknown model": (gen + ["--model", tmp_path / "no-model"], "no such model folder"),
        "generate: broken model": (gen + ["--model", broken_model], "unreadable"),
        "generate: output exists": (["generate", "--seed", song, "--out", taken], "already exists; use --force"),
        "train: missing folder": (["train", tmp_path / "nowhere", "--out", model], "no such file or folder"),
        "train: empty folder": (["train", empty, "--out", model], "no MIDI files"),
        "train: no readable MIDI": (["train", junk, "--out", model], "no MIDI file could be tokenized"),
        "train: too few tokens": (["train", two, "--out", model, "--seq-len", "4000"], "too few tokens"),
        "train: output not empty": (["train", two, "--out", tmp_path], "not empty; use --resume"),
        "train: zero units": (["train", two, "--out", model, "--units", "0"], "units must be a positive"),
        "train: negative epochs": (["train", two, "--out", model, "--epochs", "-1"], "epochs must be a positive"),
        "train: bad val split": (["train", two, "--out", model, "--val-split", "1.5"], "val_split"),
        "train: nothing to resume": (["train", two, "--out", model, "--resume"], "nothing to resume"),
        "train: init from nowhere": (["train", two, "--out", model, "--init-from", tmp_path / "nowhere"],
                                     "no such model folder"),
        "train: init from no model": (["train", two, "--out", model, "--init-from", empty], "no tokenizer.json"),
        "train: init from and resume": (["train", two, "--out", model, "--init-from", empty, "--resume"],
                                        "cannot be combined with resume"),
        "generate: too many samples": (gen + ["--num-samples", "0"], "num-samples must be in 1..256, got 0"),
        "evaluate: missing data": (["evaluate", tmp_path / "nowhere"], "no such file or folder"),
        "evaluate: no MIDI in folder": (["evaluate", empty], "no MIDI files"),
        "evaluate: nothing readable": (["evaluate", junk], "none of the 1 MIDI files could be read"),
        "evaluate: reference alone": (["evaluate", "--reference", two], "reference needs generated"),
        "evaluate: broken model": (["evaluate", "--model", broken_model], "unreadable"),
        "render: missing file": (["render", tmp_path / "nope.mid"], "no such file"),
        "render: not MIDI": (["render", not_midi, "--png", tmp_path / "r.png"], "not a MIDI file"),
        "render: output exists": (["render", song, "--wav", taken], "already exists; use --force"),
        "render: missing soundfont": (["render", song, "--wav", tmp_path / "r.wav", "--soundfont",
                                       tmp_path / "no.sf2"], "no such soundfont"),
        "generate: picture exists": (["generate", "--seed", song, "--out", tmp_path / "pic.mid", "--png"],
                                     "already exists; use --force"),
        "info: missing path": (["info", tmp_path / "nowhere"], "no such file or folder"),
        "info: not MIDI": (["info", not_midi], "not a MIDI file"),
        "info: folder that is no model": (["info", empty], "not a melody model folder"),
        "info: broken model": (["info", broken_model], "unreadable"),
        "missing input": (["quantize", tmp_path / "nope.mid", tmp_path / "o.mid"], "no such file"),
        "not a MIDI file": (["quantize", not_midi, tmp_path / "o.mid"], "not a MIDI file"),
        "output exists": (["quantize", song, taken], "already exists; use --force"),
        "missing argument": (["quantize", song], "Missing argument"),
        "unknown command": (["compose"], "No such command"),
        "bad workers": (["prepare", song, "--out", tmp_path / "c", "--workers", 0], "--workers"),
        "missing folder": (["prepare", tmp_path / "nowhere", "--out", tmp_path / "c"], "no such file or folder"),
        "nothing readable": (["prepare", not_midi, "--out", tmp_path / "c"], "no MIDI file could be tokenized"),
        "cache exists": (["prepare", song, "--out", tmp_path], "not a token cache with these settings; use --force"),
    }


REPORTING_TENSORFLOW = ("import sys\nfrom melody.cli import cli\ntry:\n    cli.main(sys.argv[1:])\n"
                        "finally:\n    print('tensorflow loaded:', 'tensorflow' in sys.modules)\n")


def test_every_bad_input_is_one_error_line_and_exit_2(tmp_path):
    """... and found before TensorFlow is imported: none of these needs a network to be told."""
    for label, (args, expected) in _bad_inputs(tmp_path).items():
        result = subprocess.run([sys.executable, "-c", REPORTING_TENSORFLOW, *map(str, args)], capture_output=True,
                                text=True, cwd=ROOT, env={**os.environ, "MELODY_CACHE": str(tmp_path / "cache")})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, label
        assert result.stdout.strip().splitlines()[-1] == "tensorflow loaded: False", label
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (label, lines)
        assert "Traceback" not in result.stderr + result.stdout, label
    assert (tmp_path / "taken.mid").read_bytes() == (tmp_path / "pic.png").read_bytes() == b"keep me"
    assert not (tmp_path / "pic.mid").exists()
    assert not (tmp_path / "model").exists()


def test_debug_shows_the_traceback(tmp_path):
    result = run_melody("--debug", "quantize", tmp_path / "nope.mid", tmp_path / "o.mid")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and result.stderr.strip().endswith("no such file")


def test_the_summary_names_the_samples_that_looped_a_track_written_elsewhere(capsys):
    """The printed summary says which tracks were written and, where the model left a written track silent in some
    samples (so it looped there), in how many; and which of the seed's bars came before the new ones."""
    from melody.cli.making import _print_summary

    summary = {"files": ["out-1.mid", "out-2.mid"], "accompaniment_notes": 12, "bars": 8, "bars_short": [],
               "samples": 2, "notes": 80, "tokens": 400, "tokens_per_second": 4000.0, "seconds": 30.0,
               "random_seed": 1, "paces": {}, "following_log_likelihood": None, "silent_samples": 0,
               "after": 8, "seed_bars": 12, "outro": None, "wall_seconds": {"total": 1.0, "read": 0.1, "sample": 0.5},
               "tracks": {"kept": [], "written": ["Soprano", "Tenor"], "added": [], "looped": ["Bass"], "silent": [],
                          "looped_in": {"Tenor": 1}, "not_played": []}}
    _print_summary(summary)
    printed = capsys.readouterr().out.splitlines()
    assert "Seed: its bars 1-8 of 12 (--after: the bars after them left out)" in printed
    tracks = [line for line in printed if line.startswith("Tracks:")]
    assert tracks == ["Tracks: written Soprano, Tenor; looped Bass; looped where the model left it silent or all but "
                      "silent (the other parts then written again, hearing the loop): Tenor in 1 of 2 samples"]
