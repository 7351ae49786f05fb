"""``melody evaluate`` and ``melody info``: how good a model is, what a file or a model holds."""

from __future__ import annotations

import math
from pathlib import Path

import click

from melody.cli.base import cli, progress


@cli.command()
@click.argument("data", nargs=-1, type=click.Path(path_type=str))
@click.option("--model", "-m", type=click.Path(path_type=str), default=None,
              help="Model folder (default: the model shipped with melody).")
@click.option("--generated", type=click.Path(path_type=str), default=None,
              help="Folder of generated MIDI files: music metrics and copying from the training corpus.")
@click.option("--reference", type=click.Path(path_type=str), default=None,
              help="Folder of real MIDI files to compare --generated with.")
@click.option("--seeds", type=click.Path(path_type=str), default=None,
              help="Folder of the seeds --generated continues: how each continuation fits its seed.")
@click.option("--bars", type=click.IntRange(min=1), default=None, help="Bars asked for when generating (with --seeds).")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate(data, model, generated, reference, seeds, bars, as_json, quiet):
    """Measure a model on held-out MIDI files, and generated music against real music.

    On DATA (files or folders the model never saw; default: the validation files
    kept in the model folder): negative log-likelihood per token, perplexity and
    bits per note, next to a unigram and a Kneser-Ney n-gram baseline fitted on
    the model's own training corpus. With --generated: pitch, scale, rhythm and
    repetition metrics (beside --reference's), and for each generated file the
    longest passage copied verbatim from the training corpus. With --generated and
    --seeds: for each continuation (named as melody generate names them, after its
    seed), the bars it spans, its notes in the seed's key, its density against the
    seed's, the seed's tracks that play on, and how often its bars repeat.

    \b
    Examples:
      melody evaluate
      melody evaluate --model my-model held_out_songs/ --json
      melody generate --seed song.mid -n 20 --continuation-only --out gen/idea.mid
      melody evaluate --generated gen/ --reference corpora/folk
      melody evaluate --generated continued/ --seeds seeds/ --bars 8
    """
    import json

    from melody.evaluate import evaluate as evaluate_model, fit_table, likelihood_table, music_table

    from melody.midi_read import find_midi_files

    total = len(find_midi_files([Path(p) for p in [*data, generated, reference] if p is not None and Path(p).exists()]))
    with progress(total, "Reading MIDI files", quiet or total < 50) as bar:
        result = evaluate_model(model, list(data), generated, reference, on_file=lambda: bar.update(1), seeds=seeds,
                                bars=bars)
    if as_json:
        click.echo(json.dumps(_finite(result), indent=1, allow_nan=False))
        return
    tables = [fit_table(result["fit"])] if "fit" in result else []
    tables += [likelihood_table(result)] if "nll" in result else []
    tables += [music_table(result["music"])] if "music" in result else []
    click.echo("\n\n".join(tables))


def _finite(value):
    """``value`` with every nan or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--vocabulary", is_flag=True, help="For a model folder: its token layout, each kind with its ids.")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info(path, vocabulary, as_json):
    """Describe a MIDI file or a model folder.

    For a MIDI file: format, tracks, instruments and programs, tempo changes,
    time signature, length in bars and seconds, notes, pitch range, and the
    repairs melody's reader makes. For a model folder: the corpus it learned,
    vocabulary, size, training time, validation loss and perplexity.

    \b
    Examples:
      melody info song.mid
      melody info my-model --json
      melody info my-model --vocabulary
    """
    import json

    from melody.info import info as describe, info_text

    described = describe(path, vocabulary)
    click.echo(json.dumps(described, indent=1) if as_json else info_text(described))
