"""Preparing a corpus: MIDI files in, a token cache out.

A token cache is a folder:

    tokens.npy      every piece's tokens one after another (uint16, memory-mapped when read)
    drums.npy       bool, one per token: True where a token sits in a drum part (not transposed)
    offsets.npy     int64, piece i is tokens[offsets[i]:offsets[i + 1]]
    tokenizer.json  the tokenizer that made the tokens
    report.json     {"summary": {...}, "files": [{"path", "digest", "status", "reason", "repairs", "tokens"}, ...]}

Files are read and tokenized in parallel forked worker processes (in the calling
process instead once it has loaded TensorFlow, which must not fork); a file that cannot
be read is skipped and reported with its reason, never fatal to the run.
Tokens stream to disk as files finish, so memory stays bounded however large
the corpus; the cache is written in input order whatever the number of workers,
so the same files always give the same cache.

Preparing again into a cache made with the same tokenizer settings is incremental:
each file's content is hashed (``digest``, BLAKE2b of its bytes), and a file whose
digest the cache already holds keeps its tokens and report entry; only new or changed
files are read. The arrays come out byte for byte as a fresh run would write them.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from melody.errors import CorpusError, MelodyError, MidiReadError, OutputExistsError, TrainingError
from melody.files import atomic_write, check_writable, folder_lock, holds_files
from melody.midi_read import find_midi_files, midi_file_bytes, read_midi
from melody.midi_write import write_midi
from melody.tokenizer import FORMAT_VERSION as TOKENIZER_VERSION, Tokenizer, TokenizerConfig

TOKEN_DTYPE = np.uint16


def tokenize_file(path: str, config: TokenizerConfig) -> tuple[dict, np.ndarray | None]:
    """Read and tokenize one file: its report entry and its tokens (None when skipped)."""
    entry = {"path": path, "status": "skipped", "reason": None, "repairs": [], "tokens": 0}
    try:
        score = read_midi(path)
        entry["repairs"] = list(score.repairs)
        tokenizer = _tokenizer(config)
        tokens = tokenizer.encode(score)
        if not tokenizer.is_note(tokens).any():
            entry["reason"] = "no pitched notes for a melody" if config.melody_only else "no notes"
            return entry, None
    except MelodyError as error:
        entry["reason"] = str(error).removeprefix(f"{path}: ")
        return entry, None
    except Exception as error:  # a bug of ours must not end a run over thousands of files
        entry["reason"] = f"internal error: {type(error).__name__}: {error}"
        return entry, None
    entry.update(status="ok", tokens=int(tokens.size))
    return entry, tokens


@lru_cache(maxsize=4)
def _tokenizer(config: TokenizerConfig) -> Tokenizer:
    return Tokenizer(config)


def _tokenize_job(job):
    return tokenize_file(*job)


def prepare(sources, out: str | os.PathLike, config: TokenizerConfig | None = None, workers: int | None = None,
            force: bool = False, on_file: Callable[[dict], None] | None = None, wait: float = 0.0) -> dict:
    """Tokenize every MIDI file under ``sources`` into the token cache ``out``; returns the summary
    (``reused``: files whose tokens an earlier run into ``out`` had made). Another run preparing into
    ``out`` is waited for up to ``wait`` seconds.

    Raises CorpusError if a source is missing or nothing could be tokenized, and
    OutputExistsError if ``out`` holds files that are not a cache with these settings and
    ``force`` is False (with ``force``, everything is tokenized afresh).
    """
    started = time.perf_counter()
    config = config or TokenizerConfig()
    files = _input_files(sources)
    out = Path(out)
    with folder_lock(out, "prepare", wait):  # a second run into the same folder is refused, not mixed in
        return _prepare_into(files, out, config, workers, force, on_file, started)


def _prepare_into(files, out: Path, config: TokenizerConfig, workers, force: bool, on_file, started) -> dict:
    earlier = None if force else _earlier_cache(out, config)
    if holds_files(out) and not force and earlier is None:
        raise OutputExistsError(f"{out} already exists and is not a token cache with these settings")
    digests = [file_digest(path) for path in files]
    known = earlier.by_digest() if earlier is not None else {}
    if earlier is not None and [(str(f), d) for f, d in zip(files, digests)] == earlier.paths_and_digests():
        for entry in earlier.report["files"]:  # nothing new, nothing changed: the cache stands as it is
            if on_file:
                on_file(entry)
        return {**earlier.report["summary"], "reused": len(files), "seconds": round(time.perf_counter() - started, 2)}
    jobs = [(str(path), config) for path, digest in zip(files, digests) if digest is None or digest not in known]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs))) if _can_fork() else 1
    fresh = _run(jobs, workers)
    entries, offsets = [], [0]
    tokenizer = Tokenizer(config)
    with tempfile.TemporaryFile(dir=out) as raw, tempfile.TemporaryFile(dir=out) as raw_drums:
        for path, digest in zip(files, digests):
            if digest is not None and digest in known:
                entry, tokens = known[digest]
                entry = {**entry, "path": str(path)}
            else:
                entry, tokens = next(fresh)
                entry = {"path": entry["path"], "digest": digest, **entry}
            entries.append(entry)
            if tokens is not None:
                raw.write(np.asarray(tokens, dtype=TOKEN_DTYPE).tobytes())
                raw_drums.write(tokenizer.drum_mask(tokens).tobytes())
                offsets.append(offsets[-1] + tokens.size)
            if on_file:
                on_file(entry)
        ok = sum(entry["status"] == "ok" for entry in entries)
        summary = {"files": len(entries), "ok": ok, "skipped": len(entries) - ok, "tokens": offsets[-1],
                   "seconds": round(time.perf_counter() - started, 2), "melody_only": config.melody_only,
                   "workers": workers, "tokenizer": asdict(config), "reused": len(entries) - len(jobs)}
        if ok == 0:
            reasons = "; ".join(sorted({entry["reason"] for entry in entries}))[:300]
            raise CorpusError(f"no MIDI file could be tokenized ({len(entries)} tried: {reasons})")
        raw.seek(0)
        _write_array(out / "tokens.npy", raw, offsets[-1], TOKEN_DTYPE)
        raw_drums.seek(0)
        _write_array(out / "drums.npy", raw_drums, offsets[-1], np.bool_)
    _save_array(out / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    tokenizer.save(out / "tokenizer.json", force=True)
    atomic_write(out / "report.json", json.dumps({"summary": summary, "files": entries}, indent=1) + "\n",
                 force=True)
    return summary


def file_digest(path: str | os.PathLike) -> str | None:
    """A hash of the file's bytes (BLAKE2b, 128 bits, hex); None for a file melody cannot read as MIDI."""
    try:
        return hashlib.blake2b(midi_file_bytes(Path(path)), digest_size=16).hexdigest()
    except MidiReadError:
        return None


