"""What you have: a MIDI file or a model folder described, for people and (as a dict) for scripts.

Neither needs TensorFlow: a model is described from its manifest
(``bundle.read_manifest``) and the file names in its corpus.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from melody.bundle import FORMAT_VERSION, corpus_files, read_manifest
from melody.errors import MelodyError
from melody.midi_read import midi_header, read_midi
from melody.midi_write import track_name
from melody.render import note_name
from melody.score import pitch_range
from melody.vocabulary import format_table


def info(path: str | os.PathLike, vocabulary: bool = False) -> dict:
    """``file_info`` for a MIDI file, ``model_info`` for a model folder (with its token layout if
    ``vocabulary``; a MIDI file has none, so asking for it there is an error)."""
    path = Path(path)
    if path.is_dir():
        return model_info(path, vocabulary)
    if not path.exists():
        raise MelodyError(f"{path}: no such file or folder")
    if vocabulary:
        raise MelodyError(f"{path}: a MIDI file has no vocabulary; --vocabulary describes a model folder")
    return file_info(path)


def file_info(path: str | os.PathLike) -> dict:
    """Format, tracks, instruments, tempo, metre, length, notes, pitch range and repairs of a MIDI file."""
    import pretty_midi

    score = read_midi(path)
    header = midi_header(path)
    low, high = pitch_range(score)
    instruments = [{"name": track_name(i), "program": None if i.is_drum else i.program,
                    "instrument": "Drums" if i.is_drum else pretty_midi.program_to_instrument_name(i.program),
                    "drums": i.is_drum, "notes": len(i.notes)} for i in score.instruments]
    return {
        "kind": "midi", "path": str(path), **header,
        "instruments": instruments,
        "tempo_changes": len(score.tempos),
        "bpm": [round(tempo.bpm, 2) for tempo in score.tempos[:16]] or [120.0],
        "time_signatures": [f"{t.numerator}/{t.denominator}" for t in score.time_signatures] or ["4/4"],
        "keys": [k.key for k in score.key_signatures],
        "bars": len(score.bar_lines()), "seconds": round(score.duration_seconds, 2),
        "notes": len(score.notes),
        "pitch_range": None if low is None else [note_name(low), note_name(high)],
        "repairs": list(score.repairs),
    }


def model_info(folder: str | os.PathLike, vocabulary: bool = False) -> dict:
    """Corpus, vocabulary, size, training time and validation numbers of a model folder; with ``vocabulary``,
    its token layout too (``token_kinds``: ``melody.vocabulary.Vocabulary.rows``)."""
    manifest = read_manifest(folder)
    metrics = manifest.metrics
    corpus = metrics.get("corpus") if isinstance(metrics.get("corpus"), dict) else {}
    train_names, validation_names = corpus_files(folder)
    return {
        "kind": "model", "path": str(folder), "version": FORMAT_VERSION,
        "model": asdict(manifest.model_config), "melody_only": manifest.melody_only,
        "vocabulary": len(manifest.tokenizer), "programs": manifest.programs, "tracks": manifest.tracks,
        "velocities": None if manifest.velocities is None else list(manifest.velocities),
        "pitches": None if manifest.pitches is None else list(manifest.pitches),
        "parameters": _number(metrics.get("parameters")),
        "corpus": {key: _number(corpus.get(key)) for key in ("files", "ok", "skipped", "tokens", "train_files",
                                                             "val_files", "train_tokens", "val_tokens")},
        "sources": sorted({_printable(str(Path(name).parent)) for name in train_names + validation_names}),
        "epochs": len(metrics.get("epochs") or []), "steps": _number(metrics.get("steps")),
        "training_seconds": _number(metrics.get("training_seconds")), "stopped": _printable(metrics.get("stopped")),
        "init_from": _started_from(metrics.get("init_from")),
        "precision": _printable(metrics.get("precision") or "float32"),
        "val_loss": _number(metrics.get("best_val_loss")), "perplexity": _number(metrics.get("best_val_perplexity")),
        "unigram_val_nll": _number(metrics.get("unigram_val_nll")), "train": asdict(manifest.train_config),
        **({"token_kinds": manifest.tokenizer.kinds.rows()} if vocabulary else {}),
    }


def _instrument_names(programs: list[int]) -> str:
    import pretty_midi

    names = ["Drums" if p < 0 else pretty_midi.program_to_instrument_name(p) for p in programs[:12]]
    return ", ".join(names) + (f" and {len(programs) - 12} more" if len(programs) > 12 else "")


def _number(value):
    """``value`` if it is a number, else None (a model folder may come from anyone)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _printable(value) -> str:
    """Only printable characters of ``value`` (no terminal escape sequences from a stranger's folder)."""
    return "".join(ch for ch in str(value if value is not None else "") if ch.isprintable())[:200]


