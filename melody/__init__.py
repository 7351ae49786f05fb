"""melody: learn music from MIDI files and write new music back out as MIDI.

Data flows one way:
MIDI file -> read_midi -> Score -> Tokenizer.encode -> token cache -> train -> bundle
-> generate -> tokens -> Tokenizer.decode -> Score -> write_midi.

The functions below mirror the commands (``melody prepare``, ``train``, ``generate``,
``evaluate``, ``render``, ``info``); none of them imports TensorFlow until it runs.
"""

__version__ = "0.2.0"

# What ``import melody`` offers, each imported on first use (``import melody`` itself is instant, so the
# ``melody`` command can answer Ctrl-C while the rest loads): name -> the module that owns it.
_OWNERS = {
    "MelodyError": "errors", "MidiReadError": "errors", "OutputExistsError": "errors", "SettingError": "errors",
    "read_midi": "midi_read", "validate_midi": "midi_write", "write_midi": "midi_write",
    "Instrument": "score", "Note": "score", "Score": "score", "melody_line": "score", "transpose": "score",
    "Tokenizer": "tokenizer", "TokenizerConfig": "tokenizer", "prepare": "corpus", "ModelConfig": "model",
    "TrainConfig": "train_config", "train": "train", "GenerateConfig": "generate", "Generation": "generate",
    "generate": "generate", "SamplingConfig": "sampler", "evaluate": "evaluate", "render": "render", "info": "info",
}
__all__ = sorted(_OWNERS)


def __getattr__(name: str):
    if name not in _OWNERS:
        raise AttributeError(f"module 'melody' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"melody.{_OWNERS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_OWNERS])