def _earlier_cache(out: Path, config: TokenizerConfig) -> TokenCache | None:
    """The token cache already in ``out`` if it was made with ``config`` by this tokenizer version."""
    if not TokenCache.is_cache(out):
        return None
    try:
        cache = TokenCache(out)
    except MelodyError:
        return None  # damaged or from another version: not reused
    return cache if cache.tokenizer.config == config else None


def quantize_file(source: str | os.PathLike, out: str | os.PathLike, config: TokenizerConfig | None = None,
                  force: bool = False) -> dict:
    """Write ``source`` as a model with ``config`` sees it (read, tokenize, decode) to ``out``.

    Returns {"notes": notes written, "source_notes", "tokens", "seconds": length of the music,
    "tracks": tracks written, "source_tracks", "repairs": what the reader fixed}.
    """
    check_writable(out, force)
    score = read_midi(source)
    tokenizer = _tokenizer(config or TokenizerConfig())
    tokens = tokenizer.encode(score)
    quantized = tokenizer.decode(tokens, meta=tokenizer.prepare(score))
    write_midi(quantized, out, force=force)
    return {"notes": len(quantized.notes), "source_notes": len(score.notes), "tokens": len(tokens),
            "seconds": round(quantized.duration_seconds, 2), "tracks": len(quantized.instruments),
            "source_tracks": len(score.instruments), "repairs": list(score.repairs)}


def _input_files(sources) -> list[Path]:
    missing = [str(source) for source in sources if not Path(source).exists()]
    if missing:
        raise CorpusError(f"no such file or folder: {', '.join(missing)}")
    files = find_midi_files(sources)
    if not files:
        raise CorpusError(f"no MIDI files (.mid .midi .kar .rmi) found in {', '.join(map(str, sources))}")
    return files


def _can_fork() -> bool:
    """Workers are forked. A process that has loaded TensorFlow (threads, locks) must not fork, and
    forkserver or spawn would re-run the caller's script (or, for ``python -``, fail and respawn
    workers forever): there the files are read in this process, one after another."""
    return "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules


