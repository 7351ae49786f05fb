"""The ``melody`` command line: thin click wrappers over the library.

Every user error (a ``MelodyError`` or a bad flag) prints one line starting with
``Error:`` and exits with code 2; ``melody --debug ...`` shows the traceback
instead. TensorFlow is imported only inside the commands that need it, so
``melody --help`` answers at once.
"""

from __future__ import annotations

import sys
import traceback

import click

from melody import __version__
from melody.errors import MelodyError

USER_ERROR = 2


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
      melody prepare corpora/folk --out folk-cache
      melody quantize song.mid song-as-tokens.mid
    """


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="Folder for the token cache.")
@click.option("--melody-only", is_flag=True, help="Keep only the lead line of each file.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: one per CPU core).")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty --out folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare(sources, out, melody_only, workers, force, quiet):
    """Tokenize MIDI files and folders into a token cache for training.

    Folders are searched recursively for .mid .midi .kar .rmi files. Files that
    cannot be read are skipped; report.json in the cache says why.

    \b
    Example:
      melody prepare corpora/folk corpora/chorales --out cache/ --workers 2
    """
    from melody.corpus import prepare as prepare_corpus
    from melody.midi_io import find_midi_files
    from pathlib import Path

    total = len(find_midi_files([s for s in sources if Path(s).exists()]))
    skipped = []
    with _progress(total, "Tokenizing", quiet) as bar:
        def on_file(entry):
            bar.update(1)
            if entry["status"] != "ok":
                skipped.append(entry)

        summary = prepare_corpus(sources, out, melody_only=melody_only, workers=workers, force=force,
                                 on_file=on_file)
    for entry in skipped[:20]:
        click.echo(f"skipped {entry['path']}: {entry['reason']}", err=True)
    if len(skipped) > 20:
        click.echo(f"... and {len(skipped) - 20} more skipped files (see {out}/report.json)", err=True)
    click.echo(f"Prepared {summary['files']} files: {summary['ok']} ok, {summary['skipped']} skipped, "
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
    from melody.files import check_writable
    from melody.midi_io import read_midi, write_midi
    from melody.score import melody_line
    from melody.tokenizer import Tokenizer

    check_writable(out, force)
    score = read_midi(source)
    if melody_only:
        score = melody_line(score)
    tokenizer = Tokenizer()
    tokens = tokenizer.encode(score)
    quantized = tokenizer.decode(tokens, meta=score)
    write_midi(quantized, out, force=force)
    click.echo(f"Wrote {out}: {len(quantized.notes)} notes ({len(score.notes)} in {source}), "
               f"{len(tokens)} tokens, {quantized.duration_seconds:.1f} s")
    for repair in score.repairs:
        click.echo(f"repaired: {repair}", err=True)


def main() -> None:
    cli.main()


if __name__ == "__main__":
    main()
