"""Hearing and seeing a score: a WAV through FluidSynth, a piano-roll PNG through matplotlib.

Audio: the score is written as a MIDI file and played by the ``fluidsynth``
program (Debian packages ``fluidsynth`` and ``fluid-soundfont-gm``) with a
General MIDI soundfont, so every program and the drums sound like themselves.
Without FluidSynth, pretty_midi's sine-wave synthesis stands in (drums are then
silent) and the result says so. The WAV is 44.1 kHz, 16-bit stereo, as long as
the music plus ``RELEASE_SECONDS``, with its peak scaled to ``PEAK`` (never clipped).
The synthesizer writes to a temporary file, which is read back in chunks and
streamed into the WAV, so memory stays flat however long the music; up to
``MAX_RENDER_SECONDS`` are rendered, and a synthesizer that delivered less than
the music lasts (its disk filled up) is an error, not a silent tail.

Pictures: time runs left to right in bars (bar lines drawn, numbered as in the file),
pitch bottom to top with note names (MIDI 60 = C4), one colour per instrument,
drums in a lane of their own below, and the new music shaded wherever it lies (after the seed, bars inside it, parts added).
matplotlib draws on its Agg canvas directly, without pyplot: no display needed.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.errors import RenderError
from melody.files import atomic_write, atomic_writer, check_writable
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes, to_pretty_midi, track_name
from melody.score import Score, excerpt

SAMPLE_RATE = 44100
RELEASE_SECONDS = 1.0
PEAK = 10 ** (-1 / 20)  # -1 dBFS
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PICTURE_INCHES, PICTURE_DPI = (12, 6), 100  # 1200 x 600 pixels


@dataclass
class Audio:
    seconds: float       # the WAV's length
    engine: str          # "fluidsynth" or "pretty_midi"
    note: str = ""       # one line for the user when the fallback was used


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path | None:
    """The given soundfont, else $MELODY_SOUNDFONT, else the first General MIDI soundfont installed."""
    if soundfont is not None:
        if not Path(soundfont).is_file():
            raise RenderError(f"{soundfont}: no such soundfont file")
        return Path(soundfont)
    candidates = [os.environ.get("MELODY_SOUNDFONT", ""), *SOUNDFONTS]
    return next((Path(path) for path in candidates if path and Path(path).is_file()), None)


MAX_RENDER_SECONDS = 2 * 60 * 60  # two hours: a 1.3 GB WAV, and twice that in temporary space while rendering
CHUNK_FRAMES = 1 << 18  # audio is scaled and written six seconds at a time, never held whole


def render_wav(score: Score, out: str | os.PathLike, soundfont=None, force: bool = False) -> Audio:
    """Write ``score`` as a WAV file at ``out`` (atomically; an existing file only with ``force``).

    RenderError for music longer than ``MAX_RENDER_SECONDS`` (a small file can declare hours of
    silence), and when the synthesizer delivered less audio than the music lasts (its temporary
    folder filled up): the check that keeps a silent tail from being reported as written.
    """
    check_writable(out, force)
    if score.duration_seconds > MAX_RENDER_SECONDS:
        raise RenderError(f"the music lasts {score.duration_seconds / 3600:.1f} hours; melody renders audio up to "
                          f"{MAX_RENDER_SECONDS // 3600} hours")
    music = int(round(score.duration_seconds * SAMPLE_RATE))
    frames = int(round((score.duration_seconds + RELEASE_SECONDS) * SAMPLE_RATE))
    with tempfile.TemporaryDirectory() as scratch:
        raw, engine, note = _synthesize(score, soundfont, Path(scratch))
        delivered = raw.stat().st_size // FRAME_BYTES
        if delivered < music:
            raise RenderError(f"the synthesizer delivered {delivered / SAMPLE_RATE:.1f} s of the "
                              f"{music / SAMPLE_RATE:.1f} s of music; is the temporary folder "
                              f"({tempfile.gettempdir()}) full?")
        with atomic_writer(out, force) as handle:
            _write_wav(handle, raw, frames)
    return Audio(frames / SAMPLE_RATE, engine, note)


FRAME_BYTES = 8  # the synthesizer's output: stereo float32, little-endian, in a file in the scratch folder


def _synthesize(score: Score, soundfont, scratch: Path) -> tuple[Path, str, str]:
    """A raw audio file of ``score`` in ``scratch``, the engine's name, and a note for the user when
    pretty_midi's sine waves stood in for FluidSynth."""
    program, font, raw = shutil.which("fluidsynth"), find_soundfont(soundfont), scratch / "out.raw"
    if program and font:
        midi = scratch / "in.mid"
        midi.write_bytes(midi_bytes(score))
        command = [program, "-n", "-i", "-q", "-F", str(raw), "-T", "raw", "-O", "float", "-E", "little",
                   "-r", str(SAMPLE_RATE), "-g", "0.5", str(font), str(midi)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if result.returncode < 0:
            raise RenderError(f"fluidsynth was stopped by {signal.Signals(-result.returncode).name}"
                              + (" (a file size limit: ulimit -f)" if result.returncode == -signal.SIGXFSZ else ""))
        if result.returncode != 0 or not raw.is_file():
            raise RenderError(f"fluidsynth failed ({result.returncode}): "
                              f"{(result.stderr or result.stdout).strip()[-300:]}")
        return raw, "fluidsynth", ""
    missing = "the fluidsynth program" if not program else "a General MIDI soundfont"
    note = (f"{missing} not found: using pretty_midi's simple synthesis (drums silent); for real "
            "instruments install the Debian packages fluidsynth and fluid-soundfont-gm")
    mono = to_pretty_midi(score).synthesize(fs=SAMPLE_RATE).astype("<f4")
    np.stack([mono, mono], axis=1).tofile(raw)
    return raw, "pretty_midi", note


def _write_wav(handle, raw: Path, frames: int) -> None:
    """16-bit stereo PCM at SAMPLE_RATE from the ``raw`` samples: cut or padded with silence to ``frames``,
    the last 50 ms faded out (no click where the release is cut), the peak scaled to PEAK. Two passes over
    the file, a chunk at a time: the first finds the peak, the second writes."""
    peak = max((float(np.abs(chunk).max()) for chunk in _chunks(raw, frames)), default=0.0)
    gain = PEAK * 32767 / peak if peak > 0 else 0.0
    with wave.open(handle, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.setnframes(frames)
        for chunk in _chunks(raw, frames):
            out.writeframesraw(np.clip(np.round(chunk * gain), -32768, 32767).astype("<i2").tobytes())


def _chunks(raw: Path, frames: int):
    """The samples of ``raw`` cut or padded to ``frames``, with the fade-out applied, CHUNK_FRAMES at a time."""
    fade = min(frames, int(0.05 * SAMPLE_RATE))
    with open(raw, "rb") as source:
        for start in range(0, frames, CHUNK_FRAMES):
            stop = min(start + CHUNK_FRAMES, frames)
            chunk = np.zeros((stop - start, 2), np.float32)
            present = np.fromfile(source, dtype="<f4", count=2 * len(chunk))
            chunk.flat[:len(present)] = present
            if stop > frames - fade:
                ramp = np.linspace(1, 0, fade, dtype=np.float32)[max(start - (frames - fade), 0):
                                                                   stop - (frames - fade)]
                chunk[len(chunk) - len(ramp):] *= ramp[:, None]
            yield chunk


AROUND_BARS = 4  # bars of the seed shown and heard on each side of new music


def around(score: Score, written: tuple[int, int], bars: int = AROUND_BARS) -> tuple[Score, tuple[int, int], int]:
    """What to show and play of new music in ``score`` (ticks ``written``): it with up to ``bars`` bars of the
    seed before and after it, moved to start at 0 (the tempo, meter and key then in force), where the new
    music lies in that, and the number in ``score`` of its first bar (from 1), to label the bars with."""
    lines = score.bar_lines(until=max(score.end_tick, written[1]) + 1)
    before = [line for line in lines if line <= written[0]]
    after = [line for line in lines if line >= written[1]]
    start = before[max(0, len(before) - 1 - bars)] if before else 0
    end = after[min(bars, len(after) - 1)] if after else written[1]
    if end <= written[1] or not any(n.start >= end for n in score.notes):
        end = None
    cut = excerpt(score, start, end)
    return cut, (written[0] - start, written[1] - start), lines.index(start) + 1 if start in lines else 1


def bars_of(score: Score, first: int, last: int | None = None) -> Score:
    """Bars ``first`` to ``last`` (counted from 1; None: to the end) of ``score``, moved to start at 0."""
    lines = [line for line in score.bar_lines(until=score.end_tick) if line < score.end_tick]
    last = len(lines) if last is None else last
    if not 1 <= first <= last <= len(lines):
        raise RenderError(f"the file has {len(lines)} bars; ask for bars within 1-{len(lines)}")
    return excerpt(score, lines[first - 1], lines[last] if last < len(lines) else None)


def render(source: str | os.PathLike | Score, wav=None, png=None, soundfont=None, force: bool = False,
           written: tuple[int, int] | None = None, title: str | None = None,
           bars: tuple[int, int | None] | None = None, first_bar: int = 1) -> Audio | None:
    """``melody render``: a MIDI file (or a Score) to ``wav`` and/or ``png``; returns the Audio if a WAV was made.
    ``written``: ticks where new music begins and ends, shaded in the picture; ``bars``: (first, last) bars
    only (``bars_of``), numbered as in the file; ``first_bar``: the number the picture gives the first bar."""
    for path in (wav, png):
        if path is not None:
            check_writable(path, force)
    score = source if isinstance(source, Score) else read_midi(source)
    if bars is not None:
        score, first_bar = bars_of(score, *bars), bars[0]
    title = title or ("score" if isinstance(source, Score) else Path(source).name)
    if png is not None:
        piano_roll(score, png, title=title, written=written, force=force, first_bar=first_bar)
    return render_wav(score, wav, soundfont, force) if wav is not None else None


# ----------------------------------------------------------------------------- the picture

def note_name(pitch: int) -> str:
    """MIDI pitch as a name with octave, 60 -> C4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def piano_roll(score: Score, out: str | os.PathLike, title: str = "score", written: tuple[int, int] | None = None,
               force: bool = False, first_bar: int = 1) -> Path:
    """Write a piano-roll PNG (PICTURE_INCHES at PICTURE_DPI) of ``score``, its bars numbered from ``first_bar``
    (an excerpt's number in its file); the stretch ``written`` (ticks from, to) is shaded as new, wherever it
    lies, the rest as the seed. One colour per instrument (20 at
    most, then they repeat); the legend names the first ``MAX_LEGEND`` instruments and counts the rest."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_writable(out, force)
    sounding = [(index, i) for index, i in enumerate(score.instruments) if i.notes]
    pitched = [i for _, i in sounding if not i.is_drum]
    drums = [i for _, i in sounding if i.is_drum]
    figure = Figure(figsize=PICTURE_INCHES, dpi=PICTURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    rows = 2 if drums and pitched else 1
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": [4, 1][:rows]})[:, 0]
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(score.instruments) <= 10 else "tab20"].colors
    lanes = ([(axes[0], False)] if pitched else []) + ([(axes[-1], True)] if drums else [])
    for axis, is_drum in lanes:
        by_colour: dict[int, list] = {}  # one collection per colour, however many tracks share it
        for index, instrument in sounding:
            if instrument.is_drum == is_drum:
                by_colour.setdefault(index % len(palette), []).extend(instrument.notes)
        for colour, notes in by_colour.items():
            _draw_notes(axis, notes, is_drum, palette[colour], score)
        _grid(axis, score, written, first_bar)
    if pitched:
        _pitch_axis(axes[0], pitched)
    if drums:
        axes[-1].set_ylabel("drums")
        axes[-1].set_yticks([])
    handles = _legend(sounding, palette)
    if handles:
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                       frameon=False)  # beside the roll: it never hides notes
    axes[-1].set_xlabel("bar")
    figure.suptitle(_title(score, title))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write(out, buffer.getvalue(), force=force)


def _draw_notes(axis, notes, is_drum: bool, colour, score: Score) -> None:
    """One rectangle per note (drum hits drawn a 16th long); outlines only where notes are few enough to show them."""
    from matplotlib.collections import PolyCollection

    notes = np.array([(n.start, n.end, n.pitch) for n in notes], dtype=float)
    x0, x1, y = notes[:, 0], notes[:, 1], notes[:, 2]
    if is_drum:
        x1 = np.maximum(x1, x0 + score.ticks_per_quarter / 4)
    outline = 0.3 if score.end_tick < 40 * 4 * score.ticks_per_quarter else 0.0
    boxes = np.stack([np.stack([x0, y - 0.4], 1), np.stack([x1, y - 0.4], 1),
                      np.stack([x1, y + 0.4], 1), np.stack([x0, y + 0.4], 1)], axis=1)
    axis.add_collection(PolyCollection(boxes, facecolors=[colour], edgecolors="black", linewidths=outline))
    low, high = axis.get_ylim() if axis.collections[:-1] else (np.inf, -np.inf)
    axis.set_ylim(min(low, y.min() - 1.5), max(high, y.max() + 1.5))


def _grid(axis, score: Score, written: tuple[int, int] | None, first_bar: int = 1) -> None:
    end = max(score.end_tick, 1)
    lines = score.bar_lines(until=end)
    step = max(1, len(lines) // 24)  # at most about 24 numbered lines
    for tick in lines[::step]:
        axis.axvline(tick, color="0.8", linewidth=0.6, zorder=0)
    axis.set_xticks(lines[::step], [str(first_bar + number) for number in range(0, len(lines), step)])
    axis.set_xlim(0, end)
    if written is None:
        return
    begin, until = max(0, written[0]), min(written[1], end)
    if begin >= until:
        return
    axis.axvspan(begin, until, color="gold", alpha=0.15, zorder=0)
    for seed in ((0, begin), (until, end)):
        if seed[0] < seed[1]:
            axis.axvspan(*seed, color="0.5", alpha=0.08, zorder=0)
    if axis.get_subplotspec().is_first_row():
        axis.text(begin, 1.0, " new", transform=axis.get_xaxis_transform(), va="bottom", fontsize=8)
        if begin > 0:
            axis.text(0, 1.0, " seed", transform=axis.get_xaxis_transform(), va="bottom", fontsize=8)



def _pitch_axis(axis, instruments) -> None:
    pitches = [n.pitch for i in instruments for n in i.notes]
    low, high = min(pitches), max(pitches)
    naturals = {0, 2, 4, 5, 7, 9, 11} if high - low <= 24 else {0}
    ticks = [p for p in range(low - 1, high + 2) if p % 12 in naturals and 0 <= p <= 127]
    axis.set_yticks(ticks, [note_name(p) for p in ticks])
    axis.set_ylabel("pitch")


MAX_LEGEND = 24  # a legend past this fills the picture's height and says nothing more


def _legend(sounding, palette):
    from matplotlib.patches import Patch

    handles = [Patch(color=palette[index % len(palette)], label=track_name(instrument))
               for index, instrument in sounding[:MAX_LEGEND]]
    if len(sounding) > MAX_LEGEND:
        handles.append(Patch(color="white", label=f"... and {len(sounding) - MAX_LEGEND:,} more tracks"))
    return handles


def _title(score: Score, name: str) -> str:
    bpm = score.tempos[0].bpm if score.tempos else 120.0
    seconds = round(score.duration_seconds)
    bars = len(score.bar_lines())
    return f"{name}  ·  {bpm:.0f} bpm  ·  {bars} bars, {seconds // 60}:{seconds % 60:02d}"
