"""Training: a MIDI folder (or token cache) in, a self-contained model folder out.

One epoch is ``steps_per_epoch`` batches of random windows (by default as many
as the training tokens fill once). After each epoch the validation loss is
measured; the best model so far is kept as ``model.keras``; a checkpoint with
the optimizer state is written atomically; training stops early when the
validation loss has not improved for ``patience`` epochs, or at ``max_steps``; but
while the learning rate may still be cut (``decay``, ``LOWEST_RATE``), a plateau cuts it instead.
``resume=True`` continues from the last checkpoint and, because every batch is
drawn from (seed, epoch, step), ends where an uninterrupted run would.

Each step is ``_train_step``: the gradient of the mean loss per token, summed across
the replicas of a ``tf.distribute`` strategy (``melody.distribute``), clipped per weight,
applied by Adam. It is written here rather than left to Keras's ``fit``, which does not
run under ``MultiWorkerMirroredStrategy`` in Keras 3 (keras-team/keras#20585); on one
process it computes what ``fit`` did.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from melody import bundle
from melody.baselines import token_counts, unigram_nll
from melody.corpus import TokenCache, corpus_cache
from melody.dataset import WindowSampler, split_pieces, training_dataset, tune_fingerprints, validation_windows
from melody.distribute import STRATEGIES, Placement, cluster_config, is_chief, local_rows, place, resolve_precision
from melody.errors import OutputExistsError, TrainingError
from melody.files import folder_lock, holds_files
from melody.interrupts import Interrupted, Stop
from melody.model import ModelConfig, build_model, load_keras, parameter_count, plain_inputs, transfer_weights
from melody.tokenizer import TokenizerConfig
from melody.train_config import LOWEST_RATE, TrainConfig
from melody.vocabulary import Vocabulary


class Report:
    """What training tells its user; the command line shows it, tests may record it."""

    def preparing(self, files: int) -> None: ...
    def prepared(self, entry: dict) -> None: ...
    def start(self, total_steps: int, first_step: int, summary: dict) -> None: ...
    def step(self, step: int, loss: float, tokens_per_second: float) -> None: ...
    def epoch(self, entry: dict, improved: bool) -> None: ...


# ----------------------------------------------------------------------------- the corpus

@dataclass
class TrainingData:
    sampler: WindowSampler
    validation: np.ndarray  # (windows, seq_len + 1)
    summary: dict
    pieces: tuple[list[np.ndarray], list[np.ndarray]]  # (training, validation) views into the cache
    names: tuple[list[str], list[str]]  # their file names
    programs: set[int]  # instruments the training pieces' headers declare (-1: drums)
    learned: dict  # what training met: the most tracks, the velocity bins, the lowest and highest note (transposed)


def training_data(cache: TokenCache, config: TrainConfig, ahead: bool = False) -> TrainingData:
    """Split by file (a tune held twice on one side), check there is enough of each side, and measure the
    unigram baseline; ``ahead``: training windows come with ``melody.ahead``'s features."""
    if len(cache) < 2:
        raise TrainingError(f"only {len(cache)} readable MIDI file; training needs at least 2 "
                            "(one is held out for validation)")
    train_pieces, val_pieces = split_pieces(len(cache), config.val_split, config.random_seed,
                                            tune_fingerprints(cache))
    sampler = WindowSampler(cache, train_pieces, config.seq_len, config.max_transpose, ahead)
    if sampler.windows == 0:
        raise TrainingError(f"too few tokens for one training window of {config.seq_len + 1} tokens "
                            f"({sampler.tokens_total} training tokens); lower --seq-len or add music")
    validation = validation_windows(cache, val_pieces, config.seq_len)
    if len(validation) == 0:
        raise TrainingError(f"the validation files hold fewer than {config.seq_len + 1} tokens; "
                            "raise --val-split or lower --seq-len")
    pieces = tuple([cache.piece(i) for i in side] for side in (train_pieces, val_pieces))
    counts = sum((token_counts(piece, len(cache.tokenizer)) for piece in pieces[0]),
                 np.zeros(len(cache.tokenizer), dtype=np.int64))
    tokenizer = cache.tokenizer
    programs = set().union(*(tokenizer.programs(piece[:tokenizer.header_length(piece)]) for piece in pieces[0]))
    table, seen = tokenizer.token_table(), counts > 0
    pitches = table["pitch_of"][seen & (table["pitch_of"] >= 0)]
    learned = {"tracks": max(len(tokenizer.tracks(piece)) for piece in pieces[0]),
               "velocities": sorted(int(bin_) for bin_ in table["velocity_of"][seen] if bin_ >= 0),
               "pitches": [max(int(pitches.min(initial=127)) - config.max_transpose, 0),  # as training transposes
                           min(int(pitches.max(initial=0)) + config.max_transpose, 127)]}
    summary = {**{key: cache.report["summary"][key] for key in ("files", "ok", "skipped", "tokens")},
               "cache": str(cache.folder), "train_files": len(train_pieces), "val_files": len(val_pieces),
               "train_tokens": sampler.tokens_total, "val_tokens": int(validation[:, 1:].size),
               "unigram_val_nll": round(unigram_nll(counts, validation[:, 1:]), 4)}
    files = [entry["path"] for entry in cache.report["files"] if entry["status"] == "ok"]
    names = tuple([files[i] for i in side] for side in (train_pieces, val_pieces))
    return TrainingData(sampler, validation, summary, pieces, names, programs, learned)


