"""Audio through FluidSynth (and the fallback), piano-roll pictures, and both from the command line."""

from __future__ import annotations

import shutil
import struct
import wave

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CORPORA, require_fluidsynth

from melody.cli import cli
from melody.midi_read import read_midi
from melody.render import RELEASE_SECONDS, SAMPLE_RATE, piano_roll, render, render_wav
from melody.score import Instrument, Note, Score, Tempo

CHORALE = CORPORA / "chorales" / "bwv10.7.mid"


@pytest.fixture(scope="module")
def fluidsynth():
    require_fluidsynth()


def read_wav(path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path)) as file:
        params = file.getparams()
        samples = np.frombuffer(file.readframes(params.nframes), dtype="<i2").reshape(-1, params.nchannels)
    return params, samples.astype(float) / 32768


def one_bar(is_drum: bool, pitches) -> Score:
    """Eight eighth notes at 120 bpm (1.958 s of music), on a piano or on the drum kit."""
    notes = tuple(Note(i * 240, pitches[i % len(pitches)], 200, 100) for i in range(8))
    return Score(480, (Instrument(0, is_drum, notes=notes),), (Tempo(0, 500_000),))


def centroid(samples: np.ndarray) -> float:
    """Spectral centroid in Hz of the mixed-down signal."""
    spectrum = np.abs(np.fft.rfft(samples.mean(axis=1)))
    return float((np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE) * spectrum).sum() / spectrum.sum())


def test_wav_of_a_chorale_has_the_music_length_and_a_normalised_peak(fluidsynth, tmp_path):
    audio = render(CHORALE, wav=tmp_path / "c.wav")
    assert audio.engine == "fluidsynth" and audio.note == ""
    params, samples = read_wav(tmp_path / "c.wav")
    assert (params.framerate, params.sampwidth, params.nchannels) == (44100, 2, 2)
    expected = read_midi(CHORALE).duration_seconds + RELEASE_SECONDS
    assert params.nframes / 44100 == pytest.approx(expected, abs=1 / 44100)
    assert 0.85 < np.abs(samples).max() < 1.0  # normalised to -1 dBFS, not clipped
    loud = np.sqrt(np.mean(samples[: 44100 * 60] ** 2))
    assert loud > 0.02  # sounding throughout the music, not one blip


def synthesize(score: Score, tmp_path) -> tuple:
    """The Audio ``render_wav`` reports for ``score`` and the samples it wrote."""
    audio = render_wav(score, tmp_path / "out.wav", force=True)
    return audio, read_wav(tmp_path / "out.wav")[1]


def test_piano_and_drums_sound_different(fluidsynth, tmp_path):
    piano = synthesize(one_bar(False, [60, 64, 67]), tmp_path)[1]
    drums = synthesize(one_bar(True, [36, 42, 38, 42]), tmp_path)[1]
    frames = round((one_bar(False, [60]).duration_seconds + RELEASE_SECONDS) * SAMPLE_RATE)
    assert len(piano) == len(drums) == frames
    for samples in (piano, drums):
        assert np.sqrt(np.mean(samples ** 2)) > 0.01
    assert centroid(drums) > 2 * centroid(piano)  # cymbals and snare are far brighter than a C major triad


def test_without_fluidsynth_pretty_midi_stands_in_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fluidsynth program on it
    audio, samples = synthesize(one_bar(False, [60, 64, 67]), tmp_path)
    assert audio.engine == "pretty_midi" and "fluidsynth" in audio.note and "\n" not in audio.note
    assert len(samples) == round((1880 / 960 + RELEASE_SECONDS) * SAMPLE_RATE)  # last note ends at 1.958 s
    assert audio.seconds == len(samples) / SAMPLE_RATE
    assert np.abs(samples).max() == pytest.approx(10 ** (-1 / 20), rel=1e-3)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_piano_roll_png_has_the_screen_size(tmp_path, pop_song):
    piano_roll(read_midi(CHORALE), tmp_path / "c.png", title="bwv10.7", written=(480 * 40, 480 * 56))
    assert png_size(tmp_path / "c.png") == (1200, 600)
    piano_roll(read_midi(pop_song), tmp_path / "pop.png")  # 12 instruments and a drum lane
    assert png_size(tmp_path / "pop.png") == (1200, 600)
    piano_roll(one_bar(True, [36]), tmp_path / "drums.png")  # drums only
    assert png_size(tmp_path / "drums.png") == (1200, 600)


