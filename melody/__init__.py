"""melody: learn music from MIDI files and write new music back out as MIDI.

Data flows one way:
MIDI file -> read_midi -> Score -> Tokenizer.encode -> token cache -> train -> bundle
-> generate -> tokens -> Tokenizer.decode -> Score -> write_midi.
"""

__version__ = "0.1.0"

from melody.errors import MelodyError, MidiReadError, OutputExistsError  # noqa: E402
from melody.midi_io import read_midi, validate_midi, write_midi  # noqa: E402
from melody.score import Instrument, Note, Score, melody_line, transpose  # noqa: E402
from melody.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402

__all__ = [
    "Instrument", "MelodyError", "MidiReadError", "Note", "OutputExistsError", "Score",
    "Tokenizer", "TokenizerConfig", "melody_line", "read_midi", "transpose", "validate_midi", "write_midi",
]