# ----------------------------------------------------------------------------- the run

def train(source, out, model_config: ModelConfig | None = None, config: TrainConfig | None = None,
          tokenizer: TokenizerConfig | None = None, resume: bool = False, force: bool = False,
          report: Report | None = None, changes: dict | None = None, init_from=None, strategy: str = "auto",
          cluster: str | None = None, task_index: int | None = None) -> dict:
    """Train on ``source`` into the model folder ``out``; returns the final metrics.

    ``tokenizer``: how a MIDI folder is tokenized (a token cache brings its own).
    With ``resume``, the settings saved in ``out`` are used and training continues from
    the last checkpoint; ``changes`` (setting name -> value) may raise ``epochs``,
    ``max_steps`` or ``patience``, any other change is refused. ``init_from``: a model
    folder whose weights start this run (see ``initialise_from``; "default": the shipped
    model), recorded in the metrics with how many tokens it matched. ``strategy``: where
    training runs (``melody.distribute``); ``cluster`` ('host:port,host:port,...') and
    ``task_index`` name the workers of a multi-worker run and this one's place among them (default:
    the TF_CONFIG environment variable). Only the chief, worker 0, writes ``out``.
    """
    if strategy not in STRATEGIES:
        raise TrainingError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if resume and init_from is not None:
        raise TrainingError("init-from starts a new run from another model's weights; it cannot be combined with "
                            "resume")
    init_from = None if init_from is None else bundle.model_folder(init_from)
    request = _Request(source, Path(out), model_config, config, tokenizer, resume, force, report or Report(),
                       changes or {}, init_from, strategy, cluster_config(cluster, task_index))
    try:
        with Stop() as stop:
            if not request.writes:  # another worker: the chief checks, locks and writes the folder
                if init_from is not None:
                    bundle.initialising_vocabulary(init_from)
                return _train(request, stop)
            return _train_locked(request, stop)
    except Interrupted as interrupted:
        interrupted.checkpoint = request.writes and bundle.checkpoint_state(request.out) is not None
        raise


@dataclass
class _Request:
    """What ``train`` was asked; ``cluster``: TF_CONFIG text (None: one machine)."""

    source: object
    out: Path
    model_config: ModelConfig | None
    config: TrainConfig | None
    tokenizer: TokenizerConfig | None
    resume: bool
    force: bool
    report: Report
    changes: dict
    init_from: object
    strategy: str
    cluster: str | None

    @property
    def writes(self) -> bool:
        return is_chief(self.strategy, self.cluster)


