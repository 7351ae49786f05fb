"""melody info: known counts for shipped and real files, and a model folder described without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import pretty_midi
from click.testing import CliRunner

from conftest import CORPORA
from melody.bundle import load_corpus
from melody.cli import cli


def info_json(path, *args) -> dict:
    result = CliRunner().invoke(cli, ["info", str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_shipped_chorale():
    path = CORPORA / "chorales" / "bwv10.7.mid"
    described = info_json(path)
    assert (described["format"], described["tracks"], described["ticks_per_quarter"]) == (1, 5, 480)
    assert [i["name"] for i in described["instruments"]] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert {i["program"] for i in described["instruments"]} == {52}
    assert [i["notes"] for i in described["instruments"]] == [43, 49, 56, 58]
    assert described["notes"] == 206 == sum(len(i.notes) for i in pretty_midi.PrettyMIDI(str(path)).instruments)
    assert (described["bars"], described["seconds"], described["bpm"]) == (22, 66.0, [80.0])
    assert described["time_signatures"] == ["4/4"] and described["pitch_range"] == ["G2", "F5"]
    assert described["repairs"] == []


def test_a_real_pop_song_with_drums(pop_song):
    described = info_json(pop_song)
    assert len(described["instruments"]) == 13 and described["notes"] == 6760
    drums = [i for i in described["instruments"] if i["drums"]]
    assert len(drums) == 1 and drums[0]["notes"] == 3414 and drums[0]["program"] is None
    assert described["bars"] == 97 and round(described["seconds"]) == 261


def test_a_model_folder(bundle):
    described = info_json(bundle.path)
    assert described["kind"] == "model" and described["vocabulary"] == 608
    assert described["programs"] == bundle.programs == [0, 52]  # folk songs (piano) and chorales (choir)
    assert described["tracks"] == bundle.tracks == 4 and described["velocities"] == [4]  # the corpus plays at 80
    training = [bundle.tokenizer.pitch_range(piece) for piece in load_corpus(bundle.path, len(bundle.tokenizer))[0]]
    shift = bundle.train_config.max_transpose  # training transposes pieces by up to this many semitones
    assert tuple(described["pitches"]) == bundle.pitches == (min(low for low, _ in training) - shift,
                                                             max(high for _, high in training) + shift)
    assert described["parameters"] == bundle.model.count_params()
    assert described["corpus"]["train_files"] + described["corpus"]["val_files"] == described["corpus"]["ok"] == 80
    assert described["val_loss"] == bundle.metrics["best_val_loss"]
    text = CliRunner().invoke(cli, ["info", str(bundle.path)]).output
    assert "parameters" in text and "validation loss" in text
    seconds = bundle.metrics["training_seconds"]
    assert f"{bundle.metrics['steps']} steps, {seconds:.0f} s (" in text if seconds < 59.5 else " min (" in text
    assert "this machine" not in text  # the precision's reason is about the machine that trained


def test_spans_of_time_read_as_people_say_them():
    from melody.info import duration

    assert [duration(s) for s in (22, 59.4, 61, 14 * 60, 3 * 3600 + 5 * 60)] == ["22 s", "59 s", "1 min", "14 min",
                                                                               "3 h 05 min"]


def test_model_questions_and_generation_never_load_tensorflow(bundle, tmp_path):
    """`melody info MODEL`, a wrong --model path and generation itself (the shipped model and a trained one,
    from a seed and from scratch) never import TensorFlow, so they answer at once."""
    script = ("import sys\nfrom melody.cli import cli\n"
              "try:\n    cli.main(sys.argv[1:])\nexcept SystemExit as e:\n"
              "    print('exit', e.code, 'tensorflow' in sys.modules)\n")
    seed = str(CORPORA / "chorales" / "bwv10.7.mid")
    for args, code in ((["info", str(bundle.path)], 0),
                       (["generate", "--model", str(tmp_path / "nowhere"), "--seed", seed], 2),
                       (["generate", "--model", str(CORPORA), "--seed", seed], 2),
                       (["generate", "--seed", seed, "--out", "a.mid", "--random-seed", "1"], 0),
                       (["generate", "--model", str(bundle.path), "--out", "b.mid", "-n", "2", "--json"], 0)):
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=tmp_path)
        assert result.stdout.strip().splitlines()[-1] == f"exit {code} False", (args, result.stderr[-400:])
    assert sorted(path.name for path in tmp_path.glob("*.mid")) == ["a.mid", "b-1.mid", "b-2.mid"]


def test_a_model_folder_shows_its_token_layout_and_a_midi_file_has_none():
    from melody.generate import DEFAULT_MODEL

    result = CliRunner().invoke(cli, ["info", str(DEFAULT_MODEL), "--vocabulary"])
    assert result.exit_code == 0, result.output
    assert "243-370  Note_0 .. Note_127             128  body     a note of this MIDI pitch starts now ..." in result.output
    kinds = info_json(DEFAULT_MODEL, "--vocabulary")["token_kinds"]
    assert [k["kind"] for k in kinds][:4] == ["Pad", "Begin", "End", "Bar"] and kinds[-1]["last"] == 607
    refused = CliRunner().invoke(cli, ["info", str(CORPORA / "chorales" / "bwv10.7.mid"), "--vocabulary"])
    assert refused.exit_code == 2 and refused.output.startswith("Error:") and "no vocabulary" in refused.output

