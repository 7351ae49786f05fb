"""melody prepare: a folder of good, odd and corrupt files becomes a token cache and a full report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, corpus_files, note, smf, track
from melody.corpus import TokenCache, file_digest, prepare
from melody.errors import CorpusError, OutputExistsError
from melody.midi_read import read_midi
from melody.tokenizer import TokenizerConfig
from melody.tokenizer import Tokenizer


@pytest.fixture
def mixed_folder(tmp_path, wild):
    """Real files in nested folders with odd suffixes, plus broken ones."""
    folder = tmp_path / "in"
    (folder / "nested" / "deeper").mkdir(parents=True)
    for path in corpus_files("folk")[:3]:
        shutil.copy(path, folder / path.name)
    shutil.copy(corpus_files("chorales")[0], folder / "nested" / "CHORALE.MID")
    shutil.copy(wild / "MIDIs_multitrack" / "Funkytown.mid", folder / "nested" / "deeper" / "funky.midi")
    shutil.copy(wild / "MIDIs_corrupted" / "ValueError_Control168.mid", folder / "clipped.kar")
    shutil.copy(wild / "MIDIs_one_track" / "empty.mid", folder / "empty.mid")
    (folder / "truncated.mid").write_bytes(corpus_files("folk")[0].read_bytes()[:40])
    (folder / "page.mid").write_text("<html>not music</html>")
    (folder / "notes.txt").write_text("not a MIDI suffix: ignored")
    return folder


def test_prepare_accounts_for_every_file(mixed_folder, tmp_path):
    summary = prepare([mixed_folder], tmp_path / "cache", workers=2)
    report = json.loads((tmp_path / "cache" / "report.json").read_text())
    entries = {entry["path"].split("/")[-1]: entry for entry in report["files"]}
    assert len(entries) == 9 and "notes.txt" not in entries
    skipped = {name: entry["reason"] for name, entry in entries.items() if entry["status"] == "skipped"}
    assert sorted(skipped) == ["empty.mid", "page.mid", "truncated.mid"]
    assert skipped["page.mid"] == "not a MIDI file (no MThd header)"
    assert entries["clipped.kar"]["repairs"] == ["clipped data bytes above 127 (1)"]
    assert (summary["ok"], summary["skipped"]) == (6, 3)
    assert report["summary"] == summary
    assert set(entries["funky.midi"]) == {"path", "digest", "status", "reason", "repairs", "tokens"}


def test_cache_holds_exactly_the_tokens_of_each_file(mixed_folder, tmp_path):
    prepare([mixed_folder], tmp_path / "cache", workers=1)
    cache = TokenCache(tmp_path / "cache")
    ok = [entry for entry in cache.report["files"] if entry["status"] == "ok"]
    assert len(cache) == len(ok)
    assert isinstance(cache.tokens, np.memmap) and cache.tokens.dtype == np.uint16
    for index, entry in enumerate(ok):
        expected = Tokenizer().encode(read_midi(entry["path"]))
        assert np.array_equal(cache.piece(index), expected), entry["path"]
        assert entry["tokens"] == expected.size


def _prepare_elsewhere(folder, out, workers, first=""):
    """prepare() in a fresh Python fed on stdin (no TensorFlow unless ``first`` imports it); its summary."""
    script = f"{first}\nimport json\nfrom melody.corpus import prepare\n" \
             f"print(json.dumps(prepare([{str(folder)!r}], {str(out)!r}, workers={workers})))"
    result = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_and_two_workers_give_identical_caches(mixed_folder, tmp_path):
    prepare([mixed_folder], tmp_path / "one", workers=1)
    assert _prepare_elsewhere(mixed_folder, tmp_path / "two", workers=2)["workers"] == 2  # forked workers
    for name in ("tokens.npy", "offsets.npy", "tokenizer.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_with_tensorflow_loaded_files_are_read_in_process(mixed_folder, tmp_path):
    """Forking TensorFlow is unsafe and forkserver would re-run the caller's script (here: stdin)."""
    summary = _prepare_elsewhere(mixed_folder, tmp_path / "cache", workers=2, first="import tensorflow")
    assert summary["workers"] == 1 and summary["ok"] == 6


