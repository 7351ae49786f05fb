"""``melody prepare``, ``melody train`` and ``melody quantize``: music in, a model out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from melody.cli.base import cli, configured, given, progress, settings
from melody.distribute import STRATEGIES
from melody.errors import MelodyError, OutputExistsError
from melody.model import ModelConfig
from melody.tokenizer import TokenizerConfig
from melody.train_config import TrainConfig


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Folder for the token cache.")
@settings(TokenizerConfig)
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per CPU core).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder, tokenizing everything afresh.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare(sources, out, workers, force, quiet, **options):
    """Tokenize MIDI files and folders into a token cache for training.

    Folders are searched recursively for .mid .midi .kar .rmi files. Files that
    cannot be read are skipped; report.json in the cache says why. Run it again
    into the same --out after adding or changing files: only those are read
    (files are recognised by their content), the rest keep their tokens.

    \b
    Example:
      melody prepare corpora/folk corpora/chorales --out cache/ --workers 2
    """
    from melody.corpus import prepare as prepare_corpus
    from melody.midi_read import find_midi_files

    total = len(find_midi_files([s for s in sources if Path(s).exists()]))
    skipped = []
    with progress(total, "Tokenizing", quiet) as bar:
        def on_file(entry):
            bar.update(1)
            if entry["status"] != "ok":
                skipped.append(entry)

        summary = prepare_corpus(sources, out, configured(TokenizerConfig, options), workers=workers, force=force,
                                 on_file=on_file)
    for entry in skipped[:20]:
        click.echo(f"skipped {entry['path']}: {entry['reason']}", err=True)
    if len(skipped) > 20:
        click.echo(f"... and {len(skipped) - 20} more skipped files (see {out}/report.json)", err=True)
    reused = f", {summary['reused']} unchanged since the last run" if summary.get("reused") else ""
    click.echo(f"Prepared {summary['files']} files: {summary['ok']} ok, {summary['skipped']} skipped{reused}, "
               f"{summary['tokens']:,} tokens in {summary['seconds']:.1f} s -> {out}")


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@settings(TokenizerConfig)
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def quantize(source, out, force, **options):
    """Write a MIDI file as a model hears it (read, tokenize, decode).

    Use it to hear exactly what melody learns from SOURCE: notes on the grid,
    velocities binned, the tempo map kept. The result goes to OUT.

    \b
    Example:
      melody quantize song.mid song-quantized.mid
    """
    from melody.corpus import quantize_file

    result = quantize_file(source, out, configured(TokenizerConfig, options), force=force)
    click.echo(f"Wrote {out}: {result['notes']} notes in {result['tracks']} tracks ({result['source_notes']} notes "
               f"in {result['source_tracks']} tracks in {source}), {result['tokens']} tokens, "
               f"{result['seconds']:.1f} s")
    for repair in result["repairs"]:
        click.echo(f"repaired: {repair}", err=True)


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Model folder to write.")
@settings(TrainConfig, ModelConfig, TokenizerConfig)
@click.option("--init-from", type=click.Path(path_type=str), default=None,
              help="Start from this model folder's weights (tokens matched by name), e.g. to fine-tune; "
                   "`default` is the model shipped with melody.")
@click.option("--resume", is_flag=True, help="Continue an interrupted training in --out.")
@click.option("--force", is_flag=True, help="Start over in a non-empty --out.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="Where training runs: one process, mirrored over this machine's GPUs, or multiworker over the "
                   "machines TF_CONFIG names; auto picks multiworker with TF_CONFIG, mirrored with 2+ GPUs.")
@click.option("--cluster", default=None, metavar="HOST:PORT,...",
              help="The workers of a multi-worker run, the same list on every machine (instead of TF_CONFIG).")
@click.option("--task-index", type=click.IntRange(min=0), default=None,
              help="This machine's place in --cluster; worker 0 is the chief and writes --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(source, out, init_from, resume, force, strategy, cluster, task_index, quiet, **options):
    """Train a model on a folder of MIDI files (or a `melody prepare` cache).

    Shows a progress bar with loss and tokens/s. After every epoch the best
    model so far is kept in OUT and a checkpoint is written, so an interrupted
    run (Ctrl-C, or SIGTERM from a scheduler) continues with --resume. Training
    stops early when the validation loss stops improving.

    \b
    Examples:
      melody train corpora/folk --out folk-model
      melody train my_midi_folder/ --out my-model --epochs 10 --melody-only
      melody train corpora/chorales --out quick --max-steps 50 --units 64
      melody train corpora/folk --out folk-model --resume
      melody train corpora/folk --out m --cluster a:2222,b:2222 --task-index 0   (on a; index 1 on b)
    """
    from melody.interrupts import Interrupted
    from melody.train import train as train_model

    tokenizer = configured(TokenizerConfig, options) if options.get("melody_only") else None
    try:
        metrics = train_model(source, out, configured(ModelConfig, options), configured(TrainConfig, options),
                              tokenizer, resume=resume, force=force, report=_TrainReport(quiet),
                              changes=given(options), init_from=init_from, strategy=strategy, cluster=cluster,
                              task_index=task_index)
    except OutputExistsError as error:
        raise MelodyError(f"{error}; use --resume to continue training or --force to start over") from None
    except Interrupted as interrupted:
        again = f"melody train {source} --out {out} --resume" if interrupted.checkpoint else \
            "the same command (no checkpoint was written yet)"
        if not quiet and sys.stderr.isatty():
            click.echo("", err=True)  # below the progress bar
        click.echo(f"Interrupted; continue with: {again}", err=True)
        sys.exit(interrupted.exit_code)
    if metrics["worker"] != 0:
        click.echo(f"Worker {metrics['worker']} trained {metrics['steps']} steps in {metrics['training_seconds']:.0f}"
                   f" s ({metrics['stopped']}); the chief, worker 0, wrote the model.")
        return
    best = metrics["best_val_loss"]
    click.echo(f"Trained {metrics['steps']} steps in {metrics['training_seconds']:.0f} s ({metrics['stopped']}). "
               f"Best validation loss {best:.4f} nats/token (perplexity {metrics['best_val_perplexity']:.2f}) at "
               f"epoch {metrics['best_epoch']}; unigram baseline {metrics['unigram_val_nll']:.4f}. Model: {out}")
    epochs = metrics["epochs"]
    if metrics["stopped"] == "finished all epochs" and epochs and metrics["best_epoch"] == epochs[-1]["epoch"]:
        click.echo(f"Note: the validation loss was still falling at the last epoch; train longer with: melody train "
                   f"{source} --out {out} --resume --epochs {2 * len(epochs)}", err=True)


class _TrainReport:
    """Shows training on the terminal: a progress bar with loss and tokens/s, one line per epoch."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.preparation, self.val_loss = quiet, None, None, ""

    def preparing(self, files: int) -> None:
        label = f"Preparing {files} MIDI files (those unchanged since the last run come from the cache)"
        self.preparation = progress(files, label, self.quiet, eta=False).__enter__()  # workers start slowly

    def prepared(self, entry: dict) -> None:
        self.preparation.update(1)

    def start(self, total_steps: int, first_step: int, summary: dict) -> None:
        if self.preparation is not None:
            self.preparation.__exit__(None, None, None)
        click.echo(f"Corpus: {summary['ok']} files ({summary['skipped']} skipped), {summary['train_files']} for "
                   f"training ({summary['train_tokens']:,} tokens), {summary['val_files']} for validation; "
                   f"unigram baseline {summary['unigram_val_nll']:.3f} nats/token", err=True)
        click.echo(f"Precision: {summary['precision']}", err=True)
        if summary.get("parameters") and summary["train_tokens"] < summary["parameters"]:
            click.echo(f"Note: {summary['train_tokens']:,} training tokens for {summary['parameters']:,} parameters: "
                       "a network this size learns little from so little music; fine-tune the shipped model "
                       "instead (--init-from default) or give it more files", err=True)
        if summary.get("init_from"):
            started = summary["init_from"]
            click.echo(f"Starting from {started['model']}: {started['tokens_matched']} of {started['tokens']} tokens "
                       "matched", err=True)
        if summary.get("strategy", "one process") != "one process":
            click.echo(f"Strategy: {summary['strategy']}", err=True)
        # A resumed run's bar counts only the steps still to train, so its estimate comes from their own pace.
        self.bar = progress(total_steps - first_step, "Training" if not first_step else
                            f"Training from step {first_step}", self.quiet).__enter__()
        self.done = first_step

    def step(self, step: int, loss: float, tokens_per_second: float) -> None:
        self.bar.label = f"loss {loss:.3f}{self.val_loss}, {tokens_per_second:,.0f} tokens/s"
        self.bar.update(step - self.done)
        self.done = step

    def epoch(self, entry: dict, improved: bool) -> None:
        self.val_loss = f", val_loss {entry['val_loss']:.3f}"
        if self.quiet:
            return
        line = (f"epoch {entry['epoch']}: loss {entry['loss']:.4f}, val_loss {entry['val_loss']:.4f}"
                f"{' (best)' if improved else ''}, {entry['seconds']:.0f} s")
        if sys.stderr.isatty():
            click.echo("", err=True)
        click.echo(line, err=True)
