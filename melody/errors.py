"""The project's exceptions, one per failure domain.

Every one of them is a user error: the command line prints its message as a
single ``Error:`` line and exits with code 2. Messages say what was wrong and,
where it helps, what to do.
"""


class MelodyError(Exception):
    """Base class: something the user can fix (a file, a flag, a folder)."""


class SettingError(MelodyError, ValueError):
    """A setting (a field of one of the config dataclasses) outside what it allows."""


class MidiReadError(MelodyError):
    """A file could not be read as MIDI music; the message names the file and the reason."""


class OutputExistsError(MelodyError):
    """The output already exists and overwriting was not asked for."""


class TokenizerError(MelodyError):
    """A tokenizer file is missing, malformed or does not match this vocabulary."""


class CorpusError(MelodyError):
    """A corpus could not be prepared or read."""


class BundleError(MelodyError):
    """A model folder is missing, incomplete or inconsistent."""


class TrainingError(MelodyError):
    """Training cannot start or continue with these settings and data."""


class RenderError(MelodyError):
    """Audio or a picture could not be made (a missing soundfont, FluidSynth failing)."""
