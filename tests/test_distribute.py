"""Training spread over workers with tf.distribute: two real worker processes on loopback.

Every wait is bounded (subprocess timeouts; collectives time out after WORKER_TIMEOUT).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import CORPORA, ROOT, melody_command
from melody.distribute import Placement, cluster_config, is_chief, local_rows, workers_in
from melody.errors import TrainingError

TINY = ["--units", 32, "--embedding", 16, "--seq-len", 32, "--batch-size", 8, "--dropout", 0, "--quiet"]


def test_cluster_flags_become_tf_config_and_bad_ones_are_refused(monkeypatch):
    config = json.loads(cluster_config("a:2222, b:2223", 1))
    assert config == {"cluster": {"worker": ["a:2222", "b:2223"]}, "task": {"type": "worker", "index": 1}}
    assert workers_in(json.dumps(config)) == (1, 2) and workers_in(None) is None
    with pytest.raises(TrainingError, match="--task-index 2 is not a worker of the 2"):
        cluster_config("a:1,b:2", 2)
    with pytest.raises(TrainingError, match="'a' is not host:port"):
        cluster_config("a,b:2", 0)
    with pytest.raises(TrainingError, match="TF_CONFIG must be JSON like"):
        workers_in('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}')
    with pytest.raises(TrainingError, match="--cluster and --task-index go together"):
        cluster_config("a:1,b:2", None)
    assert not is_chief("auto", json.dumps(config)) and not is_chief("multiworker", json.dumps(config))
    assert is_chief("one", json.dumps(config)) and is_chief("auto", None)
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))  # without --cluster, the environment's cluster
    assert cluster_config(None, None) == json.dumps(config)
    monkeypatch.delenv("TF_CONFIG")
    assert cluster_config(None, None) is None


def test_each_replica_trains_on_its_own_rows_of_the_global_batch():
    def rows(worker, workers, replicas):
        return local_rows(8, Placement(None, "multiworker", worker, workers, replicas))

    assert rows(0, 1, 1) == [slice(0, 8)]
    assert rows(1, 2, 2) == [slice(4, 8)]
    assert rows(1, 2, 4) == [slice(4, 6), slice(6, 8)]  # two GPUs on each of two machines
    with pytest.raises(TrainingError, match="--batch-size 8 does not split evenly over 3 replicas"):
        rows(0, 3, 3)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("localhost", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports


def run_workers(source, outs, *args, alone=None, timeout=300) -> list[subprocess.CompletedProcess]:
    """``melody train`` as a cluster of len(outs) workers on loopback, worker i writing to outs[i]; with
    ``alone`` (a folder), one more run of the same command without a cluster beside them, its result last."""
    cluster = ",".join(f"localhost:{port}" for port in free_ports(len(outs)))
    commands = [melody_command("train", source, "--out", out, *args, "--cluster", cluster, "--task-index", index)
                for index, out in enumerate(outs)]
    commands += [melody_command("train", source, "--out", alone, *args)] if alone else []
    processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for command in commands]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    finally:
        for process in processes:
            process.kill()
    return results


def epochs(folder) -> list[tuple[float, float]]:
    return [(entry["loss"], entry["val_loss"]) for entry in json.loads((folder / "metrics.json").read_text())["epochs"]]


@pytest.mark.slow
def test_two_workers_train_as_one_process_would_and_only_the_chief_writes(tmp_path):
    """Same global batch and seed: the losses of a 2-worker run match one process's within 1e-4 (they
    differ only by the order of floating-point sums), before and after --resume; the second worker
    writes nothing (to resume, every worker reads the chief's checkpoint: here the same folder, on a
    cluster a shared disk); the chief's folder is a model folder like any other and generates."""
    source = CORPORA / "chorales"
    chief, other, single = tmp_path / "chief", tmp_path / "other", tmp_path / "single"
    for steps, resume, outs in ((12, [], [chief, other]), (24, ["--resume"], [chief, chief])):
        results = run_workers(source, outs, *TINY, "--max-steps", steps, *resume, alone=single)
        for result in results:
            assert result.returncode == 0, result.stderr[-1500:]
        assert "Strategy: multiworker: worker 0 of 2, 2 replicas in sync" in results[0].stderr
        assert not other.exists()
        together, one = epochs(chief), epochs(single)
        assert len(together) == len(one) == (1 if steps == 12 else 2)
        np.testing.assert_allclose(together, one, atol=1e-4)
    assert sorted(p.name for p in chief.rglob("*")) == sorted(p.name for p in single.rglob("*"))
    generated = subprocess.run(melody_command("generate", "--model", chief, "--bars", 2, "--out", tmp_path / "g.mid"),
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0 and (tmp_path / "g.mid").stat().st_size > 100, generated.stderr


@pytest.mark.slow
def test_a_worker_that_dies_ends_the_other_with_a_clear_error(tmp_path):
    cluster = ",".join(f"localhost:{port}" for port in free_ports(2))
    env = {**os.environ, "MELODY_WORKER_TIMEOUT": "20"}
    workers = [subprocess.Popen(melody_command("train", CORPORA / "chorales", "--out", tmp_path / f"w{index}", *TINY,
                                       "--max-steps", 100_000, "--cluster", cluster, "--task-index", index),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for index in range(2)]
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "w0" / "config.json").exists():  # the chief writes it once the network is built
            assert time.monotonic() < deadline and workers[0].poll() is None, workers[0].stderr.read()[-1500:]
            time.sleep(0.2)
        time.sleep(2)
        workers[1].kill()
        started = time.monotonic()
        _, err = workers[0].communicate(timeout=180)
        waited = time.monotonic() - started
    finally:
        for worker in workers:
            worker.kill()
    assert workers[0].returncode == 2, err[-1500:]
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "worker 0 of 2: the other workers stopped answering" in lines[0], err[-1500:]
    assert "--resume" in lines[0] and waited < 150


def test_mirrored_on_a_machine_without_gpus_runs_one_replica_and_says_so(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has GPUs")
    result = subprocess.run(melody_command("train", CORPORA / "chorales", "--out", tmp_path / "m", *TINY, "--max-steps", 3,
                                   "--strategy", "mirrored"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "Strategy: mirrored: one replica, on the CPU (no GPU found)" in result.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["steps"] == 3


@pytest.mark.slow
def test_a_worker_that_never_starts_ends_the_other_with_a_clear_error(tmp_path):
    """TensorFlow waits for the cluster without a limit; melody's workers meet first, within the timeout."""
    cluster = ",".join(f"localhost:{port}" for port in free_ports(2))
    result = subprocess.run(melody_command("train", CORPORA / "chorales", "--out", tmp_path / "alone", *TINY, "--max-steps", 3,
                                   "--cluster", cluster, "--task-index", 0), cwd=ROOT, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "MELODY_WORKER_TIMEOUT": "5"})
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-1500:]
    assert lines[0].startswith("Error: worker 0 of 2: the other workers did not join within 5 s (not reached: "
                               f"{cluster.split(',')[1]})")
    assert not (tmp_path / "alone" / ".melody.lock").exists()
