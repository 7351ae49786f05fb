"""``melody generate`` and ``melody render``: new music, heard and seen."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

from melody.cli.base import cli, configured, echo_notes, progress, seconds_since_start, settings
from melody.generate import HARMONY, GenerateConfig
from melody.sampler import SamplingConfig


def _writing_options(command):
    """The options of the commands that write new music: overwriting, audio and picture, the summary."""
    for option in reversed([
            click.option("--force", is_flag=True, help="Overwrite existing output files."),
            click.option("--wav", is_flag=True, help="Also write each output as audio (OUT.wav), through FluidSynth."),
            click.option("--png", is_flag=True, help="Also write a piano-roll picture of each output (OUT.png)."),
            click.option("--whole", is_flag=True, help="--wav and --png of the whole piece (default: the new music "
                                                       "with up to 4 bars of the seed on each side)."),
            click.option("--soundfont", type=click.Path(path_type=str), default=None, help="Soundfont for --wav."),
            click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
            click.option("--quiet", "-q", is_flag=True, help="No progress bar.")]):
        command = option(command)
    return command


@cli.command()
@click.option("--model", "-m", type=click.Path(path_type=str), default=None,
              help="Model folder from `melody train` (default: the model shipped with melody).")
@click.option("--seed", "-s", "seed_file", type=click.Path(path_type=str), default=None,
              help="MIDI file to continue (default: start from scratch).")
@click.option("--out", "-o", type=click.Path(path_type=str), default=None,
              help="Output file (default: SEED-continued.mid, or melody.mid without a seed).")
@settings(GenerateConfig, SamplingConfig)
@_writing_options
def generate(model, seed_file, out, force, wav, png, whole, soundfont, as_json, quiet, **options):
    """Continue a MIDI file (or start from scratch) and write new MIDI files.

    The output keeps the seed's tempo, time signature, key and instruments, and
    holds the seed followed by the new bars unless --continuation-only.

    \b
    Examples:
      melody generate --seed song.mid
      melody generate --seed song.mid --bars 16 --temperature 0.9 --top-p 0.95
      melody generate --seed song.mid --num-samples 4 --random-seed 7 --out ideas.mid
      melody generate --model my-model --out new.mid
      melody generate --out waltz.mid --time-signature 3/4 --key Eb --bars 16
      melody generate --seed song.mid --density 2 --accompaniment none
      melody generate --seed song.mid --wav --png
      melody generate --seed chorale.mid --keep Soprano --from-bar 5 --bars 4   (new lower voices)
      melody generate --seed song.mid --from-bar 9 --bars 4 --candidates 8     (fill bars 9-12)
      melody generate --seed song.mid --after 32 --bars 8     (go on from bar 32, not the outro)
      melody generate --seed tune.mid --add "Bass=cello" --keep 1 --from-bar 1 --bars 16
    """
    config = configured(GenerateConfig, options, sampling=configured(SamplingConfig, options))
    _generate(model, seed_file, out, config, force, wav, png, whole, soundfont, as_json, quiet)


@cli.command()
@click.argument("melody_file", type=click.Path(path_type=str))
@click.option("--parts", "-p", type=str, default=",".join(HARMONY), show_default=True,
              help="The new parts, highest first: NAME or NAME=INSTRUMENT (a General MIDI program number or "
                   "name; default choir), comma-separated.")
@click.option("--model", "-m", type=click.Path(path_type=str), default=None,
              help="Model folder from `melody train` (default: the model shipped with melody).")
@click.option("--out", "-o", type=click.Path(path_type=str), default=None,
              help="Output file (default: MELODY-harmonized.mid).")
@settings(SamplingConfig)
@click.option("--num-samples", "-n", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Different harmonizations to write (OUT-1.mid ... OUT-K.mid), made in one batch.")
@click.option("--random-seed", type=int, default=None, help="Make the output reproducible byte for byte.")
@_writing_options
def harmonize(melody_file, parts, model, out, num_samples, random_seed, force, wav, png, whole, soundfont, as_json,
              quiet, **options):
    """Write new parts under a melody, from its first bar to its last.

    Every track of MELODY_FILE is kept as it is; the model writes the new parts
    around it, hearing each melody note in its time and told what comes in the
    next beats and where the piece ends. The same as `melody generate --seed
    MELODY_FILE --keep (every track) --add PARTS --from-bar 1 --bars (all)
    --ending`.

    \b
    Examples:
      melody harmonize tune.mid
      melody harmonize tune.mid --parts "Alto,Tenor,Bass" --num-samples 4 --png
      melody harmonize tune.mid --parts "Viola=viola,Cello=cello" --out quartet.mid
      melody harmonize tune.mid --parts "Piano=piano" --temperature 0.9
    """
    from melody.bundle import read_manifest
    from melody.generate import DEFAULT_MODEL, harmonizing

    told = read_manifest(model or DEFAULT_MODEL).model_config.ahead
    config = harmonizing(melody_file, tuple(p.strip() for p in parts.split(",") if p.strip()), ending=told,
                         num_samples=num_samples, random_seed=random_seed,
                         sampling=configured(SamplingConfig, options))
    out = out or f"{Path(melody_file).stem}-harmonized.mid"
    _generate(model, melody_file, out, config, force, wav, png, whole, soundfont, as_json, quiet)


def _generate(model, seed_file, out, config: GenerateConfig, force, wav, png, whole, soundfont, as_json,
              quiet) -> None:
    """Generate as ``config`` asks, render if asked, print the summary."""
    import json

    from melody.files import check_writable
    from melody.generate import generate as generate_music, output_paths
    from melody.render import find_soundfont

    for path in output_paths(out, seed_file, config.num_samples):  # before any work: nothing overwritten by surprise
        for suffix in [".wav"] * wav + [".png"] * png:
            check_writable(path.with_suffix(suffix), force)
    if wav:
        find_soundfont(soundfont)
    if not quiet and not as_json and sys.stderr.isatty():
        click.echo(f"Sampling {config.num_samples} x {config.bars} bars ...", err=True)
    result = generate_music(model, seed_file, out, config, force=force)
    summary = result.summary
    if wav or png:
        rendering = time.perf_counter()
        summary["rendered"] = _render_outputs(result, wav, png, whole, soundfont, force, quiet)
        summary["wall_seconds"]["render"] = round(time.perf_counter() - rendering, 3)
    summary["wall_seconds"]["total"] = round(seconds_since_start(), 2)
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        _print_summary(summary)


def _print_summary(summary: dict) -> None:
    for path in summary["files"] + summary.get("rendered", []):
        click.echo(f"Wrote {path}")
    looped = summary["accompaniment_notes"]
    bars, short = summary["bars"], summary["bars_short"]
    written = f"{summary['samples']} x {bars} bars" if not short else (
        f"{summary['samples']} x {bars} bars asked, {len(short)} of them cut short by the token limit "
        f"({', '.join(f'{bars - missing} of {bars} bars' for missing in short)})")
    click.echo(f"{written}: {summary['notes']} new notes"
               + (f" ({looped} of them the accompaniment repeating its last bars)" if looped else "")
               + f", {summary['tokens']} tokens at {summary['tokens_per_second']:,.0f} tokens/s, "
               f"{summary['seconds']:.1f} s of music (random seed {summary['random_seed']})")
    if summary["after"] is not None and summary["after"] < summary["seed_bars"]:
        click.echo(f"Seed: its bars 1-{summary['after']} of {summary['seed_bars']} (--after: the bars after them left out)")
    tracks = summary["tracks"]
    roles = [f"{role} {', '.join(tracks[role])}" for role in ("kept", "written", "added", "looped", "silent")
             if tracks.get(role)]
    sometimes = [f"{name} in {count} of {summary['samples']} samples" for name, count in tracks["looped_in"].items()]
    if sometimes:
        roles.append("looped where the model left it silent or all but silent (the other parts then written again, "
                     "hearing the loop): " + ", ".join(sometimes))
    if tracks.get("beyond"):
        roles.append(f"not written: {', '.join(tracks['beyond'])} (the model learned at most "
                     f"{summary['learned_parts']} parts)")
    if roles:
        click.echo("Tracks: " + "; ".join(roles) + ("; drums not written: the model plays no drums"
                                                    if tracks["not_played"] else ""))
    if summary["paces"]:
        from melody.continuation import NEW_PART_PACE

        click.echo("Pace: " + ", ".join(f"{name} {pace:.2f}" for name, pace in summary["paces"].items())
                   + f" note onsets per quarter note (a seed part's in its last bars that play, a new part's "
                   f"{NEW_PART_PACE:g}x the lead's): the lead and new parts drawn to it, the others held back to it "
                   "and drawn to it only a little "
                   "(--no-pace: the model's own)")
    if summary["following_log_likelihood"]:
        click.echo(f"Fill: the seed's next bars at {-np.mean(summary['following_log_likelihood']):.3f} nats/token "
                   f"after it (the likeliest of {summary['candidates']} candidate(s) per sample)")
    stages = summary["wall_seconds"]
    click.echo(f"Done in {stages['total']:.1f} s: " + ", ".join(f"{stage} {stages[stage]:.2f}" for stage in
                                                            ("read", "load", "prime", "sample", "second take",
                                                             "judge", "write")
                                                            if stage in stages)
               + (f", render {stages['render']:.2f}" if "render" in stages else "") + ", the rest start-up")
    if summary["silent_samples"]:
        click.echo(f"Note: {summary['silent_samples']} sample(s) came out without a new note after "
                   f"4 draws; try another --random-seed or a higher --temperature", err=True)
    if summary["outro"]:
        from melody.continuation import OUTRO_BARS

        bar, fuller, last = summary["outro"]
        click.echo(f"Note: only {last} of the seed's parts play in its last {OUTRO_BARS} bars, against {fuller} in bars "
                   f"{bar}-{bar + OUTRO_BARS - 1} (an outro?); to go on from inside the song instead: --after {bar}",
                   err=True)


def _render_outputs(result, wav: bool, png: bool, whole: bool, soundfont, force: bool, quiet: bool) -> list[str]:
    """WAV and/or PNG beside each generated MIDI file (of its new music with a few bars around it, or ``whole``);
    the paths written."""
    from melody.render import around, render

    written, notes = [], set()
    with progress(len(result.files), "Rendering", quiet) as bar:
        for path, score, region in zip(result.files, result.scores, result.written):
            first = 1
            if region is not None and not whole:
                score, region, first = around(score, region)
            audio = render(score, wav=path.with_suffix(".wav") if wav else None,
                           png=path.with_suffix(".png") if png else None, soundfont=soundfont, force=force,
                           written=region, title=path.name, first_bar=first)
            written += [str(path.with_suffix(s)) for s, wanted in ((".wav", wav), (".png", png)) if wanted]
            if audio is not None and audio.note:
                notes.add(audio.note)
            bar.update(1)
    echo_notes(sorted(notes))
    return written


@cli.command()
@click.argument("midi_file", type=click.Path(path_type=str))
@click.option("--wav", type=click.Path(path_type=str), is_flag=False, flag_value="", default=None,
              help="Write audio: to the file given, or alone to FILE.wav.")
@click.option("--png", type=click.Path(path_type=str), is_flag=False, flag_value="", default=None,
              help="Write a piano roll: to the file given, or alone to FILE.png.")
@click.option("--soundfont", type=click.Path(path_type=str), default=None,
              help="A .sf2 soundfont (default: the General MIDI soundfont of the fluid-soundfont-gm package).")
@click.option("--bars", "bar_range", type=str, default=None, metavar="FIRST-LAST",
              help="Only these bars, counted from 1, e.g. 41-52 (a continuation's new bars) or 41- (to the end).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def render(midi_file, wav, png, bar_range, soundfont, force, quiet):
    """Hear and see a MIDI file: a WAV through FluidSynth and a piano-roll PNG.

    Without --wav or --png, writes FILE.wav and FILE.png beside the file. The
    WAV is 44.1 kHz 16-bit stereo, normalised, one second longer than the music.

    \b
    Examples:
      melody render continued.mid
      melody render continued.mid --png --force
      melody render continued.mid --wav continued.wav
      melody render song.mid --png roll.png --soundfont my.sf2
      melody render continued.mid --bars 21-32        (the seed's last 4 bars and 8 new)
    """
    from melody.render import find_soundfont, render as render_file

    if wav is None and png is None:
        wav = png = ""
    wav, png = (str(Path(midi_file).with_suffix(suffix)) if given == "" else given
                for given, suffix in ((wav, ".wav"), (png, ".png")))
    if wav is not None:
        find_soundfont(soundfont)
    if not quiet and sys.stderr.isatty():
        click.echo(f"Rendering {midi_file} ...", err=True)
    audio = render_file(midi_file, wav=wav, png=png, soundfont=soundfont, force=force, bars=_bar_range(bar_range))
    if audio is not None and audio.note:
        echo_notes([audio.note])
    for path, what in ((wav, f"audio, {audio.seconds:.1f} s via {audio.engine}" if audio else ""),
                       (png, "piano roll")):
        if path is not None:
            click.echo(f"Wrote {path} ({what})")


def _bar_range(text: str | None) -> tuple[int, int | None] | None:
    """``FIRST-LAST`` or ``FIRST-`` as (first, last or None); a SettingError for anything else."""
    from melody.errors import SettingError

    if text is None:
        return None
    first, dash, last = text.partition("-")
    if not dash or not first.strip().isdigit() or (last.strip() and not last.strip().isdigit()):
        raise SettingError(f"--bars takes FIRST-LAST or FIRST- (bars counted from 1), got {text!r}")
    return int(first), int(last) if last.strip() else None
