"""melody train: a tiny model learns, saves a self-contained bundle, and resumes exactly."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest

from click.testing import CliRunner

from conftest import CORPORA, ROOT, corpus_files, melody_command
from melody.cli import cli
from melody.bundle import load_bundle, read_manifest
from melody.errors import BundleError, OutputExistsError, TrainingError
from melody.model import ModelConfig
from melody.train import TrainConfig, train

TINY = ModelConfig(units=32, layers=2, embedding=16, dropout=0.1)


@pytest.fixture(scope="module")
def folk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folk")
    for path in corpus_files("folk")[:120]:
        shutil.copy(path, folder)
    return folder


def quick(**changes):
    return TrainConfig(**{"epochs": 2, "batch_size": 8, "seq_len": 32, "steps_per_epoch": 40, **changes})


@pytest.fixture(scope="module")
def one_epoch(folk, tmp_path_factory):
    """A finished run of one short epoch, trained once for the tests that each change a copy of it."""
    out = tmp_path_factory.mktemp("one-epoch") / "model"
    train(folk, out, TINY, quick(epochs=1, steps_per_epoch=3))
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "model"))


def test_tiny_training_beats_the_unigram_baseline_and_reloads_in_a_fresh_process(folk, tmp_path):
    out = tmp_path / "model"
    model = ModelConfig(units=64, layers=2, embedding=16, dropout=0.0)
    metrics = train(folk, out, model, quick(epochs=3, steps_per_epoch=100, batch_size=16, learning_rate=0.01))
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert set(metrics["epochs"][0]) == {"epoch", "step", "loss", "val_loss", "learning_rate", "tokens_seen",
                                              "seconds"}
    assert metrics["best_val_loss"] < 0.8 * metrics["unigram_val_nll"]
    assert {p.name for p in out.iterdir()} >= {"model.keras", "tokenizer.json", "config.json", "metrics.json"}
    code = ("from melody.bundle import load_bundle; b = load_bundle(%r); "
            "print(b.model.output_shape[-1], len(b.tokenizer), b.model_config.units)" % str(out))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.split() == ["608", "608", "64"], result.stderr[-500:]


def test_resume_continues_to_the_same_result_as_an_uninterrupted_run(folk, tmp_path):
    straight = train(folk, tmp_path / "a", TINY, quick(epochs=2))
    train(folk, tmp_path / "b", TINY, quick(epochs=1))
    resumed = train(folk, tmp_path / "b", resume=True, changes={"epochs": 2})
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    assert resumed["epochs"][0] == json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())[
        "epochs"][0]
    for a, b in zip(load_bundle(tmp_path / "a").model.get_weights(), load_bundle(tmp_path / "b").model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert resumed["epochs"][1]["val_loss"] == pytest.approx(straight["epochs"][1]["val_loss"], abs=1e-4)


def test_max_steps_and_early_stopping(folk, tmp_path):
    capped = train(folk, tmp_path / "capped", TINY, quick(epochs=5, max_steps=50))
    assert capped["steps"] == 50 and capped["stopped"] == "reached --max-steps 50"
    stalled = train(folk, tmp_path / "stalled", TINY, quick(epochs=6, learning_rate=1e-9, patience=1))
    assert stalled["stopped"] == "early stopping: no improvement for 1 epochs"
    # the first epoch sets the best; each plateau after it halves the rate, down to 1/8 of it, then one stops
    assert [e["learning_rate"] for e in stalled["epochs"]] == [1e-9, 1e-9, 5e-10, 2.5e-10, 1.25e-10]
    once = train(folk, tmp_path / "once", TINY, quick(epochs=6, learning_rate=1e-9, patience=1, decay=1))
    assert len(once["epochs"]) == 2 and once["stopped"].startswith("early stopping")
    short = train(folk, tmp_path / "short", TINY, quick(epochs=3, learning_rate=1e-9, patience=1))
    resumed = train(folk, tmp_path / "short", resume=True, changes={"epochs": 4})  # goes on where it was
    assert [e["learning_rate"] for e in short["epochs"]] == [1e-9, 1e-9, 5e-10]
    assert [e["learning_rate"] for e in resumed["epochs"]] == [1e-9, 1e-9, 5e-10, 2.5e-10]


def test_existing_output_is_never_overwritten_without_force(folk, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="already exists and is not empty"):
        train(folk, out, TINY, quick())
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(folk, tmp_path / "fresh", resume=True)


def test_a_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(folk, tmp_path):
    """Two runs into one folder: the second is refused while the first runs (prepare and train alike);
    the lock of a process that is gone (kill -9) does not block the next run."""
    from melody.corpus import prepare
    from melody.errors import MelodyError

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for folder, run in ((tmp_path / "model", lambda: train(folk, tmp_path / "model", TINY, quick(epochs=1))),
                            (tmp_path / "cache", lambda: prepare([folk], tmp_path / "cache", workers=1))):
            folder.mkdir()
            (folder / ".melody.lock").write_text(f"{holder.pid} train\n")
            with pytest.raises(MelodyError, match=f"in use by another melody run \\(process {holder.pid}\\)"):
                run()
            assert [p.name for p in folder.iterdir()] == [".melody.lock"]  # nothing written beside it
    finally:
        holder.kill()
        holder.wait()
    train(folk, tmp_path / "model", TINY, quick(epochs=1))  # the holder is gone: its lock is stale
    assert (tmp_path / "model" / "model.keras").is_file() and not (tmp_path / "model" / ".melody.lock").exists()


def test_a_run_killed_before_its_first_checkpoint_restarts_without_force(folk, one_epoch, tmp_path):
    """What a kill -9 during the first save leaves (settings, corpus, a temporary model) is neither
    resumable nor the user's: a plain run starts again there, and the temporary files go."""
    out = copy_of(one_epoch, tmp_path)
    for name in ("metrics.json", "model.keras"):
        (out / name).unlink()
    for path in (out / "checkpoint").iterdir():
        path.unlink()
    (out / f".model.{os.getpid()}.0a1b2c3d.tmp.keras").write_bytes(b"half a model")
    (out / "checkpoint" / ".epoch-1.99.00ff00ff.tmp.keras").write_bytes(b"half a checkpoint")
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(folk, out, resume=True)
    metrics = train(folk, out, TINY, quick(epochs=1, steps_per_epoch=3))
    assert metrics["epochs"][0]["epoch"] == 1
    assert not [p for p in out.rglob(".*") if p.name.endswith((".tmp", ".tmp.keras"))]


