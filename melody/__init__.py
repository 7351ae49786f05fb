"""melody: learn music from MIDI files and write new music back out as MIDI.

Data flows one way:
MIDI file -> read_midi -> Score -> Tokenizer.encode -> token cache -> train -> bundle
-> generate -> tokens -> Tokenizer.decode -> Score -> write_midi.

The functions below mirror the commands (``melody prepare``, ``train``, ``generate``,
``evaluate``, ``render``, ``info``); none of them imports TensorFlow until it runs.
"""

__version__ = "0.2.0"

from melody.interrupts import while_loading  # noqa: E402

with while_loading():  # the melody command answers Ctrl-C while it loads
    from melody.errors import MelodyError, MidiReadError, OutputExistsError  # noqa: E402
    from melody.midi_read import read_midi  # noqa: E402
    from melody.midi_write import validate_midi, write_midi  # noqa: E402
    from melody.score import Instrument, Note, Score, melody_line, transpose  # noqa: E402
    from melody.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402
    from melody.corpus import prepare  # noqa: E402
    from melody.model import ModelConfig  # noqa: E402
    from melody.train import TrainConfig, train  # noqa: E402
    from melody.generate import GenerateConfig, Generation, SamplingConfig, generate  # noqa: E402
    from melody.evaluate import evaluate  # noqa: E402
    from melody.render import render  # noqa: E402
    from melody.info import info  # noqa: E402

__all__ = [
    "GenerateConfig", "Generation", "Instrument", "MelodyError", "MidiReadError", "ModelConfig", "Note",
    "OutputExistsError", "SamplingConfig", "Score", "Tokenizer", "TokenizerConfig", "TrainConfig", "evaluate", "generate", "info",
    "melody_line", "prepare", "read_midi", "render", "train", "transpose", "validate_midi", "write_midi",
]
