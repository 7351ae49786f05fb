"""Ctrl-C and SIGTERM during a long run: a request to stop, answered between steps.

Python's default Ctrl-C raises ``KeyboardInterrupt`` wherever the main thread happens to
be. In training that may be the middle of a TensorFlow step while tf.data's threads run
our NumPy code to draw the next batch; unwinding from there and shutting the interpreter
down under those threads crashed or hung the process now and then. So while the data
pipeline runs (``Stop.deferred``), a signal only records the request; the training loop
looks at it between steps and between validation batches, closes the pipeline, writes a
checkpoint where it stopped and raises ``Interrupted`` from a quiet place. Outside that
region nothing runs in other threads, and the signal raises ``Interrupted`` at once.

A second signal while the first is being answered (a checkpoint being written, say)
ends the process at once with ``os._exit``: the last checkpoint stays as it was (every
write is atomic). Exit codes follow the shell's convention: 128 + the signal number,
130 for Ctrl-C (SIGINT) and 143 for SIGTERM (a scheduler stopping the job).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run stopped on a signal; ``exit_code`` is 128 + its number, ``checkpoint`` whether one
    exists to resume from. A ``KeyboardInterrupt``, so that no ``except Exception`` swallows it."""

    def __init__(self, signal_number: int, checkpoint: bool = False):
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number, self.checkpoint = signal_number, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number


class Stop:
    """Catches SIGINT and SIGTERM for the duration of a ``with`` block (in the main thread only;
    elsewhere signals keep Python's default handling)."""

    def __init__(self):
        self.signal: int | None = None  # the first signal received
        self._deferring = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in SIGNALS}
        return self

    def __exit__(self, *exc) -> bool:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def deferred(self):
        """Within this block a signal is only recorded; raise ``check`` at a quiet place."""
        self._deferring = True
        try:
            yield self
        finally:
            self._deferring = False

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal came."""
        if self.signal is not None:
            raise Interrupted(self.signal)

    def _handle(self, number: int, frame) -> None:
        if self.signal is not None:  # the second: at once, without unwinding anything
            os.write(2, b"\nInterrupted again: stopped at once; the last checkpoint is kept\n")
            os._exit(128 + number)
        self.signal = number
        if not self._deferring:
            raise Interrupted(number)


@contextlib.contextmanager
def while_loading(command: bool | None = None):
    """While the ``melody`` command loads (numpy, the MIDI libraries, click: about a second), Ctrl-C or
    SIGTERM ends it at once with one line and exit code 130 (143). ``command``: whether this process is the
    command (default: when run as ``python -m melody`` or as ``melody``); for any other program importing
    melody, nothing changes."""
    if command is None:
        command = sys.argv[:1] == ["-m"] or Path(sys.argv[0] if sys.argv else "").name == "melody"
    if not command or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _stopped_while_loading) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _stopped_while_loading(number: int, frame) -> None:
    words = [argument for argument in sys.argv[1:] if not argument.startswith("-")]
    line = "Interrupted; continue with: the same command (no checkpoint was written yet)" \
        if words[:1] == ["train"] else "Error: interrupted"
    os.write(2, (line + "\n").encode())
    os._exit(128 + number)
