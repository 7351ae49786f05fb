"""Where training runs: one device, this machine's GPUs, or several machines, through TensorFlow's
own engine for it, ``tf.distribute``.

Strategies (``melody train --strategy``):

* ``one``: no distribution: TensorFlow's default strategy on this process's device.
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's GPUs (on a machine
  without one it runs as a single replica on the CPU, and says so).
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the processes the
  standard ``TF_CONFIG`` names, or ``--cluster host:port,host:port --task-index i``.
* ``auto``: ``multiworker`` when ``TF_CONFIG`` is set, ``mirrored`` with two or more GPUs,
  else ``one``.

However training is spread, it computes what one process would: every worker draws the
same global batch from (seed, epoch, step) and each replica trains on its own rows of it
(``local_rows``), so the replicas see disjoint windows; their gradients are summed across
replicas before they are clipped and applied (``train.py``), as one process would. Only
the chief (worker 0) writes the model folder, its checkpoints and metrics. Collective
operations give up after ``worker_timeout()`` seconds, and so does waiting for the workers
to start (``meet``), so a worker that dies or never starts ends the others with an error
instead of a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from melody.errors import TrainingError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")
WORKER_TIMEOUT = 120  # seconds a collective operation waits for the other workers ($MELODY_WORKER_TIMEOUT)
PRECISIONS = ("auto", "float32", "bfloat16")  # ``TrainConfig.precision``


def native_bfloat16(cpuinfo: str | None = None) -> str | None:
    """Why this machine computes bfloat16 natively ('GPU', or the CPU flag: 'avx512_bf16', 'amx_bf16'),
    or None. ``cpuinfo``: the text of /proc/cpuinfo (read when None; absent off Linux)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "GPU"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return next((flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags), None)


def resolve_precision(requested: str, cpuinfo: str | None = None) -> tuple[str, str]:
    """(the precision to train in, why): 'auto' is bfloat16 mixed precision where the hardware computes
    bfloat16 natively (there it trained 1.5x faster), else float32 (emulated bfloat16 is slower)."""
    if requested != "auto":
        return requested, "asked for"
    native = native_bfloat16(cpuinfo)
    return ("bfloat16", f"native on this machine ({native})") if native else \
        ("float32", "this machine has no native bfloat16 (no avx512_bf16 or amx_bf16, no GPU)")



@dataclass
class Placement:
    """The strategy training runs under and this process's place in it."""

    strategy: object  # a tf.distribute.Strategy
    name: str         # "one", "mirrored" or "multiworker"
    worker: int       # this process's index among the workers (0: the chief)
    workers: int
    replicas: int     # replicas in sync, over all workers

    @property
    def is_chief(self) -> bool:
        return self.worker == 0

    def describe(self) -> str:
        if self.name == "one":
            return "one process"
        if self.name == "mirrored" and self.replicas == 1:
            return "mirrored: one replica, on the CPU (no GPU found)"
        where = f"worker {self.worker} of {self.workers}, " if self.workers > 1 else ""
        return f"{self.name}: {where}{self.replicas} replica{'s' if self.replicas > 1 else ''} in sync"


def cluster_config(cluster: str | None, task_index: int | None) -> str | None:
    """The cluster of a run as TF_CONFIG text: from ``cluster`` ('host:port,host:port,...') and this process's
    ``task_index`` in it when given (both or neither), else the TF_CONFIG environment variable (None: unset)."""
    if (cluster is None) != (task_index is None):
        raise TrainingError("--cluster and --task-index go together")
    if cluster is None:
        return os.environ.get("TF_CONFIG") or None
    workers = [address.strip() for address in cluster.split(",") if address.strip()]
    for address in workers:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise TrainingError(f"--cluster: {address!r} is not host:port")
    if not 0 <= task_index < len(workers):
        raise TrainingError(f"--task-index {task_index} is not a worker of the {len(workers)} in --cluster "
                            f"(0 to {len(workers) - 1})")
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": task_index}})


def workers_in(tf_config: str | None) -> tuple[int, int] | None:
    """(this worker's index, number of workers) from TF_CONFIG's text; None if unset.
    TrainingError for a TF_CONFIG melody cannot use (only "worker" tasks take part)."""
    if not tf_config:
        return None
    try:
        config = json.loads(tf_config)
        workers, task = config["cluster"]["worker"], config["task"]
        index = int(task["index"])
        if task.get("type") != "worker" or not isinstance(workers, list) or not 0 <= index < len(workers):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise TrainingError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
                            '"task": {"type": "worker", "index": 0}}') from None
    return index, len(workers)