def test_force_deletes_only_what_melody_wrote(folk, one_epoch, tmp_path):
    out = copy_of(one_epoch, tmp_path)
    (out / "notes.txt").write_text("mine")
    (out / "checkpoint" / "backup-of-my-run.keras").write_text("mine too")
    train(folk, out, TINY, quick(epochs=1, steps_per_epoch=3), force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "checkpoint" / "backup-of-my-run.keras").read_text() == "mine too"
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == ["backup-of-my-run.keras", "epoch-1.keras",
                                                                       "state.json"]


def test_too_little_music_is_a_clear_error(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(corpus_files("folk")[0], one)
    with pytest.raises(TrainingError, match="training needs at least 2"):
        train(one, tmp_path / "m1", TINY, quick())
    shutil.copy(corpus_files("folk")[1], one)
    with pytest.raises(TrainingError, match="too few tokens for one training window"):
        train(one, tmp_path / "m2", TINY, quick(seq_len=5000))


def test_bundle_refuses_a_mismatched_tokenizer_and_version(one_epoch, tmp_path):
    out = copy_of(one_epoch, tmp_path)
    document = json.loads((out / "tokenizer.json").read_text())
    from melody.tokenizer import Tokenizer, TokenizerConfig
    Tokenizer(TokenizerConfig(velocity_bins=4)).save(out / "tokenizer.json", force=True)
    with pytest.raises(BundleError, match=r"velocities \(4,\) outside 0..3"):  # what training met, in 8 bins
        load_bundle(out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "velocities": None}))
    with pytest.raises(BundleError, match=r"does not match config.json and tokenizer.json \(embedding.input_dim = 608, "
                                          r"expected 604; logits.units = 608, expected 604\)"):
        load_bundle(out)
    (out / "tokenizer.json").write_text(json.dumps(document))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(BundleError, match="model format version 99"):
        load_bundle(out)
    with pytest.raises(BundleError, match="no such model folder"):
        load_bundle(tmp_path / "nowhere")


def test_resume_refuses_changed_settings_and_names_them(folk, one_epoch, tmp_path):
    out = copy_of(one_epoch, tmp_path)
    with pytest.raises(TrainingError, match=r"cannot change seq_len \(saved 32, asked 64\), units \(saved 32, asked 512\)"):
        train(folk, out, resume=True, changes={"units": 512, "seq_len": 64, "epochs": 2})
    resumed = train(folk, out, resume=True, changes={"epochs": 2, "units": 32})  # unchanged values are fine
    assert len(resumed["epochs"]) == 2


