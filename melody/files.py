"""Atomic file writes that never overwrite by surprise.

Data is written to a temporary file beside the target, flushed to disk, and
only then given its name (and the folder flushed too), so a crash or Ctrl-C never
leaves half a file.
Without ``force`` the final step is a hard link, which fails if the name was
taken in the meantime, so an existing file is never replaced.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from melody.errors import MelodyError, OutputExistsError


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """``path`` as a Path, if a file can be written there: OutputExistsError if it exists (unless ``force``)
    or is a folder; MelodyError if the nearest existing folder above it is a file or cannot be written."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists")
    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder, not a file")
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise MelodyError(f"cannot write {path}: {above} is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise MelodyError(f"cannot write {path}: {above} is not writable")
    return path


def atomic_write(path: str | os.PathLike, data: bytes | str, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; refuse to replace an existing file unless ``force``.
    A failing write (disk full, a read-only disk) is a MelodyError naming the file; nothing is left behind."""
    return atomic_write_all({path: data}, force)[0]


def atomic_write_all(files: dict, force: bool = False) -> list[Path]:
    """Write several files (path -> bytes or text) all or nothing: each goes to disk under a temporary
    name first, and they take their names only once every one is written, so a disk filling up half way
    through leaves none of them."""
    with _staged(list(files), force) as handles:
        for data, handle in zip(files.values(), handles):
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return [Path(path) for path in files]


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, force: bool = False):
    """A binary handle to stream a large file into; it becomes ``path`` only when the block ends without
    error (as ``atomic_write``)."""
    with _staged([path], force) as (handle,):
        yield handle


@contextlib.contextmanager
def _staged(paths: list, force: bool):
    """Handles to temporary files beside ``paths``: flushed to disk and given their names when the block
    ends without error; removed on any failure. OSError becomes one MelodyError naming the files."""
    paths = [check_writable(path, force) for path in paths]
    temporaries, handles = [], []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temporaries.append(temporary)
            handles.append(os.fdopen(descriptor, "wb"))
        yield handles
        for handle, temporary in zip(handles, temporaries):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.chmod(temporary, 0o644)
        for path, temporary in zip(paths, temporaries):
            if force:
                os.replace(temporary, path)
            else:
                _link_without_replacing(temporary, path)
        for folder in dict.fromkeys(path.parent for path in paths):
            sync_folder(folder)
    except OSError as error:
        names = ", ".join(map(str, paths)) if len(paths) <= 3 else f"{paths[0]} and {len(paths) - 1} more files"
        raise MelodyError(f"cannot write {names} ({error.strerror or error})"
                          + ("; none of them was written" if len(paths) > 1 else "")) from None
    finally:
        for handle in handles:
            with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
                handle.close()
        for temporary in temporaries:
            if os.path.exists(temporary):
                os.unlink(temporary)


def sync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries to disk, so a file renamed into it survives a power cut (where supported)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a folder
    finally:
        os.close(descriptor)


def _link_without_replacing(temporary: str, path: Path) -> None:
    """Give ``temporary`` the name ``path`` unless that name is taken (atomically where links work)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists") from None
    except OSError:  # a file system without hard links: check, then rename
        check_writable(path)
        os.replace(temporary, path)


LOCK = ".melody.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, task: str, wait: float = 0.0):
    """Hold ``folder/.melody.lock`` (creating the folder) while ``task`` writes into it. A second melody run
    on the same folder waits up to ``wait`` seconds for the first, then gets a MelodyError naming it; a lock
    whose process is gone (kill -9, a power cut) is recognised as stale and taken over. Processes are told
    apart by id, so a folder shared between machines (a network disk) is not protected."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MelodyError(f"cannot create {folder} ({error.strerror or error})") from None
    path, deadline, stale = folder / LOCK, time.monotonic() + wait, 0
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None and owner != os.getpid() and _running(owner):
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise MelodyError(f"{folder} is in use by another melody run (process {owner}); wait for it to "
                                  "finish or stop it") from None
            stale += 1
            if stale > 3:
                raise MelodyError(f"{folder}: could not take its lock file {LOCK}") from None
            path.unlink(missing_ok=True)  # stale: the process that took it is gone
        except OSError as error:
            raise MelodyError(f"cannot write in {folder} ({error.strerror or error})") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{os.getpid()} {task}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def holds_files(folder: Path) -> bool:
    """Whether ``folder`` exists and holds anything but melody's lock, or is not a folder."""
    return folder.exists() and (not folder.is_dir() or any(entry.name != LOCK for entry in folder.iterdir()))


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text(errors="replace").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OSError, OverflowError):
        return False
    return True


MAX_JSON_BYTES = 16 * 1024 * 1024  # far above any file melody writes (a tokenizer is ~20 KB)


def read_json_file(path: str | os.PathLike, error: type[Exception] = ValueError):
    """The JSON document in the regular file ``path``, at most ``MAX_JSON_BYTES`` long.

    Raises ``error`` naming the file for anything else: missing, not a regular file (a FIFO
    or a device would block or never end), too large, not UTF-8 JSON.
    """
    import json
    import stat

    path = Path(path)
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            raise error(f"{path}: not a regular file")
        if status.st_size > MAX_JSON_BYTES:
            raise error(f"{path}: {status.st_size:,} bytes, more than the {MAX_JSON_BYTES:,} a melody JSON "
                        "file may hold")
        with open(path, "rb") as handle:
            return json.loads(handle.read(MAX_JSON_BYTES + 1).decode("utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, ValueError, RecursionError) as problem:
        raise error(f"{path}: unreadable ({problem})") from None