def _train_locked(request: _Request, stop: Stop) -> dict:
    """``_train`` holding the model folder's lock (the chief's run)."""
    out = request.out
    created = not out.exists()
    _check_output(out, request.resume, request.force)  # at once, before any work; again below under the lock
    if request.init_from is not None:
        bundle.initialising_vocabulary(request.init_from)  # a wrong folder is reported before any work
    try:
        with folder_lock(out, "train"):  # a second run into the same folder is refused
            return _train(request, stop)
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # a run that failed before writing anything leaves no empty folder behind


def _train(request: _Request, stop: Stop) -> dict:
    out, writes = request.out, request.writes
    state = _check_output(out, request.resume, request.force or not writes)
    if writes:
        bundle.remove_temporaries(out)  # left by a killed run: this run holds the folder now
    model_config, config, tokenizer = request.model_config, request.config, request.tokenizer
    if request.resume:
        model_config, config, tokenizer = _resumed_configs(out, request.changes)
    model_config, config = model_config or ModelConfig(), config or TrainConfig()
    cache = corpus_cache(request.source, tokenizer, request.report)
    data = training_data(cache, config, model_config.ahead)
    if not request.resume and writes:
        bundle.clear(out)

    keras = load_keras()  # only now: the corpus above is prepared in forked workers, before TensorFlow loads
    placement = place(request.strategy, request.cluster)
    data.summary["strategy"] = placement.describe()
    rows = local_rows(config.batch_size, placement)  # checked before the network is built

    keras.utils.set_random_seed(config.random_seed)
    precision, why = state["precision"] if state and "precision" in state else resolve_precision(config.precision)
    data.summary["precision"] = f"{precision} ({why})"
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
        with placement.strategy.scope():  # variables (the optimizer's too) are created under the strategy
            model, state = _network(out, state, model_config, config, request.init_from, cache, precision, why)
        data.summary["init_from"] = state.get("init_from")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if writes:
        bundle.save_config(out, model_config, config, cache.tokenizer, data.programs, data.learned)
        bundle.save_corpus(out, *data.pieces, names=data.names)
    best_copy = build_model(model_config, len(cache.tokenizer), bar_tokens=cache.tokenizer.bar_tokens())
    with _memory_guard(model_config, config), _worker_guard(placement):
        run = Run(model, placement, rows, out if writes else None, stop)
        metrics = _epochs(run, best_copy, data, config, state, request.report, parameter_count(best_copy))
    return {**metrics, "worker": placement.worker}


def _network(out: Path, state, model_config, config, init_from, cache, precision, why):
    """(the network to train, the run's state): from the checkpoint in ``out`` if ``state``, else new."""
    keras = load_keras()
    if state:
        model = bundle.load_checkpoint(out, state)
    else:
        with _memory_guard(model_config, config):
            model = build_model(model_config, len(cache.tokenizer), bar_tokens=cache.tokenizer.bar_tokens())
        matched = None if init_from is None else initialise_from(model, model_config, init_from,
                                                                  cache.tokenizer.kinds)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),  # clipped in ``_train_step``
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        state = {"epoch": 0, "step": 0, "best_val_loss": None, "bad_epochs": 0, "epochs": [], "seconds": 0.0,
                 "precision": [precision, why]}
        if init_from is not None:
            state["init_from"] = {"model": str(init_from), "tokens_matched": matched,
                                  "tokens": len(cache.tokenizer)}
    model.optimizer.build(model.trainable_variables)
    return model, state


@contextlib.contextmanager
def _memory_guard(model_config: ModelConfig, config: TrainConfig):
    """Running out of memory (in Python or in TensorFlow) becomes a TrainingError saying what to change."""
    import tensorflow as tf

    try:
        yield
    except (MemoryError, tf.errors.ResourceExhaustedError) as error:
        raise TrainingError(f"out of memory for a {model_config.layers} x {model_config.units} network on batches "
                            f"of {config.batch_size} x {config.seq_len} ({type(error).__name__}); try fewer "
                            "--units or a smaller --batch-size") from None