def test_melody_only_keeps_one_monophonic_line(tmp_path):
    prepare(corpus_files("chorales")[:2], tmp_path / "cache", TokenizerConfig(melody_only=True), workers=1)
    cache = TokenCache(tmp_path / "cache")
    names = cache.tokenizer.names(cache.piece(0))
    assert names.count("Program_52") == 1
    durations_between = [n for n in names if n.startswith("Note_")]
    assert len(durations_between) == len(read_midi(corpus_files("chorales")[0]).instruments[0].notes)


def test_nothing_readable_is_an_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mid").write_bytes(b"garbage")
    with pytest.raises(CorpusError, match="no MIDI file could be tokenized"):
        prepare([tmp_path / "in"], tmp_path / "cache")


def test_missing_source_empty_folder_and_existing_output(tmp_path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        prepare([tmp_path / "missing"], tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no MIDI files"):
        prepare([tmp_path / "empty"], tmp_path / "cache")
    out = tmp_path / "cache"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a token cache with these settings"):
        prepare(corpus_files("folk")[:1], out)
    assert (out / "keep.txt").read_text() == "mine"
    prepare(corpus_files("folk")[:1], out, force=True)
    assert TokenCache(out).tokens.size > 0


def test_single_file_sources(tmp_path):
    song = tmp_path / "song.mid"
    song.write_bytes(smf(track(note(0, 60, 480))))
    summary = prepare([song], tmp_path / "cache")
    assert (summary["files"], summary["ok"]) == (1, 1)


def cache_files(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("tokens.npy", "drums.npy", "offsets.npy",
                                                             "tokenizer.json")}


def test_preparing_again_reads_only_new_and_changed_files_and_matches_a_fresh_run(mixed_folder, tmp_path):
    cache = tmp_path / "cache"
    prepare([mixed_folder], cache, workers=2)
    first = json.loads((cache / "report.json").read_text())
    assert prepare([mixed_folder], cache)["reused"] == 9  # nothing changed: nothing read
    assert json.loads((cache / "report.json").read_text()) == first

    for path in corpus_files("folk")[3:5]:  # two new files
        shutil.copy(path, mixed_folder / "nested" / path.name)
    changed = mixed_folder / corpus_files("folk")[0].name  # same size and time, other notes
    data, stamp = bytearray(changed.read_bytes()), changed.stat()
    at = data.index(b"\x90") + 1
    data[at] = data[at] + 1 if data[at] < 100 else data[at] - 1
    changed.write_bytes(bytes(data))
    os.utime(changed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    summary = prepare([mixed_folder], cache, workers=2)
    assert summary["files"] == 11 and summary["reused"] == 8  # 2 new + 1 changed read again
    for workers in (1, 2):
        prepare([mixed_folder], tmp_path / f"fresh{workers}", workers=workers)
        assert cache_files(cache) == cache_files(tmp_path / f"fresh{workers}")
        fresh = json.loads((tmp_path / f"fresh{workers}" / "report.json").read_text())
        assert json.loads((cache / "report.json").read_text())["files"] == fresh["files"]
    entries = {entry["path"]: entry for entry in first["files"]}
    assert entries[str(changed)]["digest"] != file_digest(changed)


def test_a_cache_with_other_settings_is_not_updated_but_replaced_only_with_force(tmp_path):
    files = corpus_files("folk")[:2]
    prepare(files, tmp_path / "cache")
    with pytest.raises(OutputExistsError, match="not a token cache with these settings"):
        prepare(files, tmp_path / "cache", TokenizerConfig(melody_only=True))
    assert prepare(files, tmp_path / "cache", TokenizerConfig(melody_only=True), force=True)["reused"] == 0
    assert TokenCache(tmp_path / "cache").tokenizer.config.melody_only