def info_text(described: dict) -> str:
    """``info``'s dict as lines for a terminal."""
    return _model_text(described) if described["kind"] == "model" else _file_text(described)


def _file_text(d: dict) -> str:
    lines = [f"{d['path']}: MIDI format {d['format']}, {d['tracks']} tracks, {d['ticks_per_quarter']} ticks per quarter",
             f"  length: {d['bars']} bars, {d['seconds']:.1f} s; {d['notes']} notes"
             + (f", pitches {d['pitch_range'][0]}..{d['pitch_range'][1]}" if d["pitch_range"] else ""),
             f"  tempo: {d['bpm'][0]:g} bpm" + (f" ({d['tempo_changes']} changes)" if d["tempo_changes"] > 1 else ""),
             f"  time signature: {', '.join(d['time_signatures'][:8])}"
             + (f"; key: {', '.join(d['keys'][:4])}" if d["keys"] else ""),
             f"  instruments ({len(d['instruments'])}):"]
    for i in d["instruments"]:
        program = "drums" if i["drums"] else f"program {i['program']} {i['instrument']}"
        lines.append(f"    {i['name']:24} {program:40} {i['notes']:>6} notes")
    lines.append(f"  repairs: {'; '.join(d['repairs'])}" if d["repairs"] else "  repairs: none needed")
    return "\n".join(lines)


def _lookback_text(distances) -> str:
    return f"lookback {', '.join(map(str, distances))} bars" if distances else "no lookback"


def _started_from(record) -> str | None:
    """What a run started from (``--init-from``), as recorded in its metrics (any shape a file may hold)."""
    if not isinstance(record, dict):
        return None
    return (f"{_printable(str(record.get('model')))} ({_number(record.get('tokens_matched'))} of "
            f"{_number(record.get('tokens'))} tokens matched)")


def duration(seconds: float) -> str:
    """A span of time as people say it: 22 s, 14 min, 3 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _as_trained(precision: str) -> str:
    """The precision a run recorded, its reason told of the machine that trained (not the one reading it)."""
    return precision.replace("this machine has", "the training machine had").replace("this machine",
                                                                                     "the training machine")


def _learned_text(d: dict) -> str:
    """What else training met, as the primer is held to it (``continuation.Learned``); older folders do not say."""
    said = [f"up to {d['tracks']} parts"] if d.get("tracks") else []
    if d.get("pitches"):
        said.append("notes " + " to ".join(note_name(p) for p in d["pitches"]))
    if d.get("velocities"):
        said.append("one velocity" if len(d["velocities"]) == 1 else f"{len(d['velocities'])} velocities")
    return "; " + ", ".join(said) if said else ""


def _model_text(d: dict) -> str:
    model, corpus = d["model"] or {}, d["corpus"]
    lines = [f"{d['path']}: melody model (format {d['version']}), {'melody only' if d['melody_only'] else 'full score'}",
             f"  network: {model.get('layers')} LSTM layers x {model.get('units')} units, embedding "
             f"{model.get('embedding')}, dropout {model.get('dropout')}; "
             f"{_lookback_text(model.get('lookback'))}; {d['parameters'] or 0:,} parameters",
             f"  vocabulary: {d['vocabulary']} tokens; instruments learned: {_instrument_names(d['programs'])}"
             + _learned_text(d),
             f"  corpus: {corpus.get('ok')} files ({corpus.get('skipped')} skipped), {corpus.get('tokens') or 0:,} "
             f"tokens; {corpus.get('train_files')} for training, {corpus.get('val_files')} held out"
             + (f"; from {', '.join(d['sources'][:6])}" if d["sources"] else ""),
             f"  training: {d['epochs']} epochs, {d['steps']} steps, {duration(d['training_seconds'] or 0)} "
             f"({d['stopped']}); precision {_as_trained(d['precision'])}"
             + (f"; started from {d['init_from']}" if d["init_from"] else "")]
    if d["val_loss"] is not None:
        lines.append(f"  validation loss: {d['val_loss']:.4f} nats/token, perplexity {d['perplexity']:.2f} "
                     f"(unigram baseline {d['unigram_val_nll']:.4f})")
    if "token_kinds" in d:
        lines += ["  token layout:"] + ["    " + line for line in format_table(d["token_kinds"]).splitlines()]
    return "\n".join(lines)