RESUMABLE_CHANGES = ("epochs", "max_steps", "patience", "decay")


def _resumed_configs(out: Path, changes: dict) -> tuple[ModelConfig, TrainConfig, TokenizerConfig]:
    """The settings saved in ``out``, with ``changes`` applied where a resumed run may change them."""
    manifest = bundle.read_manifest(out)
    saved = {**asdict(manifest.model_config), **asdict(manifest.train_config)}
    refused = sorted(name for name, value in changes.items() if name not in RESUMABLE_CHANGES and name in saved
                     and saved[name] != (tuple(value) if isinstance(value, list) else value))
    if refused:
        listing = ", ".join(f"{name} (saved {saved[name]!r}, asked {changes[name]!r})" for name in refused)
        raise TrainingError(f"{out}: a resumed run keeps the settings it started with; cannot change {listing}")
    try:
        config = replace(manifest.train_config, **{k: v for k, v in changes.items() if k in RESUMABLE_CHANGES})
    except (TypeError, ValueError) as error:
        raise TrainingError(f"{out}: {error}") from None
    return manifest.model_config, config, manifest.tokenizer.config


def initialise_from(model, config: ModelConfig, folder, vocabulary: Vocabulary) -> int:
    """Copy weights from the model in ``folder`` into ``model`` (built from ``config``), tokens matched by
    name (``melody.model.transfer_weights``); returns how many tokens were matched. A token with no
    namesake takes the row of the plain token of its kind if the source has one (an older vocabulary's
    ``Bar`` for every ``Bar_n_d``), else keeps its fresh initial value."""
    source, names = bundle.load_for_initialising(folder)
    rows = vocabulary.rows_in(names)
    transfer_weights(model, config, source, rows)
    return int((rows >= 0).sum())


def _check_output(out: Path, resume: bool, force: bool) -> dict | None:
    """Check the model folder (changing nothing); the checkpoint state when resuming, else None."""
    if resume:
        state = bundle.checkpoint_state(out)
        if state is None:
            raise TrainingError(f"{out}: nothing to resume (no checkpoint yet); start without resuming")
        return state
    if holds_files(out) and not force and not (out.is_dir() and bundle.unfinished(out)):
        raise OutputExistsError(f"{out} already exists and is not empty")
    return None


@dataclass
class Run:
    """The network in training, where it runs, and where it is saved (None on workers other than the chief)."""

    model: object
    placement: Placement
    rows: list[slice]  # this worker's replicas' rows of each global batch
    out: Path | None
    stop: Stop  # Ctrl-C and SIGTERM: answered between steps


def _epochs(run: Run, best_copy, data: TrainingData, config: TrainConfig, state: dict, report: Report,
            parameters: int) -> dict:
    steps_per_epoch = config.steps_per_epoch or max(1, data.sampler.tokens_total //
                                                    (config.batch_size * config.seq_len))
    total = steps_per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    data.summary["parameters"] = parameters
    report.start(total, state["step"], data.summary)
    train_step = _train_step(run.model, run.placement.strategy, config.batch_size * config.seq_len, config.clip_norm)
    validate = _validation(run.model, data.validation, config.batch_size)
    run.model.optimizer.learning_rate = state.setdefault("learning_rate", config.learning_rate)
    stopped = "finished all epochs"
    for epoch in range(state["epoch"], config.epochs):
        losses = state.setdefault("epoch_losses", [])  # steps of this epoch already trained (a resumed epoch)
        steps = min(steps_per_epoch, total - (state["step"] - len(losses)))
        if steps <= 0:
            stopped = f"reached --max-steps {config.max_steps}"
            break
        val_loss = _epoch(run, train_step, validate, data, config, state, epoch, steps, report)
        entry = {"epoch": epoch + 1, "step": state["step"], "loss": round(float(np.mean(losses)), 5),
                 "val_loss": round(val_loss, 5), "learning_rate": state["learning_rate"],
                 "tokens_seen": state["step"] * config.batch_size * config.seq_len,
                 "seconds": round(state["epoch_seconds"], 2)}
        state["epochs"].append(entry)
        state["seconds"] += state.pop("epoch_seconds")
        state["epoch_losses"], state["epoch"] = [], epoch + 1
        state.pop("dropout", None)
        improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"] - 1e-4
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        plateau = state["bad_epochs"] >= config.patience
        cut = plateau and config.decay < 1 and state["learning_rate"] * config.decay >= \
            config.learning_rate * LOWEST_RATE * (1 - 1e-9)
        if cut:  # a plateau: smaller steps before giving up
            state["learning_rate"] *= config.decay
            state["bad_epochs"] = 0
            run.model.optimizer.learning_rate = state["learning_rate"]
        if improved:
            state["best_val_loss"] = val_loss
            best_copy.set_weights(run.model.get_weights())
        if run.out is not None:
            if improved:
                bundle.save_best(best_copy, run.out)
            bundle.save_checkpoint(run.model, state, run.out)
            _write_metrics(run.out, state, data.summary, parameters, stopped="running")
        report.epoch(entry, improved)
        if plateau and not cut:
            stopped = f"early stopping: no improvement for {config.patience} epochs"
            break
    else:
        if config.max_steps and state["step"] >= config.max_steps:
            stopped = f"reached --max-steps {config.max_steps}"
    return _write_metrics(run.out, state, data.summary, parameters, stopped=stopped)