def test_render_command_writes_both_beside_the_file_and_never_overwrites(fluidsynth, tmp_path):
    song = tmp_path / "song.mid"
    shutil.copy(CHORALE, song)
    result = CliRunner().invoke(cli, ["render", str(song)])
    assert result.exit_code == 0, result.output
    assert "via fluidsynth" in result.output
    assert png_size(tmp_path / "song.png") == (1200, 600) and read_wav(tmp_path / "song.wav")[0].nframes > 0
    before = (tmp_path / "song.wav").read_bytes()
    again = CliRunner().invoke(cli, ["render", str(song)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert (tmp_path / "song.wav").read_bytes() == before


def test_a_piano_roll_of_thousands_of_tracks_is_drawn_with_a_bounded_legend(tmp_path):
    """5,000 one-note tracks (a hostile file's shape): one collection per colour, a legend of 24 names and
    a count; before, one legend entry and one collection per track took minutes."""
    from melody.render import MAX_LEGEND, _legend

    tracks = tuple(Instrument(index % 128, name=f"t{index}",
                              notes=(Note(480 * (index % 64), 40 + index % 40, 240, 80),)) for index in range(5000))
    score = Score(480, tracks)
    piano_roll(score, tmp_path / "many.png")
    assert png_size(tmp_path / "many.png") == (1200, 600)
    labels = [handle.get_label() for handle in _legend(list(enumerate(tracks)), [(0, 0, 0)] * 20)]
    assert len(labels) == MAX_LEGEND + 1 and labels[-1] == f"... and {5000 - MAX_LEGEND:,} more tracks"


def test_png_alone_goes_beside_the_file_and_a_flag_after_it_stays_a_flag(tmp_path):
    """`--png --force` once wrote a picture named '--force'; --png and --wav take a path or nothing."""
    song = tmp_path / "song.mid"
    shutil.copy(CHORALE, song)
    for _ in range(2):  # the second time, --force really overwrites
        result = CliRunner().invoke(cli, ["render", str(song), "--png", "--force"])
        assert result.exit_code == 0, result.output
        assert f"Wrote {tmp_path / 'song.png'} (piano roll)" in result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["song.mid", "song.png"]
    result = CliRunner().invoke(cli, ["render", str(song), "--png", str(tmp_path / "roll.png")])
    assert result.exit_code == 0 and png_size(tmp_path / "roll.png") == (1200, 600)


def test_generate_renders_one_wav_and_png_per_sample(fluidsynth, bundle, tmp_path):
    result = CliRunner().invoke(cli, ["generate", "--model", str(bundle.path), "--seed", str(CHORALE), "--out",
                                      str(tmp_path / "idea.mid"), "-n", "2", "--bars", "2", "--wav", "--png"])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["idea-1.mid", "idea-1.png", "idea-1.wav", "idea-2.mid", "idea-2.png", "idea-2.wav"]
    for number in (1, 2):  # the new music and the seed's 4 bars before it, not the whole chorale
        params, _ = read_wav(tmp_path / f"idea-{number}.wav")
        whole = read_midi(tmp_path / f"idea-{number}.mid")
        lines = whole.bar_lines(until=read_midi(CHORALE).end_tick + 1)
        shown = whole.duration_seconds - whole.tick_to_seconds(lines[-5])
        assert params.nframes / 44100 == pytest.approx(shown + RELEASE_SECONDS, abs=1e-2)
        assert params.nframes / 44100 < whole.duration_seconds - 5
    result = CliRunner().invoke(cli, ["generate", "--model", str(bundle.path), "--seed", str(CHORALE), "--out",
                                      str(tmp_path / "all.mid"), "--bars", "2", "--wav", "--whole"])
    assert result.exit_code == 0, result.output
    params, _ = read_wav(tmp_path / "all.wav")
    assert params.nframes / 44100 == pytest.approx(read_midi(tmp_path / "all.mid").duration_seconds + RELEASE_SECONDS,
                                                   abs=1e-3)


def test_new_music_is_shown_with_four_bars_of_the_seed_on_each_side():
    from melody.render import around
    from melody.score import Instrument, Note, Score, TimeSignature

    bar = 1920
    score = Score(480, (Instrument(0, notes=tuple(Note(bar * b, 60 + b, bar, 80) for b in range(16))),),
                  time_signatures=(TimeSignature(0, 4, 4),))
    shown, region, first = around(score, (6 * bar, 8 * bar))  # bars 7-8 written inside the piece
    assert region == (4 * bar, 6 * bar) and [n.pitch for n in shown.notes] == list(range(62, 72)) and first == 3
    shown, region, first = around(score, (14 * bar, 16 * bar))  # the last two bars: nothing after them
    assert region == (4 * bar, 6 * bar) and [n.pitch for n in shown.notes] == list(range(70, 76)) and first == 11
    shown, region, first = around(score, (bar, 2 * bar))  # bar 2: one bar before it
    assert region == (bar, 2 * bar) and shown.notes[0].pitch == 60 and first == 1
    from matplotlib.figure import Figure
    from melody.render import _grid

    axis = Figure().add_subplot()  # the picture numbers the bars shown as the file does
    _grid(axis, shown, region, first_bar=11)
    assert [label.get_text() for label in axis.get_xticklabels()][:3] == ["11", "12", "13"]


def test_render_shows_and_plays_only_the_bars_asked(fluidsynth, tmp_path):
    """`melody render FILE --bars 5-8`: the picture and the audio of those four bars only; a range past the
    file's end or not a range is one Error line."""
    song = tmp_path / "song.mid"
    shutil.copy(CHORALE, song)
    result = CliRunner().invoke(cli, ["render", str(song), "--bars", "5-8", "--quiet"])
    assert result.exit_code == 0, result.output
    whole = read_midi(CHORALE)
    lines = whole.bar_lines(until=whole.end_tick)
    params, _ = read_wav(tmp_path / "song.wav")
    seconds = whole.tick_to_seconds(lines[8]) - whole.tick_to_seconds(lines[4])
    assert params.nframes / 44100 == pytest.approx(seconds + RELEASE_SECONDS, abs=0.05)
    for wrong in ("5-999", "8-5", "five"):
        refused = CliRunner().invoke(cli, ["render", str(song), "--bars", wrong, "--png", "--force"])
        assert refused.exit_code == 2 and refused.output.startswith("Error:"), wrong