def test_init_from_default_names_the_shipped_model_and_the_run_records_it(folk, tmp_path):
    from melody.bundle import DEFAULT_MODEL
    from melody.info import info, info_text

    metrics = train(folk, tmp_path / "m", TINY, quick(epochs=1, steps_per_epoch=2), init_from="default")
    shipped = load_bundle(DEFAULT_MODEL)
    assert metrics["init_from"] == {"model": str(DEFAULT_MODEL), "tokens_matched": len(shipped.tokenizer),
                                    "tokens": len(shipped.tokenizer)}
    assert f"started from {DEFAULT_MODEL} ({len(shipped.tokenizer)} of" in info_text(info(tmp_path / "m"))


def test_init_from_copies_weights_by_token_name(folk, tmp_path):
    """A model started from another keeps its LSTM weights and, token by token, its embedding and logits;
    a plain LSTM starts a lookback model: the first kernel's rows for ``matched`` start at zero, between the
    embedding's and the ahead features' rows, which are copied."""
    from melody.tokenizer import Tokenizer, TokenizerConfig
    from melody.train import initialise_from
    from melody.model import build_model

    source = tmp_path / "source"
    train(folk, source, replace(TINY, lookback=()), quick(epochs=1, steps_per_epoch=3))
    trained = load_bundle(source)
    other = Tokenizer(TokenizerConfig(velocity_bins=4, max_tracks=40))  # 4 velocities fewer, 8 tracks more
    model = build_model(TINY, len(other), bar_tokens=other.bar_tokens())
    assert TINY.lookback == (1, 2, 4, 8)
    fresh = model.get_layer("embedding").get_weights()[0][other.ids["Track_35"]].copy()
    matched = initialise_from(model, TINY, source, other.kinds)
    assert matched == len(other) - 8  # Track_32..Track_39 have no namesake and keep their initial values
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0][other.ids["Track_35"]], fresh)
    mine, theirs = model.get_layer("embedding").get_weights()[0], trained.model.get_layer("embedding").get_weights()[0]
    for name in ("Note_60", "Bar_3_4", "Track_1", "Key_Am"):
        np.testing.assert_array_equal(mine[other.ids[name]], theirs[trained.tokenizer.ids[name]])
    np.testing.assert_array_equal(model.get_layer("logits").get_weights()[0][:, other.ids["Note_60"]],
                                  trained.model.get_layer("logits").get_weights()[0][:, trained.tokenizer.ids["Note_60"]])
    for a, b in zip(model.get_layer("lstm_1").get_weights(), trained.model.get_layer("lstm_1").get_weights()):
        np.testing.assert_array_equal(a, b)
    (kernel, *rest), (plain_kernel, *plain_rest) = (m.get_layer("lstm_0").get_weights() for m in (model, trained.model))
    assert len(kernel) == 16 + 4 + 29 and len(plain_kernel) == 16 + 29
    np.testing.assert_array_equal(kernel[:16], plain_kernel[:16])
    np.testing.assert_array_equal(kernel[16:20], np.zeros((4, kernel.shape[1])))
    np.testing.assert_array_equal(kernel[20:], plain_kernel[16:])
    for a, b in zip(rest, plain_rest):
        np.testing.assert_array_equal(a, b)