def _epoch(run: Run, train_step, validate, data: TrainingData, config: TrainConfig, state: dict, epoch: int,
           steps: int, report: Report) -> float:
    """Train ``epoch``'s steps not yet trained (``state["epoch_losses"]`` holds the losses of those that were),
    then return the validation loss. On Ctrl-C or SIGTERM the data pipeline is closed, a checkpoint is written
    where training stopped (the next step, or the validation) and ``Interrupted`` is raised."""
    losses, first = state["epoch_losses"], len(state["epoch_losses"])
    state.setdefault("epoch_seconds", 0.0)
    _reseed_dropout(run.model, config.random_seed, epoch, state.get("dropout"))
    started, tokens_per_step = time.perf_counter(), config.batch_size * config.seq_len
    dataset = run.placement.strategy.distribute_datasets_from_function(
        lambda _: training_dataset(data.sampler, config.batch_size, steps, config.random_seed, epoch,
                                   first_step=first, rows=run.rows))
    train_step.trace(dataset.element_spec)  # before the pipeline's threads start: a signal now stops at once
    with run.stop.deferred():
        batches = iter(dataset)
        for batch in batches:
            losses.append(float(train_step(batch)))
            state["step"] += 1
            report.step(state["step"], float(np.mean(losses)),
                        (len(losses) - first) * tokens_per_step / max(time.perf_counter() - started, 1e-9))
            if run.stop.requested:
                break
        del batches  # closes the pipeline and its threads before anything else happens
        val_loss = None if run.stop.requested else validate(run.stop)
    state["epoch_seconds"] += time.perf_counter() - started
    if run.stop.requested:
        state["dropout"] = _dropout_states(run.model)
        if run.out is not None:
            bundle.save_checkpoint(run.model, state, run.out)
        run.stop.check()
    return val_loss


def _train_step(model, strategy, tokens_per_step: int, clip_norm: float):
    """One step on a distributed batch; returns the batch's mean loss per token.

    Each replica computes the gradient of its rows' share of the global mean loss. The
    shares are summed across replicas (one all-reduce; the embedding's gradient, rows of
    the tokens seen, is gathered) and each weight's gradient is clipped to ``clip_norm``,
    as one process training on the whole batch would clip it. The optimizer sums what the
    replicas hand it, so the first replica hands it the gradient and the others zeros.
    """
    import tensorflow as tf

    variables = model.trainable_variables
    model.optimizer.clipnorm = None  # clipped here, after the sum (Keras would clip each replica's share)

    def replica_step(inputs, targets, weights=None):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(inputs, training=True), tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
            if weights is not None:  # kept notes' tokens (``ahead.given``) count nothing
                losses = losses * weights
            loss = tf.reduce_sum(losses) / tokens_per_step
        context = tf.distribute.get_replica_context()
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, tape.gradient(loss, variables))
        share = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)  # 1 on the first, else 0
        model.optimizer.apply([_scaled(tf.clip_by_norm(g, clip_norm), share) for g in gradients], variables)
        return loss

    @tf.function
    def step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=batch), axis=None)

    def run_in_scope(batch):
        with strategy.scope():
            return step(batch)

    def trace(spec) -> None:
        """Build the step's graph for batches of ``spec`` now (the first step otherwise does, for seconds)."""
        with strategy.scope():
            step.get_concrete_function(spec)

    run_in_scope.trace = trace
    return run_in_scope


