"""The ``melody`` command line: thin click wrappers over the library.

Every user error (a ``MelodyError`` or a bad flag) prints one line starting with
``Error:`` and exits with code 2; ``melody --debug ...`` shows the traceback
instead. TensorFlow is imported only inside the commands that need it, so
``melody --help`` answers at once.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import click

from melody import __version__
from melody.distribute import STRATEGIES, cluster_config, is_chief, workers_in
from melody.errors import MelodyError, OutputExistsError
from melody.interrupts import SIGNALS

USER_ERROR = 2
_IMPORTED = time.perf_counter()


def seconds_since_start() -> float:
    """Wall time since this process started: on Linux from /proc, so the interpreter's own start-up
    counts too (10 ms resolution); elsewhere since the command line was imported."""
    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


class MelodyGroup(click.Group):
    """A click group that turns every user error into a single ``Error:`` line and exit code 2."""

    def main(self, args=None, prog_name=None, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args
        try:
            result = super().main(args, prog_name=prog_name or "melody", standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help())
            sys.exit(0)
        except (MelodyError, click.ClickException) as error:
            if debug:
                traceback.print_exc()
            message = error.format_message() if isinstance(error, click.ClickException) else str(error)
            if isinstance(error, OutputExistsError):  # the library says what exists; the flag is the CLI's
                message += "; use --force to overwrite it"
            click.echo(f"Error: {' '.join(message.split())}", err=True)
            sys.exit(USER_ERROR)
        except click.exceptions.Abort:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def _progress(length: int, label: str, quiet: bool):
    """A progress bar on stderr, or a silent stand-in when quiet or not on a terminal."""
    if quiet or not sys.stderr.isatty():
        return _NoProgress()
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True, show_eta=True)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, steps: int, current_item=None) -> None:
        pass


@click.group(cls=MelodyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the full traceback when something fails.")
@click.version_option(__version__, prog_name="melody")
def cli(debug: bool) -> None:
    """melody: learn music from MIDI files and write new music as MIDI.

    \b
    Examples:
      melody generate --seed song.mid
      melody train my_midi_folder/ --out my-model
      melody generate --model my-model --seed song.mid --bars 16
      melody prepare corpora/folk --out folk-cache
      melody evaluate --model my-model held_out_songs/
      melody render continued.mid
      melody info song.mid
      melody quantize song.mid song-as-tokens.mid
    """


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Folder for the token cache.")
@click.option("--melody-only", is_flag=True, help="Keep only the lead line of each file.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per CPU core).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out folder, tokenizing everything afresh.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare(sources, out, melody_only, workers, force, quiet):
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
    from melody.tokenizer import TokenizerConfig

    total = len(find_midi_files([s for s in sources if Path(s).exists()]))
    skipped = []
    with _progress(total, "Tokenizing", quiet) as bar:
        def on_file(entry):
            bar.update(1)
            if entry["status"] != "ok":
                skipped.append(entry)

        summary = prepare_corpus(sources, out, TokenizerConfig(melody_only=melody_only), workers=workers,
                                 force=force, on_file=on_file)
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
@click.option("--melody-only", is_flag=True, help="Keep only the lead line.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def quantize(source, out, melody_only, force):
    """Write a MIDI file as a model hears it (read, tokenize, decode).

    Use it to hear exactly what melody learns from SOURCE: notes on the grid,
    velocities binned, the tempo map kept. The result goes to OUT.

    \b
    Example:
      melody quantize song.mid song-quantized.mid
    """
    from melody.corpus import quantize_file
    from melody.tokenizer import TokenizerConfig

    result = quantize_file(source, out, TokenizerConfig(melody_only=melody_only), force=force)
    click.echo(f"Wrote {out}: {result['notes']} notes in {result['tracks']} tracks ({result['source_notes']} notes "
               f"in {result['source_tracks']} tracks in {source}), {result['tokens']} tokens, "
               f"{result['seconds']:.1f} s")
    for repair in result["repairs"]:
        click.echo(f"repaired: {repair}", err=True)


@cli.command()
@click.option("--model", "-m", type=click.Path(path_type=str), default=None,
              help="Model folder from `melody train` (default: the model shipped with melody).")
@click.option("--seed", "-s", "seed_file", type=click.Path(path_type=str), default=None,
              help="MIDI file to continue (default: start from scratch).")
@click.option("--out", "-o", type=click.Path(path_type=str), default=None,
              help="Output file (default: SEED-continued.mid, or melody.mid without a seed).")
@click.option("--bars", type=int, default=8, show_default=True, help="Bars to generate (1..256), in the seed's last meter.")
@click.option("--temperature", "-t", type=float, default=1.0, show_default=True,
              help="Above 0; lower is more conservative, higher more adventurous.")
@click.option("--top-k", type=int, default=None, help="Sample only from the k likeliest tokens (default: all).")
@click.option("--top-p", type=float, default=1.0, show_default=True,
              help="Sample only from the likeliest tokens holding this much probability, in (0, 1].")
@click.option("--num-samples", "-n", type=int, default=1, show_default=True,
              help="Different continuations to write (OUT-1.mid ... OUT-K.mid), made in one batch.")
@click.option("--random-seed", type=int, default=None, help="Make the output reproducible byte for byte.")
@click.option("--primer-bars", type=click.IntRange(min=1), default=None,
              help="Prime with only the seed's last N bars (default: all of it, up to 1024 tokens).")
@click.option("--continuation-only", is_flag=True, help="Write only the new music, not the seed before it.")
@click.option("--accompaniment", type=click.Choice(["loop", "none"]), default="loop", show_default=True,
              help="Seed tracks the model leaves silent: keep playing their last bars (loop), or stop (none).")
@click.option("--density", type=float, default=None,
              help="Note onsets per quarter note to aim for (default: as the seed's last bars), e.g. 0.5 or 3.")
@click.option("--key", default=None, help="Without a seed: the key to start in, e.g. C, Eb, F#m.")
@click.option("--key-strength", type=float, default=None,
              help="How firmly to stay in key: nats taken off an out-of-key note (0: leave it to the model).  "
                   "[default: 1.5]")
@click.option("--time-signature", default=None, help="Without a seed: the meter, e.g. 3/4 or 6/8 (default: "
              "that of the training piece it opens like).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--wav", is_flag=True, help="Also write each output as audio (OUT.wav), through FluidSynth.")
@click.option("--png", is_flag=True, help="Also write a piano-roll picture of each output (OUT.png).")
@click.option("--soundfont", type=click.Path(path_type=str), default=None, help="Soundfont for --wav.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def generate(model, seed_file, out, bars, temperature, top_k, top_p, num_samples, random_seed, primer_bars,
             continuation_only, accompaniment, density, key, key_strength, time_signature, force, wav, png, soundfont,
             as_json, quiet):
    """Continue a MIDI file (or start from scratch) and write new MIDI files.

    The output keeps the seed's tempo, time signature, key and instruments, and
    holds the seed followed by the new bars unless --continuation-only.

    \b
    Examples:
      melody generate --seed song.mid
      melody generate --seed song.mid --bars 16 --temperature 0.9 --top-p 0.95
      melody generate --seed song.mid --num-samples 4 --random-seed 7 --out ideas.mid
      melody generate --model my-model --out new.mid
      melody generate --out waltz.mid --time-signature 3/4 --key Eb --bars 16
      melody generate --seed song.mid --density 2 --accompaniment none
      melody generate --seed song.mid --wav --png
    """
    import json

    from melody.files import check_writable
    from melody.generate import generate as generate_music, output_paths
    from melody.render import find_soundfont
    from melody.sampler import SamplingConfig

    pictures = [path.with_suffix(suffix) for path in output_paths(out, seed_file, num_samples)
                for suffix, wanted in ((".wav", wav), (".png", png)) if wanted]
    for path in pictures:  # before any work: nothing is overwritten by surprise
        check_writable(path, force)
    if wav:
        find_soundfont(soundfont)
    if not quiet and not as_json and sys.stderr.isatty():
        click.echo(f"Sampling {num_samples} x {bars} bars ...", err=True)
    try:
        sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    meter = _meter(time_signature) if time_signature is not None else None
    result = generate_music(model, seed_file, out, bars=bars, sampling=sampling, num_samples=num_samples,
                            random_seed=random_seed, primer_bars=primer_bars, continuation_only=continuation_only,
                            force=force, key=key, time_signature=meter, density=density,
                            accompaniment=accompaniment,
                            **({} if key_strength is None else {"key_strength": key_strength}))
    summary = result.summary
    if wav or png:
        rendering = time.perf_counter()
        summary["rendered"] = _render_outputs(result, wav, png, soundfont, force, quiet)
        summary["wall_seconds"]["render"] = round(time.perf_counter() - rendering, 3)
    summary["wall_seconds"]["total"] = round(seconds_since_start(), 2)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    for path in summary["files"] + summary.get("rendered", []):
        click.echo(f"Wrote {path}")
    looped = summary["accompaniment_notes"]
    click.echo(f"{summary['samples']} x {summary['bars']} bars: {summary['notes']} new notes"
               + (f" ({looped} of them the accompaniment repeating its last bars)" if looped else "")
               + f", {summary['tokens']} tokens at {summary['tokens_per_second']:,.0f} tokens/s, "
               f"{summary['seconds']:.1f} s of music (random seed {summary['random_seed']})")
    stages = summary["wall_seconds"]
    click.echo(f"Done in {stages['total']:.1f} s: " + ", ".join(f"{stage} {stages[stage]:.2f}" for stage in
                                                            ("read", "load", "prime", "sample", "write"))
               + (f", render {stages['render']:.2f}" if "render" in stages else "") + ", the rest start-up")
    if summary["silent_samples"]:
        click.echo(f"Note: {summary['silent_samples']} sample(s) came out without a new note after "
                   f"4 draws; try another --random-seed or a higher --temperature", err=True)
    for short in summary["bars_short"]:
        click.echo(f"Note: a sample reached the token limit {short} bar(s) short of {summary['bars']}", err=True)


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
    with _progress(total, "Reading MIDI files", quiet or total < 50) as bar:
        result = evaluate_model(model, list(data), generated, reference, on_file=lambda: bar.update(1), seeds=seeds,
                                bars=bars)
    if as_json:
        click.echo(json.dumps(_finite(result), indent=1, allow_nan=False))
        return
    tables = [fit_table(result["fit"])] if "fit" in result else []
    tables += [likelihood_table(result)] if "nll" in result else []
    tables += [music_table(result["music"])] if "music" in result else []
    click.echo("\n\n".join(tables))


def _meter(text: str) -> tuple[int, int]:
    """'6/8' -> (6, 8); a BadParameter naming --time-signature otherwise."""
    numerator, _, denominator = text.partition("/")
    if not (numerator.isdigit() and denominator.isdigit()):
        raise click.BadParameter(f"expected a meter such as 3/4 or 6/8, got {text!r}", param_hint="--time-signature")
    return int(numerator), int(denominator)


def _finite(value):
    """``value`` with every nan or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _render_outputs(result, wav: bool, png: bool, soundfont, force: bool, quiet: bool) -> list[str]:
    """WAV and/or PNG beside each generated MIDI file; the paths written."""
    from melody.render import render

    written, notes = [], set()
    with _progress(len(result.files), "Rendering", quiet) as bar:
        for path, score, start in zip(result.files, result.scores, result.continuation_starts):
            audio = render(score, wav=path.with_suffix(".wav") if wav else None,
                           png=path.with_suffix(".png") if png else None, soundfont=soundfont, force=force,
                           continuation_start=start, title=path.name)
            written += [str(path.with_suffix(s)) for s, wanted in ((".wav", wav), (".png", png)) if wanted]
            if audio is not None and audio.note:
                notes.add(audio.note)
            bar.update(1)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    return written


