"""``python -m melody`` and the ``melody`` command.

The command line and what it imports (numpy, MIDI libraries, click) take a moment to load;
Ctrl-C or SIGTERM in that moment ends melody at once with 130 (143) and one line saying so,
before the command's own handling (``melody.cli.main``) takes over.
"""

import os
import signal
import sys


def main() -> None:
    starting = {number: signal.signal(number, _stopped_while_starting) for number in (signal.SIGINT, signal.SIGTERM)}
    from melody.cli import main as run

    for number, handler in starting.items():
        signal.signal(number, handler)
    run()


def _stopped_while_starting(number: int, frame) -> None:
    command = next((argument for argument in sys.argv[1:] if not argument.startswith("-")), "")
    line = "Interrupted; continue with: the same command (no checkpoint was written yet)" if command == "train" \
        else "Error: interrupted"
    os.write(2, (line + "\n").encode())
    os._exit(128 + number)


if __name__ == "__main__":
    main()