def test_precision_is_chosen_by_the_hardware_and_bfloat16_trains_anywhere(folk, tmp_path):
    """auto: bfloat16 only where it is native (the flags of /proc/cpuinfo, or a GPU); forced bfloat16 trains
    (emulated here if need be) and still saves float32 weights that load and sample anywhere."""
    from melody.distribute import resolve_precision

    assert resolve_precision("auto", "flags\t: fpu avx2 avx512f avx512_bf16\n")[0] == "bfloat16"
    assert resolve_precision("auto", "flags\t: fpu avx2 amx_bf16 amx_tile\n")[0] == "bfloat16"
    if resolve_precision("auto", "")[1] != "native on this machine (GPU)":
        assert resolve_precision("auto", "flags\t: fpu avx2 avx512f\n")[0] == "float32"
    assert resolve_precision("float32", "flags\t: avx512_bf16\n") == ("float32", "asked for")
    runs = {precision: train(folk, tmp_path / precision, TINY, quick(epochs=1, steps_per_epoch=60, learning_rate=0.01,
                                                                     precision=precision))
            for precision in ("float32", "bfloat16")}
    metrics = runs["bfloat16"]
    assert metrics["precision"] == "bfloat16 (asked for)" and math.isfinite(metrics["best_val_loss"])
    # the same steps learn the same: within 5% of float32's validation loss, and below the unigram baseline
    assert metrics["best_val_loss"] == pytest.approx(runs["float32"]["best_val_loss"], rel=0.05)
    assert metrics["best_val_loss"] < metrics["unigram_val_nll"]
    saved = load_bundle(tmp_path / "bfloat16").model
    assert {w.dtype for w in saved.get_weights()} == {np.dtype("float32")}
    # ... so generation's NumPy network runs it, predicting what Keras predicts
    from melody.bundle import read_manifest
    from melody.generate import numpy_network
    from melody.model import plain_inputs
    tokens = np.arange(1, 40) % 600
    expected = saved(plain_inputs(saved, tokens[None].astype("int32"))).numpy()[0, -1]
    logits = numpy_network(read_manifest(tmp_path / "bfloat16")).prime(tokens)[0][0]
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    assert {layer.dtype_policy.name for layer in saved.layers if hasattr(layer, "dtype_policy")} == {"float32"}
    import keras
    assert keras.mixed_precision.global_policy().name == "float32"  # training leaves the process as it found it


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_from_the_command_line(folk, tmp_path):
    out = tmp_path / "model"
    command = melody_command("train", folk, "--out", out, "--units", 16, "--embedding", 8, "--batch-size", 4,
                             "--seq-len", 16, "--epochs", 2, "--quiet")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ})
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while not state.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert state.exists(), process.stderr.read().decode()[-800:] if process.poll() is not None else "timeout"
    process.send_signal(signal.SIGKILL)  # in the middle of epoch 2
    process.wait()
    assert json.loads(state.read_text())["epoch"] == 1
    result = subprocess.run(command[:7] + ["--resume", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-800:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert "Trained" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("signal_number, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_training_and_says_how_to_resume(folk, tmp_path, signal_number, code):
    out = tmp_path / "model"
    command = melody_command("train", folk, "--out", out, "--units", 16, "--embedding", 8, "--batch-size", 4,
                             "--seq-len", 16, "--epochs", 50, "--quiet", as_from_a_terminal=True)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (out / "checkpoint" / "state.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(0.3)  # into the next epoch
    process.send_signal(signal_number)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"no exit 60 s after {signal.Signals(signal_number).name}")
    assert process.returncode == code, stderr.decode()[-500:]
    assert stderr.decode().strip().splitlines()[-1] == \
        f"Interrupted; continue with: melody train {folk} --out {out} --resume"
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert (out / "checkpoint" / state["checkpoint"]).is_file() and state["step"] >= 1


def test_an_interrupted_epoch_resumes_where_it_stopped_and_ends_as_an_uninterrupted_run(folk, tmp_path):
    """Ctrl-C after the last step of epoch 1 (its validation not yet measured), then SIGTERM in the middle of
    epoch 2: each time a checkpoint where training stopped; resumed twice, the run ends bit for bit as one
    that was never stopped (batches, dropout masks and the optimizer continue where they were)."""
    from melody.interrupts import Interrupted
    from melody.train import Report

    class SignalAt(Report):
        def __init__(self, step, number):
            self.at, self.number = step, number

        def step(self, step, loss, tokens_per_second):
            if step == self.at:
                os.kill(os.getpid(), self.number)

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    straight = train(folk, tmp_path / "a", TINY, quick(epochs=2))
    with pytest.raises(Interrupted) as first:
        train(folk, tmp_path / "b", TINY, quick(epochs=2), report=SignalAt(40, signal.SIGINT))
    assert first.value.exit_code == 130 and first.value.checkpoint
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"], len(state["epoch_losses"]), state["epochs"]) == (0, 40, 40, [])
    with pytest.raises(Interrupted) as second:
        train(folk, tmp_path / "b", resume=True, report=SignalAt(53, signal.SIGTERM))
    assert second.value.exit_code == 143
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert (state["epoch"], state["step"], state["checkpoint"]) == (1, 53, "epoch-1-step-53.keras")
    resumed = train(folk, tmp_path / "b", resume=True)
    without_times = [{k: v for k, v in e.items() if k != "seconds"} for e in straight["epochs"]]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in resumed["epochs"]] == without_times
    for a, b in zip(load_bundle(tmp_path / "a").model.get_weights(), load_bundle(tmp_path / "b").model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # left as they were


def test_the_shared_corpus_cache_follows_content_not_file_times(tmp_path, monkeypatch):
    """``melody train FOLDER`` prepares FOLDER into $MELODY_CACHE: a file rewritten with the same size and
    time is read again (the cache is keyed on content), and old corpora beyond MAX_SHARED_CORPORA go."""
    from melody.corpus import MAX_SHARED_CORPORA, corpus_cache
    from melody.train import Report

    monkeypatch.setenv("MELODY_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "songs"
    folder.mkdir()
    for path in corpus_files("folk")[:2]:
        shutil.copy(path, folder / path.name)
    before = corpus_cache(folder, None, Report())
    tokens = np.array(before.tokens)
    song = folder / corpus_files("folk")[0].name
    data, stamp = bytearray(song.read_bytes()), song.stat()
    at = data.index(b"\x90") + 1
    data[at] += 1  # one pitch a semitone higher: same size
    song.write_bytes(bytes(data))
    os.utime(song, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    after = corpus_cache(folder, None, Report())
    assert after.folder == before.folder and after.report["summary"]["reused"] == 1
    assert after.tokens.size == tokens.size and (np.asarray(after.tokens) != tokens).sum() >= 1
    for index in range(MAX_SHARED_CORPORA):
        other = tmp_path / f"other{index}"
        other.mkdir()
        shutil.copy(song, other / song.name)
        corpus_cache(other, None, Report())
    assert not after.folder.exists()  # the least recently used of nine
    assert len(list((tmp_path / "cache" / "corpora").iterdir())) == MAX_SHARED_CORPORA


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_real_runs_into_one_folder_one_succeeds_and_the_other_says_why(folk, tmp_path):
    """Two melody processes, the second started while the first holds the folder: the second is refused
    naming the first, and the first's output is whole (prepare and train alike)."""
    from melody.corpus import TokenCache

    melody = melody_command()
    runs = {"prepare": [*melody, "prepare", CORPORA / "chorales", "--out", tmp_path / "cache", "-j", "1", "-q"],
            "train": [*melody, "train", tmp_path / "cache", "--out", tmp_path / "model", "--units", 16,
                      "--embedding", 8, "--seq-len", 32, "--batch-size", 8, "--max-steps", 30, "-q"]}
    for task, command in runs.items():
        folder = tmp_path / task.replace("prepare", "cache").replace("train", "model")
        first = subprocess.Popen(list(map(str, command)), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            wait_for(lambda: (folder / ".melody.lock").exists() or first.poll() is not None)
            second = subprocess.run(list(map(str, command)), cwd=ROOT, capture_output=True, text=True, timeout=120)
            out, err = first.communicate(timeout=300)
        finally:
            first.kill()
        assert first.returncode == 0, err[-500:]
        assert second.returncode == 2 and second.stderr.strip() == (
            f"Error: {folder} is in use by another melody run (process {first.pid}); wait for it to finish "
            "or stop it"), second.stderr
        assert not (folder / ".melody.lock").exists()
    assert len(TokenCache(tmp_path / "cache")) == len(corpus_files("chorales"))
    trained = read_manifest(tmp_path / "model")
    assert trained.train_config.max_steps == 30 and trained.metrics["steps"] == 30


def test_a_network_too_big_for_its_music_and_a_run_still_improving_are_said(tmp_path):
    """Eleven tunes for a 2 x 64 network: a note at the start (fewer tokens than parameters, with the way out);
    two epochs that both improve: a note at the end saying how to train on."""
    folder = tmp_path / "tunes"
    folder.mkdir()
    for path in corpus_files("folk")[:11]:
        shutil.copy(path, folder)
    result = CliRunner().invoke(cli, ["train", str(folder), "--out", str(tmp_path / "m"), "--units", "64",
                                      "--epochs", "2", "--steps-per-epoch", "30", "--batch-size", "8", "--seq-len",
                                      "32", "--learning-rate", "0.01", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "training tokens for" in result.output and "--init-from default" in result.output
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    if metrics["best_epoch"] == 2:
        assert f"--out {tmp_path / 'm'} --resume --epochs 4" in result.output
    else:
        assert "still falling" not in result.output
