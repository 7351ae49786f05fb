"""A setting a user chooses: a dataclass field carrying its help text, written once.

The config dataclasses (``TokenizerConfig``, ``ModelConfig``, ``TrainConfig``, ``SamplingConfig``,
``GenerateConfig``) declare their user-facing fields with ``setting``; the command line makes
each such field an option (``--name-with-dashes``) with this help and the field's default, so
a default or a description is never written twice. The rules a value must follow are checked
once, by the dataclass, raising ``SettingError``.
"""

from __future__ import annotations

from dataclasses import field


def setting(default, help: str, *, short: str | None = None, choices: tuple | None = None, parse=None,
            metavar: str | None = None):
    """A field offered as an option: ``help`` its description; ``short`` a one-letter alias ('-n');
    ``choices`` the values allowed; ``parse(text)`` turns the option's text into the field's value
    (raising ValueError with a message for a text it cannot read)."""
    metadata = {"help": help, "short": short, "choices": choices, "parse": parse, "metavar": metavar}
    return field(default=default, metadata={key: value for key, value in metadata.items() if value is not None})
