"""The ``melody`` command line: thin click wrappers over the library.

    base.py      the group, its one-line errors and exit codes, options made from the config dataclasses
    making.py    generate, render
    learning.py  prepare, train, quantize
    looking.py   evaluate, info

TensorFlow is imported only inside the commands that need it, so ``melody --help``
answers at once.
"""

from melody.cli import learning, looking, making  # noqa: F401  (each registers its commands)
from melody.cli.base import cli, main

__all__ = ["cli", "main"]
