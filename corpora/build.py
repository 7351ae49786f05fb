"""Build the shipped corpora from the encodings bundled with music21.

    pip install music21        # build-time only, not a dependency of melody
    python corpora/build.py    # writes corpora/chorales/ and corpora/folk/

Each piece is converted from music21's score objects straight into melody's
Score (notes, ties merged, pickup bars padded so bar lines fall where the
music has them, time signature, key, tempo when the source has one) and written
with melody's own DAW-ready MIDI writer. Pieces that music21 cannot convert are
skipped and counted; ``corpora/README.md`` gives the numbers of the last build.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from melody.midi_write import write_midi  # noqa: E402
from melody.score import Instrument, KeySignature, Note, Score, Tempo, TimeSignature  # noqa: E402

TICKS = 480
CHORALE_PROGRAM = 52   # General MIDI "Choir Aahs": the chorales are sung
FOLK_PROGRAM = 0       # General MIDI "Acoustic Grand Piano"
CHORALE_BPM = 80
VOICES = ("Soprano", "Alto", "Tenor", "Bass")       # the chorale encodings carry no tempo
FOLK_BPM = 120         # used when a folk song has no Q: field


def to_score(m21_score, program, default_bpm: int, name_parts: bool) -> Score:
    """A music21 score as a melody Score (480 ticks per quarter); ``program`` is a General MIDI program or a
    function giving one for each music21 part."""
    from music21 import meter, tempo

    parts = list(m21_score.parts) or [m21_score]
    pickup = _pickup(parts[0])
    instruments = []
    for index, part in enumerate(parts):
        notes = []
        for element in part.stripTies().flatten().notes:
            if element.duration.isGrace or element.duration.quarterLength <= 0:
                continue
            start = _ticks(element.offset + pickup)
            duration = max(1, _ticks(element.duration.quarterLength))
            velocity = element.volume.velocity or 80
            notes += [Note(start, pitch.midi, duration, velocity) for pitch in element.pitches]
        if notes:
            name = (part.partName or f"Voice {index + 1}") if name_parts else "Melody"
            chosen = program(part) if callable(program) else program
            instruments.append(Instrument(program=chosen, name=name, notes=notes))
    flat = parts[0].flatten()
    signatures = [TimeSignature(_ticks(ts.offset + pickup) if ts.offset else 0, ts.numerator, ts.denominator)
                  for ts in flat.getElementsByClass(meter.TimeSignature)]
    marks = [mark for mark in flat.getElementsByClass(tempo.MetronomeMark) if mark.number]
    tempos = [Tempo(0, round(60_000_000 / _quarter_bpm(marks[0])))] if marks else \
        [Tempo(0, 60_000_000 // default_bpm)]
    keys = [KeySignature(0, key) for key in [_key_name(flat)] if key]
    return Score(TICKS, instruments, tempos, signatures, keys)


def _ticks(quarters) -> int:
    return int(round(Fraction(quarters) * TICKS))


def _pickup(part) -> Fraction:
    """Quarters missing from an incomplete first bar, so that bar lines stay in place."""
    measures = part.getElementsByClass("Measure")
    return Fraction(measures[0].paddingLeft) if len(measures) else Fraction(0)


def _quarter_bpm(mark) -> float:
    return mark.number * mark.referent.quarterLength


def _key_name(flat) -> str | None:
    """The first key as mido names keys ('C', 'F#m', 'Bb'), or None."""
    from music21 import key as m21_key

    signatures = list(flat.getElementsByClass(m21_key.KeySignature))
    if not signatures:
        return None
    found = signatures[0] if isinstance(signatures[0], m21_key.Key) else signatures[0].asKey("major")
    name = found.tonic.name.replace("-", "b") + ("m" if found.mode == "minor" else "")
    valid = {"C", "G", "D", "A", "E", "B", "F#", "C#", "F", "Bb", "Eb", "Ab", "Db", "Gb", "Cb",
             "Am", "Em", "Bm", "F#m", "C#m", "G#m", "D#m", "A#m", "Dm", "Gm", "Cm", "Fm", "Bbm", "Ebm", "Abm"}
    return name if name in valid else None


# ----------------------------------------------------------------------------- jobs

STRINGS = {"violin": 40, "viola": 41, "violoncello": 42, "cello": 42}
IRISH_PROGRAM = 40     # General MIDI "Violin": O'Neill's, Ryan's and Aird's are fiddle and pipe tunes
VOCAL = ("palestrina", "madrigals")


def chorale_jobs():
    from music21 import corpus

    for path in corpus.getComposer("bach"):
        yield ("chorale", str(path), HERE / "chorales" / (Path(path).stem + ".mid"))


def folk_jobs():
    yield from _abc_jobs("essenFolksong", "folk", skip=lambda collection: collection.startswith("test"))


def irish_jobs():
    for collection in ("oneills1850", "ryansMammoth", "airdsAirs"):
        yield from _abc_jobs(collection, "irish", prefix=collection)


def _abc_jobs(composer: str, kind: str, skip=lambda collection: False, prefix: str = ""):
    """A job per tune of every multi-tune ABC file of a music21 corpus folder."""
    from music21 import corpus

    for path in corpus.getComposer(composer):
        collection = Path(path).stem
        if skip(collection):
            continue  # music21's own test files, not part of the Essen collections
        text = Path(path).read_text(encoding="latin-1")
        name = f"{prefix}-{collection}" if prefix else collection
        for number, tune in _split_abc(text):
            yield (kind, tune, HERE / kind / f"{name}-{number}.mid")


def part_music_jobs(which: str):
    """Palestrina's masses and motets; Monteverdi's madrigals, the Trecento pieces and Josquin's chansons;
    the string quartets of Beethoven, Haydn and Mozart. Only one encoding of a piece that music21 holds in
    two formats (a ``.krn`` beside the ``.mxl``) is converted."""
    from music21 import corpus

    composers = {"palestrina": ["palestrina"], "madrigals": ["monteverdi", "trecento", "josquin"],
                 "quartets": ["beethoven", "haydn", "mozart"]}[which]
    for composer in composers:
        paths = [Path(path) for path in corpus.getComposer(composer)]
        chosen = {}
        for path in sorted(paths, key=lambda path: path.suffix not in (".mxl", ".xml")):
            if path.suffix in (".mxl", ".xml", ".krn", ".abc"):
                chosen.setdefault(path.with_suffix(""), path)
        root = Path(corpus.__file__).parent
        for path in chosen.values():
            relative = path.relative_to(root).with_suffix("")
            name = "-".join(part for part in relative.parts[1:] if part != composer) or relative.name
            yield (which, str(path), HERE / which / f"{composer}-{_safe(name)}.mid")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _split_abc(text: str):
    """(X number, ABC text of one tune) for each tune in a multi-tune ABC file."""
    starts = [match.start() for match in re.finditer(r"^X:", text, flags=re.MULTILINE)]
    for begin, end in zip(starts, starts[1:] + [len(text)]):
        tune = text[begin:end]
        number = re.match(r"X:\s*(\d+)", tune)
        yield (number.group(1) if number else str(begin)), tune


def _string_program(part) -> int:
    name = (part.partName or "").lower()
    return next((program for word, program in STRINGS.items() if word in name), STRINGS["violin"])


def convert(job) -> tuple[str, str | None]:
    """Convert one piece; returns (output path, None) or (output path, reason it was skipped)."""
    kind, source, out = job
    try:
        from music21 import converter, corpus

        if kind == "chorale":
            m21_score = corpus.parse(source)
            voices = [part for part in m21_score.parts if part.partName in VOICES]
            if len(voices) != 4:
                return str(out), f"parts {[part.partName for part in m21_score.parts]}, not four voices"
            for part in m21_score.parts:
                if part not in voices:
                    m21_score.remove(part)  # instruments doubling the voices
            score = to_score(m21_score, CHORALE_PROGRAM, CHORALE_BPM, name_parts=True)
        elif kind in VOCAL:
            score = to_score(converter.parse(source), CHORALE_PROGRAM, CHORALE_BPM, name_parts=True)
        elif kind == "quartets":
            score = to_score(converter.parse(source), _string_program, CHORALE_BPM, name_parts=True)
        else:
            program = FOLK_PROGRAM if kind == "folk" else IRISH_PROGRAM
            score = to_score(converter.parse(source, format="abc"), program, FOLK_BPM, name_parts=False)
        if not score.instruments:
            return str(out), "no notes"
        write_midi(score, out, force=True)
        return str(out), None
    except Exception as error:  # music21 fails on some encodings in many ways: skip and count
        return str(out), f"{type(error).__name__}: {str(error)[:120]}"


COLLECTIONS = {"chorales": chorale_jobs, "folk": folk_jobs, "irish": irish_jobs,
               "palestrina": lambda: part_music_jobs("palestrina"), "madrigals": lambda: part_music_jobs("madrigals"),
               "quartets": lambda: part_music_jobs("quartets")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", default=list(COLLECTIONS), choices=list(COLLECTIONS))
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    for which in arguments.which:
        jobs = list(COLLECTIONS[which]())
        (HERE / which).mkdir(exist_ok=True)
        for stale in (HERE / which).glob("*.mid"):
            stale.unlink()
        started, skipped = time.time(), []
        with multiprocessing.Pool(arguments.workers) as pool:
            for done, (out, reason) in enumerate(pool.imap_unordered(convert, jobs, chunksize=4), start=1):
                if reason:
                    skipped.append(f"{Path(out).name}\t{reason}")
                if done % 200 == 0:
                    print(f"{which}: {done}/{len(jobs)}", flush=True)
        (HERE / which / "SKIPPED.tsv").write_text("".join(line + "\n" for line in sorted(skipped)))
        print(f"{which}: {len(jobs) - len(skipped)} written, {len(skipped)} skipped, "
              f"{time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