def _run(jobs, workers: int):
    """(entry, tokens) for each job, in input order."""
    if workers == 1:
        yield from map(_tokenize_job, jobs)
        return
    with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_signals) as pool:
        yield from pool.imap(_tokenize_job, jobs, chunksize=max(1, min(16, len(jobs) // (8 * workers))))


def _worker_signals() -> None:
    """A forked worker leaves signals to its parent: it ignores Ctrl-C (the parent answers it) and dies
    quietly on the SIGTERM with which the pool ends it, instead of running the handler it inherited from
    a training run (``melody.interrupts``), which printed a traceback when the pool closed early."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _write_array(path: Path, raw, count: int, dtype) -> None:
    """Copy ``count`` raw values from the open file ``raw`` into the .npy file ``path``, atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=(count,))
    chunk, itemsize = 1 << 22, np.dtype(dtype).itemsize
    for begin in range(0, count, chunk):
        block = np.frombuffer(raw.read(min(chunk, count - begin) * itemsize), dtype=dtype)
        array[begin:begin + block.size] = block
    array.flush()
    del array
    os.replace(temporary, path)


def _save_array(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(temporary, path)


class TokenCache:
    """A prepared corpus, read through memory maps: ``cache.piece(i)`` is piece i's tokens."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        try:
            self.tokens = np.load(folder / "tokens.npy", mmap_mode="r", allow_pickle=False)
            self.drums = np.load(folder / "drums.npy", mmap_mode="r", allow_pickle=False)
            self.offsets = np.load(folder / "offsets.npy", allow_pickle=False)
            self.report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CorpusError(f"{folder}: not a token cache made by 'melody prepare' ({error})") from None
        self.tokenizer = Tokenizer.load(folder / "tokenizer.json")
        self.folder = folder

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def paths_and_digests(self) -> list[tuple[str, str | None]]:
        return [(entry["path"], entry.get("digest")) for entry in self.report["files"]]

    def by_digest(self) -> dict[str, tuple[dict, np.ndarray | None]]:
        """digest -> (report entry, tokens or None if skipped) for every file the cache was made from."""
        found, piece = {}, 0
        for entry in self.report["files"]:
            tokens = None
            if entry["status"] == "ok":
                tokens, piece = self.piece(piece), piece + 1
            if entry.get("digest"):
                found[entry["digest"]] = (entry, tokens)
        return found

    def piece(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index]:self.offsets[index + 1]]

    @staticmethod
    def is_cache(folder: str | os.PathLike) -> bool:
        return (Path(folder) / "tokens.npy").is_file() and (Path(folder) / "tokenizer.json").is_file()


# ----------------------------------------------------------------------------- the cache `melody train FOLDER` keeps

def corpus_cache(source: str | os.PathLike, tokenizer: TokenizerConfig | None, report) -> TokenCache:
    """A token cache for ``source``: itself if it is one (its tokenizer must be ``tokenizer``, if given),
    else ``source`` prepared once with ``tokenizer`` (default settings if None) into the user cache.
    ``report.preparing(files)`` is told how many files there are, ``report.prepared(entry)`` each one done."""
    source = Path(source)
    if TokenCache.is_cache(source):
        cache = TokenCache(source)
        if tokenizer is not None and cache.tokenizer.config != tokenizer:
            raise TrainingError(f"{source} was prepared with other tokenizer settings ({cache.tokenizer.config}); "
                                "prepare it again with these settings or train on it as it is")
        return cache
    if not source.exists():
        raise CorpusError(f"{source}: no such file or folder")
    files = find_midi_files([source])
    if not files:
        raise CorpusError(f"{source}: no MIDI files (.mid .midi .kar .rmi) found")
    tokenizer = tokenizer or TokenizerConfig()
    root = Path(os.environ.get("MELODY_CACHE", Path.home() / ".cache" / "melody")) / "corpora"
    key = hashlib.sha256(json.dumps([TOKENIZER_VERSION, asdict(tokenizer), str(source.resolve())]).encode())
    folder = root / key.hexdigest()[:20]
    report.preparing(len(files))
    try:  # incremental: files whose content the cache already holds are not read again
        prepare([source], folder, tokenizer, on_file=report.prepared, wait=SHARED_CORPUS_WAIT)
    except OutputExistsError:  # damaged, or left by another melody: prepared afresh
        prepare([source], folder, tokenizer, force=True, on_file=report.prepared, wait=SHARED_CORPUS_WAIT)
    (folder / "report.json").touch()  # used now: the last to be forgotten
    _forget_old_corpora(root, MAX_SHARED_CORPORA)
    return TokenCache(folder)


MAX_SHARED_CORPORA = 8  # folders prepared for ``melody train FOLDER``; the least recently used go first
SHARED_CORPUS_WAIT = 1800.0  # seconds a second training run on the same folder waits for the first's preparing


def _forget_old_corpora(root: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently prepared corpora under ``root`` (a cache: they are
    prepared again when needed)."""
    def last_used(path: Path) -> float:
        return (path / "report.json").stat().st_mtime if (path / "report.json").exists() else 0.0

    corpora = sorted((path for path in root.iterdir() if TokenCache.is_cache(path)), key=last_used)
    for old in corpora[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