@cli.command()
@click.argument("midi_file", type=click.Path(path_type=str))
@click.option("--wav", type=click.Path(path_type=str), is_flag=False, flag_value="", default=None,
              help="Write audio: to the file given, or alone to FILE.wav.")
@click.option("--png", type=click.Path(path_type=str), is_flag=False, flag_value="", default=None,
              help="Write a piano roll: to the file given, or alone to FILE.png.")
@click.option("--soundfont", type=click.Path(path_type=str), default=None,
              help="A .sf2 soundfont (default: the General MIDI soundfont of the fluid-soundfont-gm package).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def render(midi_file, wav, png, soundfont, force, quiet):
    """Hear and see a MIDI file: a WAV through FluidSynth and a piano-roll PNG.

    Without --wav or --png, writes FILE.wav and FILE.png beside the file. The
    WAV is 44.1 kHz 16-bit stereo, normalised, one second longer than the music.

    \b
    Examples:
      melody render continued.mid
      melody render continued.mid --png --force
      melody render continued.mid --wav continued.wav
      melody render song.mid --png roll.png --soundfont my.sf2
    """
    from melody.render import find_soundfont, render as render_file

    if wav is None and png is None:
        wav = png = ""
    wav, png = (str(Path(midi_file).with_suffix(suffix)) if given == "" else given
                for given, suffix in ((wav, ".wav"), (png, ".png")))
    if wav is not None:
        find_soundfont(soundfont)
    if not quiet and sys.stderr.isatty():
        click.echo(f"Rendering {midi_file} ...", err=True)
    audio = render_file(midi_file, wav=wav, png=png, soundfont=soundfont, force=force)
    if audio is not None and audio.note:
        click.echo(f"Note: {audio.note}", err=True)
    for path, what in ((wav, f"audio, {audio.seconds:.1f} s via {audio.engine}" if audio else ""),
                       (png, "piano roll")):
        if path is not None:
            click.echo(f"Wrote {path} ({what})")


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


class _TrainReport:
    """Shows training on the terminal: a progress bar with loss and tokens/s, one line per epoch."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.preparation, self.val_loss = quiet, None, None, ""

    def preparing(self, files: int) -> None:
        label = f"Preparing {files} MIDI files (cached for the next run)"
        self.preparation = _progress(files, label, self.quiet).__enter__()

    def prepared(self, entry: dict) -> None:
        self.preparation.update(1)

    def start(self, total_steps: int, first_step: int, summary: dict) -> None:
        if self.preparation is not None:
            self.preparation.__exit__(None, None, None)
        click.echo(f"Corpus: {summary['ok']} files ({summary['skipped']} skipped), {summary['train_files']} for "
                   f"training ({summary['train_tokens']:,} tokens), {summary['val_files']} for validation; "
                   f"unigram baseline {summary['unigram_val_nll']:.3f} nats/token", err=True)
        click.echo(f"Precision: {summary['precision']}", err=True)
        if summary.get("strategy", "one process") != "one process":
            click.echo(f"Strategy: {summary['strategy']}", err=True)
        self.bar = _progress(total_steps, "Training", self.quiet).__enter__()
        self.bar.update(first_step)
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


def _bar_distances(value: str | None) -> list[int] | None:
    """--lookback's '1,2,4,8' (or 'none') as a list of bar distances."""
    if value is None or value.strip().lower() == "none":
        return None if value is None else []
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected bar distances such as 1,2,4,8 or 'none', got {value!r}") from None


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Model folder to write.")
@click.option("--epochs", type=int, default=None, help="Most epochs to train.  [default: 30]")
@click.option("--batch-size", type=int, default=None, help="Windows per batch.  [default: 32]")
@click.option("--seq-len", type=int, default=None, help="Tokens per training window.  [default: 128]")
@click.option("--units", type=int, default=None, help="LSTM units per layer.  [default: 256]")
@click.option("--layers", type=int, default=None, help="Stacked LSTM layers.  [default: 2]")
@click.option("--embedding", type=int, default=None, help="Token embedding width.  [default: 128]")
@click.option("--dropout", type=float, default=None, help="Dropout between layers.  [default: 0.2]")
@click.option("--lookback", default=None, metavar="BARS", callback=lambda _, __, value: _bar_distances(value),
              help="Bar distances the model looks back to bring phrases back (comma-separated), or 'none' for "
                   "the plain LSTM.  [default: 1,2,4,8]")
@click.option("--learning-rate", type=float, default=None, help="Adam learning rate.  [default: 0.002]")
@click.option("--val-split", type=float, default=None, help="Share of files held out.  [default: 0.1]")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps in all (quick runs).")
@click.option("--patience", type=int, default=None, help="Epochs without improvement before stopping.  [default: 3]")
@click.option("--melody-only", is_flag=True, default=None, help="Learn only the lead line of each file.")
@click.option("--random-seed", type=int, default=None, help="Seed for the split, batches and weights.  [default: 0]")
@click.option("--precision", type=click.Choice(["auto", "float32", "bfloat16"]), default=None,
              help="Arithmetic: auto is bfloat16 mixed precision where the CPU (avx512_bf16, amx_bf16) or a GPU "
                   "computes it natively, else float32. Saved weights are float32 either way.  [default: auto]")
@click.option("--init-from", type=click.Path(path_type=str), default=None,
              help="Start from this model folder's weights (tokens matched by name), e.g. to fine-tune.")
@click.option("--resume", is_flag=True, help="Continue an interrupted training in --out.")
@click.option("--force", is_flag=True, help="Start over in a non-empty --out.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="Where training runs: one process, mirrored over this machine's GPUs, or multiworker over the "
                   "machines TF_CONFIG names; auto picks multiworker with TF_CONFIG, mirrored with 2+ GPUs.")
@click.option("--cluster", default=None, metavar="HOST:PORT,...",
              help="The workers of a multi-worker run, the same list on every machine (writes TF_CONFIG).")
@click.option("--task-index", type=click.IntRange(min=0), default=None,
              help="This machine's place in --cluster; worker 0 is the chief and writes --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(source, out, init_from, resume, force, strategy, cluster, task_index, quiet, **options):
    """Train a model on a folder of MIDI files (or a `melody prepare` cache).

    Shows a progress bar with loss and tokens/s. After every epoch the best
    model so far is kept in OUT and a checkpoint is written, so an interrupted
    run continues with --resume. Training stops early when the validation loss
    stops improving.

    \b
    Examples:
      melody train corpora/folk --out folk-model
      melody train my_midi_folder/ --out my-model --epochs 10 --melody-only
      melody train corpora/chorales --out quick --max-steps 50 --units 64
      melody train corpora/folk --out folk-model --resume
      melody train corpora/folk --out m --cluster a:2222,b:2222 --task-index 0   (on a; index 1 on b)
    """
    from melody.interrupts import Interrupted
    from melody.model import ModelConfig
    from melody.tokenizer import TokenizerConfig
    from melody.train import TrainConfig, train as train_model

    given = {name: value for name, value in options.items() if value is not None}
    model_names = {"units", "layers", "embedding", "dropout", "lookback"}
    try:
        model_config = ModelConfig(**{k: v for k, v in given.items() if k in model_names})
        config = TrainConfig(**{k: v for k, v in given.items() if k not in model_names | {"melody_only"}})
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    tokenizer = TokenizerConfig(melody_only=True) if given.get("melody_only") else None
    if (cluster is None) != (task_index is None):
        raise click.UsageError("--cluster and --task-index go together")
    if cluster is not None:
        os.environ["TF_CONFIG"] = cluster_config(cluster, task_index)
    try:
        metrics = train_model(source, out, model_config, config, tokenizer, resume=resume, force=force,
                              report=_TrainReport(quiet), changes=given, init_from=init_from, strategy=strategy)
    except OutputExistsError as error:
        raise MelodyError(f"{error}; use --resume to continue training or --force to start over") from None
    except Interrupted as interrupted:
        again = f"melody train {source} --out {out} --resume" if interrupted.checkpoint else \
            "the same command (no checkpoint was written yet)"
        if not quiet and sys.stderr.isatty():
            click.echo("", err=True)  # below the progress bar
        click.echo(f"Interrupted; continue with: {again}", err=True)
        sys.exit(interrupted.exit_code)
    if not is_chief(strategy):
        click.echo(f"Worker {workers_in(os.environ['TF_CONFIG'])[0]} trained {metrics['steps']} steps in "
                   f"{metrics['training_seconds']:.0f} s ({metrics['stopped']}); the chief, worker 0, wrote the model.")
        return
    best = metrics["best_val_loss"]
    click.echo(f"Trained {metrics['steps']} steps in {metrics['training_seconds']:.0f} s ({metrics['stopped']}). "
               f"Best validation loss {best:.4f} nats/token (perplexity {metrics['best_val_perplexity']:.2f}) at "
               f"epoch {metrics['best_epoch']}; unigram baseline {metrics['unigram_val_nll']:.4f}. Model: {out}")


def main() -> None:
    """Run the command line. SIGTERM ends a command at once with exit code 143 (training answers it as
    Ctrl-C: a checkpoint, then 143); once the command is over, Ctrl-C or SIGTERM during the interpreter's
    shutdown exits with 128 + its number at once."""
    signal.signal(signal.SIGTERM, _exit_with_signal_code)
    try:
        cli.main()
    finally:
        for number in SIGNALS:
            signal.signal(number, _exit_with_signal_code)


def _exit_with_signal_code(number: int, frame) -> None:
    os._exit(128 + number)


if __name__ == "__main__":
    main()
