"""The ``melody`` group, its error handling and what the commands share.

Every user error (a ``MelodyError`` or a bad flag) prints one line starting with
``Error:`` and exits with code 2; ``melody --debug ...`` shows the traceback
instead. Ctrl-C exits 130, SIGTERM 143. The options that set a config dataclass's
fields are made from the fields themselves (``settings``), so their help texts,
defaults and rules live in the library, once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
import traceback
import typing

import click

from melody import __version__
from melody.errors import MelodyError, OutputExistsError
from melody.interrupts import SIGNALS

USER_ERROR = 2
_IMPORTED = time.perf_counter()
_STARTING = time.process_time()  # CPU seconds of the interpreter's start and imports before this line


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
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("Error: interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


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
      melody harmonize tune.mid --parts "Alto,Tenor,Bass"
      melody prepare corpora/folk --out folk-cache
      melody evaluate --model my-model held_out_songs/
      melody render continued.mid
      melody info song.mid
      melody quantize song.mid song-as-tokens.mid
    """


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


# ----------------------------------------------------------------------------- options from the config dataclasses

def settings(*classes):
    """Decorate a command with an option for each field of ``classes`` made with ``melody.settings.setting``:
    ``--name-with-dashes``, the field's help with its default, its choices or its parser. An option not
    given arrives as None (``configured`` builds a config from the ones given)."""
    def decorate(command):
        for cls in reversed(classes):
            hints = typing.get_type_hints(cls)
            for field in reversed([field for field in dataclasses.fields(cls) if "help" in field.metadata]):
                command = _option(field, hints[field.name])(command)
        return command

    return decorate


def _option(field, hint):
    meta = field.metadata
    names = [f"--{field.name.replace('_', '-')}", *([meta["short"]] if "short" in meta else [])]
    default = field.default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    help = meta["help"] + (f"  [default: {shown}]" if default is not None and default is not False else "")
    if hint is bool and default is True:  # on unless turned off
        flag = names[0][2:]
        return click.option(f"--{flag}/--no-{flag}", field.name, default=None, help=help)
    if hint is bool:
        return click.option(*names, field.name, is_flag=True, default=None, help=help)
    if "choices" in meta:
        kind = click.Choice(meta["choices"])
    elif "parse" in meta:
        kind = _Parsed(meta["parse"], meta.get("metavar"))
    else:
        kind = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    return click.option(*names, field.name, type=kind, default=None, help=help, metavar=meta.get("metavar"))


class _Parsed(click.ParamType):
    """An option read by the library's own parser (its ValueError is the message)."""

    def __init__(self, parse, metavar: str | None):
        self.parse, self.name = parse, (metavar or "TEXT").lower()

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def given(options: dict) -> dict:
    """The options the user gave (the others are None)."""
    return {name: value for name, value in options.items() if value is not None}


def configured(cls, options: dict, **more):
    """``cls`` built from the options given that are its fields (the library checks them)."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in given(options).items() if name in names}, **more)


# ----------------------------------------------------------------------------- shared by the commands

def seconds_since_start() -> float:
    """Wall time since the interpreter started: since the command line was imported, plus the CPU time the
    interpreter's start and imports took before that. (Not the process's start time: a shell that ends with
    ``melody ...`` runs it in its own process, which then started when the shell did.)"""
    return _STARTING + time.perf_counter() - _IMPORTED


def progress(length: int, label: str, quiet: bool, eta: bool = True):
    """A progress bar on stderr, or a silent stand-in when quiet or not on a terminal; ``eta`` False for work
    whose first items take far longer than the rest (an estimate from them would be wildly off)."""
    if quiet or not sys.stderr.isatty():
        return _NoProgress()
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True, show_eta=eta)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, steps: int, current_item=None) -> None:
        pass


def echo_notes(notes) -> None:
    """Each note for the user on stderr, as ``Note: ...``."""
    for note in notes:
        click.echo(f"Note: {note}", err=True)