def _scaled(gradient, factor):
    """``gradient`` times ``factor``, also where it is IndexedSlices (the embedding's)."""
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def _validation(model, windows: np.ndarray, batch_size: int):
    """A function (stop) -> the mean loss per token of ``model`` on the validation ``windows``, or None when
    ``stop`` (``melody.interrupts.Stop``) was requested before it finished. Each worker computes it whole, so
    every worker takes the same early-stopping decision; one ``tf.function`` serves every epoch."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def summed(inputs, targets):
        logits = tf.cast(model(plain_inputs(model, inputs), training=False), tf.float32)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))

    def validate(stop=None) -> float | None:
        total = 0.0
        for begin in range(0, len(windows), batch_size):
            if stop is not None and stop.requested:
                return None
            total += float(summed(windows[begin:begin + batch_size, :-1], windows[begin:begin + batch_size, 1:]))
        return total / windows[:, 1:].size

    return validate


@contextlib.contextmanager
def _worker_guard(placement: Placement):
    """Another worker failing or vanishing (collectives time out after WORKER_TIMEOUT s) becomes a
    TrainingError on this one."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError) as error:
        if placement.workers == 1:
            raise
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise TrainingError(f"worker {placement.worker} of {placement.workers}: the other workers stopped "
                            f"answering ({first}); once all are running again, --resume continues from the "
                            "last checkpoint") from None


def _reseed_dropout(model, seed: int, epoch: int, states: list | None = None) -> None:
    """Dropout masks drawn from (seed, epoch, layer): a resumed epoch drops what the original would have.
    ``states``: the generators' states where an interrupted epoch stopped (``_dropout_states``)."""
    generators = _dropout_generators(model)
    for (index, generator), saved in zip(generators, states or [None] * len(generators)):
        start = [seed * 1_000_003 + epoch * 1_009 + index, 0] if saved is None else saved
        generator.state.assign(np.array(start, dtype="int64"))


def _dropout_states(model) -> list[list[int]]:
    """Each dropout generator's state (seed, draws so far), to continue an epoch where it stopped."""
    return [[int(value) for value in generator.state.numpy()] for _, generator in _dropout_generators(model)]


def _dropout_generators(model) -> list[tuple[int, object]]:
    return [(index, layer.seed_generator) for index, layer in enumerate(model.layers)
            if getattr(layer, "seed_generator", None) is not None]


def _write_metrics(out: Path, state: dict, summary: dict, parameters: int, stopped: str) -> dict:
    best = state["best_val_loss"]
    best_epoch = next((e["epoch"] for e in state["epochs"] if e["val_loss"] == round(best, 5)), None) \
        if best is not None else None
    metrics = {"epochs": state["epochs"], "corpus": summary, "parameters": parameters,
               "precision": summary.get("precision"), "init_from": summary.get("init_from"),
               "best_epoch": best_epoch, "best_val_loss": None if best is None else round(best, 5),
               "best_val_perplexity": None if best is None else round(math.exp(best), 3),
               "unigram_val_nll": summary["unigram_val_nll"], "steps": state["step"],
               "training_seconds": round(state["seconds"], 1), "stopped": stopped}
    if out is not None:
        bundle.save_metrics(out, metrics)
    return metrics