def place(requested: str, cluster: str | None) -> Placement:
    """The strategy for ``requested`` (one of STRATEGIES) on this machine, in ``cluster`` (TF_CONFIG text, see
    ``cluster_config``; None: no cluster)."""
    import tensorflow as tf

    tf_config = workers_in(cluster)
    gpus = len(tf.config.list_physical_devices("GPU"))
    name = requested if requested != "auto" else \
        "multiworker" if tf_config else "mirrored" if gpus >= 2 else "one"
    if name == "multiworker":
        if tf_config is None:
            raise TrainingError("--strategy multiworker needs TF_CONFIG (or --cluster and --task-index)")
        worker, workers = tf_config
        addresses = json.loads(cluster)["cluster"]["worker"]
        meet(addresses, worker, worker_timeout())
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=worker_timeout())
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": addresses}), task_type="worker", task_id=worker, rpc_layer="grpc")
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    elif name == "mirrored":
        strategy, worker, workers = tf.distribute.MirroredStrategy(), 0, 1
    else:
        strategy, worker, workers = tf.distribute.get_strategy(), 0, 1
    return Placement(strategy, name, worker, workers, strategy.num_replicas_in_sync)


def meet(addresses: list[str], me: int, seconds: float) -> None:
    """Wait until every worker of the cluster is up; TrainingError after ``seconds``.

    TensorFlow's own start-up waits for the cluster without a limit, inside a call that
    answers no signal, so the workers meet first: each listens on its own address and
    connects to every other one, and goes on once it has reached them all and been reached
    by them all. Then the listener closes and TensorFlow takes the port.
    """
    port = int(addresses[me].rpartition(":")[2])
    others = {index for index in range(len(addresses)) if index != me}
    unreached, heard, deadline = set(others), 0, time.monotonic() + seconds
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("", port))
        except OSError as error:
            raise TrainingError(f"worker {me}: cannot listen on port {port} ({error.strerror or error})") from None
        listener.listen(len(addresses))
        listener.settimeout(0.2)
        while unreached or heard < len(others):
            if time.monotonic() > deadline:
                missing = ", ".join(addresses[index] for index in sorted(unreached)) or "some of them"
                raise TrainingError(f"worker {me} of {len(addresses)}: the other workers did not join within "
                                    f"{seconds:.0f} s (not reached: {missing}); start melody train with the "
                                    "same --cluster (or TF_CONFIG) on every one of them")
            for index in sorted(unreached):
                host, _, other_port = addresses[index].rpartition(":")
                with contextlib.suppress(OSError), socket.create_connection((host, int(other_port)), timeout=0.5):
                    unreached.discard(index)
            with contextlib.suppress(socket.timeout):
                listener.accept()[0].close()
                heard += 1


def worker_timeout() -> float:
    """Seconds a collective operation waits for the other workers: $MELODY_WORKER_TIMEOUT, else WORKER_TIMEOUT."""
    text = os.environ.get("MELODY_WORKER_TIMEOUT", "")
    try:
        seconds = float(text) if text else WORKER_TIMEOUT
        if not 0 < seconds < 86_400:
            raise ValueError
    except ValueError:
        raise TrainingError(f"MELODY_WORKER_TIMEOUT must be a number of seconds, got {text!r}") from None
    return seconds


def local_rows(batch: int, placement: Placement) -> list[slice]:
    """For each replica on this worker, its rows of a global batch of ``batch`` windows."""
    if batch % placement.replicas:
        raise TrainingError(f"--batch-size {batch} does not split evenly over {placement.replicas} replicas")
    share, local = batch // placement.replicas, placement.replicas // placement.workers
    first = placement.worker * local
    return [slice((first + index) * share, (first + index + 1) * share) for index in range(local)]


def is_chief(requested: str, cluster: str | None) -> bool:
    """Whether this process writes the model folder (known before TensorFlow loads): always, but for the
    workers other than worker 0 of a multi-worker run in ``cluster`` (TF_CONFIG text)."""
    if requested in ("one", "mirrored"):
        return True
    found = workers_in(cluster)
    return found is None or found[0] == 0
