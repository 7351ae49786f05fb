"""``melody generate``: continue a seed (or start from scratch) and write MIDI files.

    check the request -> read the seed -> read the model's manifest (a wrong folder is
    reported at once) -> the primer (``continuation.make_primer``) -> load the network's
    weights (``bundle.load_weights``; NumPy, no TensorFlow: ``numpy_lstm``) -> sample
    exactly ``bars`` bars in the seed's meter (``sampler.Sampler``) -> arrange the new
    music after the seed, the band playing on (``continuation.arrange``) -> write the
    files, all or none.

From scratch, the primer is the opening (header and first bar line) of a piece the
model trained on, picked by the random seed: the key, density and band of music it
knows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.bundle import DEFAULT_MODEL, Manifest, load_corpus, load_weights, read_manifest
from melody.ahead import KeptNotes
from melody.continuation import (ACCOMPANIMENTS, Learned, Primer, added_under, arrange, avoiding_parallels,
                                 chord_limits, following_tokens, fuller_bar, in_order, kept_notes, left_out,
                                 loops_sounding, make_primer, paces, primer_from_opening, registers, starved,
                                 track_name, with_loops)
from melody.errors import MelodyError, SettingError
from melody.files import atomic_write_all, check_writable
from melody.midi_read import read_midi
from melody.midi_write import midi_bytes
from melody.numpy_lstm import NumpyLSTM, spare_threads
from melody.sampler import Sampler, SamplingConfig
from melody.keys import parse_key
from melody.score import Instrument, Score, cut, end_line, lead_index, parse_meter
from melody.settings import setting
from melody.tokenizer import TokenizerConfig

TOKENS_PER_BAR_CAP = 256
MAX_BARS = 256  # at most 256 tokens a bar: 65,536 tokens in one run
RETRIES = 3  # draws for a sample that came out without a note
CHOIR = 52  # General MIDI 'Choir Aahs': the instrument of a new track unless told
KEY_STRENGTH = 1.5  # nats off an out-of-key note: 4.5x less likely (measured in BENCHMARKS.md, "Musical fit")
# Nats off a note per note of another part it would clash with. At 0.5, 12 multi-track pop songs continued from their
# middle (3 draws each) clashed 1.17x as often as their real bars and put the lead on another part's pitch class 0.87x
# as often; at 1.0, 0.75x and 1.00x. Held-out chorales, Palestrina, madrigals and quartets then clash 0.04-0.06 of the
# time parts sound together, against 0.06-0.20 in the real bars (0.06-0.12 at 0.5; BENCHMARKS.md, "Ensemble").
CLASH_STRENGTH = 1.0


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate. ``key`` and ``time_signature`` choose what music without a seed starts in
    (default: those of the training piece it opens like); with a seed they come from it."""

    bars: int = setting(8, "Bars to generate (1..256), in the seed's last meter (a bar of 1/4 is one beat).")
    num_samples: int = setting(1, "Different continuations to write (OUT-1.mid ... OUT-K.mid), made in one batch.",
                               short="-n")
    random_seed: int | None = setting(None, "Make the output reproducible byte for byte (default: a random one, "
                                      "printed).")
    primer_bars: int | None = setting(None, "Prime with only the seed's last N bars (default: all of it, up to "
                                      "1024 tokens).")
    continuation_only: bool = setting(False, "Write only the new music, not the seed before it.")
    accompaniment: str = setting("band", "band: the model writes every part it can, a part it leaves silent (or "
                                 "cannot play: drums, for a model without) repeats its last bars; loop: every part "
                                 "but the lead repeats its last bars, heard by the model as it writes the lead; "
                                 "none: nothing repeats.", choices=ACCOMPANIMENTS)
    density: float | None = setting(None, "Note onsets per quarter note to aim for (default: as the seed's last "
                                    "bars), e.g. 0.5 or 3.")
    pace: bool = setting(True, "Hold the written lead to its seed part's note onsets per quarter note in its last 4 "
                         "bars that play, and hold the other parts back to theirs (unless --density is given; off: "
                         "the model's own pace).")
    keep: tuple[str, ...] = setting((), "Seed tracks kept as they are, by number (as `melody info` lists them, from "
                                    "1) or name, comma-separated; the model writes the others around them.",
                                    parse=lambda text: tuple(p.strip() for p in text.split(",") if p.strip()),
                                    metavar="TRACKS")
    add: tuple[str, ...] = setting((), "New tracks for the model to write, under the seed's pitched tracks, highest "
                                   "first: NAME or NAME=INSTRUMENT (a General MIDI program number or name; default "
                                   "choir), comma-separated, e.g. Alto,Tenor,Bass=cello.",
                                   parse=lambda text: tuple(p.strip() for p in text.split(",") if p.strip()),
                                   metavar="PARTS")
    from_bar: int | None = setting(None, "Write from this bar of the seed on (1: from its start), the bars before it "
                                   "priming the model and the written tracks' notes there replaced (default: "
                                   "after the seed).")
    after: int | None = setting(None, "Continue after this bar of the seed, as if the seed ended there: the bars "
                                "after it are left out, and parts that repeat take their bars before it (not a "
                                "song's outro). To keep the bars after it, write a fill with --from-bar.")
    candidates: int = setting(1, "Draw this many candidates for each sample and keep the one after which the model "
                              "finds the seed's next bars likeliest (a fill: --from-bar inside the seed).")
    ending: bool = setting(False, "Close the new music: the model is told, bar by bar, where it ends (a model "
                           "trained with --ahead), and the parts arrive together on the key's tonic chord at the "
                           "last bar's downbeat and hold it.")
    key: str | None = setting(None, "Without a seed: the key to start in, e.g. C, Eb, F#m.")
    key_strength: float = setting(KEY_STRENGTH, "How firmly to stay in key: nats taken off an out-of-key note (0: "
                                  "leave it to the model).")
    clash_strength: float = setting(CLASH_STRENGTH, "How firmly parts avoid clashing: nats taken off a note for each "
                                    "note of another part sounding then that it would form a second, seventh or "
                                    "tritone with (0: leave it to the model).")
    time_signature: tuple[int, int] | None = setting(None, "Without a seed: the meter, e.g. 3/4 or 6/8.",
                                                     parse=parse_meter, metavar="N/D")
    sampling: SamplingConfig = SamplingConfig()

    def __post_init__(self):
        for name, value, top in (("bars", self.bars, MAX_BARS), ("num_samples", self.num_samples, 256),
                                 ("candidates", self.candidates, 64)):
            if not isinstance(value, int) or not 1 <= value <= top:
                raise SettingError(f"{name.replace('_', '-')} must be in 1..{top}, got {value}")
        if self.primer_bars is not None and self.primer_bars < 1:
            raise SettingError(f"primer-bars must be at least 1, got {self.primer_bars}")
        if self.key is not None:
            try:
                parse_key(self.key)
            except ValueError as error:
                raise SettingError(str(error)) from None
        if self.density is not None and not (0 < self.density <= 16):
            raise SettingError(f"density must be above 0 and at most 16 note onsets per quarter note, "
                               f"got {self.density}")
        if self.accompaniment not in ACCOMPANIMENTS:
            raise SettingError(f"accompaniment must be one of {', '.join(ACCOMPANIMENTS)}, "
                               f"got {self.accompaniment!r}")
        if not (0 <= self.key_strength <= 20):
            raise SettingError(f"key strength must be in 0..20 nats, got {self.key_strength}")
        if not (0 <= self.clash_strength <= 20):
            raise SettingError(f"clash strength must be in 0..20 nats, got {self.clash_strength}")
        for name, value in (("from-bar", self.from_bar), ("after", self.after)):
            if value is not None and value < 1:
                raise SettingError(f"{name} must be 1 or more, got {value}")
        if len(self.add) > 16:
            raise SettingError(f"at most 16 new tracks, got {len(self.add)}")
        for part in self.add:
            new_part(part)  # a SettingError for an instrument nobody knows


@dataclass
class Generation:
    """What ``generate`` made: the scores, the files written (if any) and a summary."""

    scores: list[Score]
    files: list[Path]
    summary: dict
    written: list[tuple[int, int] | None]  # ticks of each score where the new music begins and ends (None: all new)

    def pretty_midi(self) -> list:
        """The scores as ``pretty_midi.PrettyMIDI`` objects."""
        from melody.midi_write import to_pretty_midi

        return [to_pretty_midi(score) for score in self.scores]


def output_paths(out: str | os.PathLike | None, seed: str | os.PathLike | None, num_samples: int) -> list[Path]:
    """``out`` (default: '<seed>-continued.mid' or 'melody.mid'); with several samples out-1.mid, out-2.mid ..."""
    out = Path(out) if out else Path(f"{Path(seed).stem}-continued.mid" if seed else "melody.mid")
    if out.suffix.lower() not in ("", ".mid", ".midi"):
        raise SettingError(f"{out}: melody writes MIDI files; give --out a name ending in .mid")
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{number}{out.suffix or '.mid'}") for number in range(1, num_samples + 1)]


def generate(model: str | os.PathLike | Manifest | None = None, seed: str | os.PathLike | None = None,
             out: str | os.PathLike | None = None, config: GenerateConfig = GenerateConfig(), force: bool = False,
             write: bool = True, network=None) -> Generation:
    """Continue ``seed`` (a MIDI file; None starts from scratch) as ``config`` asks: ``num_samples`` samples of
    ``bars`` bars, from the model folder ``model`` (default: the shipped model).

    ``density`` (note onsets per quarter note) asks for busier or calmer music (default: as the
    seed's last bars). ``key_strength`` (nats, >= 0) makes notes outside the key (the seed's, or
    ``key``) that much less likely on pitched tracks: 0 leaves the model alone, the default
    keeps continuations in key while allowing chromatic notes. ``accompaniment``: 'band' keeps the
    seed's tracks that the model leaves silent playing their last bars, 'loop' loops every track but the
    lead (heard by a model of several parts as kept notes), 'none' lets silent tracks stop.
    Writes the files unless ``write`` is False and returns them with their scores and a summary
    (``files``, ``bars``, ``notes``, ``accompaniment_notes``, ``silent_samples``, ``seconds`` of
    music, ``tokens``, ``tokens_per_second`` of sampling, ``wall_seconds`` of each stage: read,
    load, prime, sample, second take (``_loops_heard``), write; ``random_seed``; ``paces``: per
    written part held to a pace (``pace``, no ``density``), by name, the onsets per quarter note it was held to
    (``continuation.paces``). A sample that comes out without a note is drawn again (``RETRIES`` times, with the
    random seed plus 1, 2, 3), and counted in ``silent_samples`` if it stays silent. ``network``: a model with
    ``prime`` and ``step`` (``melody.sampler``) to sample from instead of the folder's network (benchmarks compare
    other networks this way).
    Existing files are never replaced unless ``force``; nothing is written when any would be.
    """
    with spare_threads():  # the matrix products on the cores the machine has free (numpy_lstm.spare_threads)
        return _generate(model, seed, out, config, force, write, network)


def _generate(model, seed, out, config: GenerateConfig, force: bool, write: bool, network) -> Generation:
    if seed is not None and (config.key is not None or config.time_signature is not None):
        raise SettingError("key and time signature come from the seed; give them only without one")
    if seed is None and (config.keep or config.from_bar or config.add or config.after):
        raise SettingError("keep, add, from-bar and after are about a seed's tracks and bars; give a seed")
    if config.accompaniment == "loop" and (config.keep or config.from_bar or config.add):
        raise SettingError("--accompaniment loop keeps every part but the lead; it does not combine with keep, add "
                           "or from-bar")
    clock = _Clock()
    paths = output_paths(out, seed, config.num_samples) if write else []
    for path in paths:
        check_writable(path, force)
    seed_score = read_midi(seed) if seed else None
    manifest = model if isinstance(model, Manifest) else read_manifest(model or DEFAULT_MODEL)
    tokenizer = manifest.tokenizer
    grid = tokenizer.config.steps_per_quarter
    lines = None if seed_score is None else bars_of(seed_score, grid)
    seed_bars = None if lines is None else len(lines)
    around = config.after or config.from_bar or config.keep or config.add
    outro = None if seed_score is None or around else fuller_bar(seed_score, grid)
    if config.after is not None and config.after > seed_bars:
        raise SettingError(f"the seed has {seed_bars} bars; continue after bar 1 to {seed_bars} of them")
    if config.after is not None and config.after < seed_bars:
        seed_score = cut(seed_score, lines[config.after])
    if config.add:  # the new tracks join the seed, without notes: the model writes them
        seed_score = seed_score.replace(instruments=seed_score.instruments + tuple(new_part(p) for p in config.add))
    random_seed = secrets.randbelow(2**31) if config.random_seed is None else config.random_seed
    looping = frozenset()
    if config.accompaniment == "loop" and seed_score is not None and not tokenizer.config.melody_only:
        others = frozenset(range(len(seed_score.instruments))) - {lead_index(seed_score)}
        looped, at_bar, loops = with_loops(seed_score, others, config.bars, grid)
        if loops:  # the loops are kept notes after the seed, the lead written over them
            seed_score, looping = looped, frozenset(loops)
            config = dataclasses.replace(config, keep=tuple(str(k + 1) for k in sorted(others)), from_bar=at_bar + 1)
    request = _request(seed_score, manifest, config, random_seed)
    clock.lap("read")

    sampler = _sampler(manifest, config) if network is None else Sampler(network, tokenizer.token_table())
    clock.lap("load")
    following = following_tokens(request.primer, tokenizer, config.bars) \
        if seed_score is not None and not looping else None  # a fill's next bars (not the loops after the lead)
    if following is None and config.candidates > 1:
        raise SettingError("candidates are judged by the seed's bars after the new ones: give --from-bar and --bars "
                           "that end inside the seed")
    primed = sampler.prime(request.primer.tokens, request.kept, ending_in=config.bars - 1 if config.ending else None,
                           header=tokenizer.header_length(request.primer.tokens),
                           drums=tuple(drum for drum, _ in tokenizer.tracks(request.primer.tokens)))
    clock.lap("prime")
    loops = None  # the parts past those the model learned loop from the first take on, heard by the written ones
    if request.left_out and config.clash_strength:
        loops = loops_sounding(seed_score, request.primer, tokenizer, config.bars,
                               [request.left_out] * (config.num_samples * config.candidates))
    generated, complete = _sample(sampler, primed, request, tokenizer, config, random_seed, clock, loops=loops)
    tokens = int(sum(len(row) for row in generated))  # sampled: every candidate, and any second take (below)
    fit = None if following is None else _following_fit(sampler, request.primer.tokens, generated, following,
                                                        tokenizer)
    if following is not None:  # a fill: how likely the model finds the seed's next bars after each candidate
        best = [sample * config.candidates + int(np.argmax(fit[sample * config.candidates:
                                                                (sample + 1) * config.candidates]))
                for sample in range(config.num_samples)]
        generated, complete = [generated[k] for k in best], [complete[k] for k in best]
        fit = [round(float(fit[k]), 4) for k in best]
        clock.lap("judge")
    arranged = [arrange(seed_score, request.primer, row, tokenizer, config.bars, config.continuation_only,
                        config.accompaniment, request.keep, looping) for row in generated]
    if request.band:
        tokens += _loops_heard(seed_score, request, sampler, primed, tokenizer, config, random_seed, clock,
                               arranged, generated, complete)
    scores = [one.score for one in arranged]
    atomic_write_all({path: midi_bytes(score) for path, score in zip(paths, scores)}, force=force)
    clock.lap("write")
    pace = request.pace
    summary = {"files": [str(path) for path in paths], "samples": config.num_samples, "bars": config.bars,
               "bars_short": [int(config.bars - 1 - tokenizer.is_bar(row).sum())
                              for row, done in zip(generated, complete) if not done],
               "notes": sum(one.new_notes for one in arranged),
               "silent_samples": sum(not tokenizer.is_note(tokens).any() for tokens in generated),
               "accompaniment_notes": sum(one.looped_notes for one in arranged),
               "tracks": _track_roles(arranged, seed_score, manifest.programs, request, tokenizer),
               "learned_parts": manifest.tracks,
               "seconds": round(max(score.duration_seconds for score in scores), 2), "tokens": tokens,
               "tokens_per_second": round(tokens / max(clock.laps["sample"] + clock.laps.get("second take", 0), 1e-9),
                                          1), "wall_seconds": clock.laps,
               "random_seed": random_seed, "model": str(manifest.path), "seed": str(seed) if seed else None,
               "seed_bars": seed_bars, "after": config.after, "outro": outro,
               "candidates": config.candidates, "following_log_likelihood": fit,
               "paces": {} if pace is None else {
                   track_name(seed_score.instruments[request.primer.sources[k]], request.primer.sources[k]):
                   round(float(pace[k]), 3) for k in np.flatnonzero(~np.isnan(pace))}}
    return Generation(scores, paths, summary, [None if seed_score is None else one.written for one in arranged])


HARMONY = ("Alto", "Tenor", "Bass")  # what ``melody harmonize`` adds under a melody unless told
# A harmonization's key strength: on 18 held-out chorale sopranos its parts then keep 0.96 of their notes in key (Bach's
# 0.94; 0.98 at 1.5).
HARMONY_KEY = 0.75
# Nats off a clashing note in a harmonization: the strength its classifier test was met with (BENCHMARKS.md,
# "Harmonizing"); chorale voices pass through dissonance, and the band's 1.0 leaves them half as many clashes as Bach's.
HARMONY_CLASH = 0.5


def harmonizing(melody: str | os.PathLike, parts: tuple[str, ...] = HARMONY, ending: bool = True,
                **settings) -> GenerateConfig:
    """The request that harmonizes ``melody`` (a MIDI file): its every track kept, ``parts`` added (``new_part``),
    written from its first bar to its last, told where it ends (``ending``: a model with ahead inputs), with
    ``HARMONY_KEY`` and ``HARMONY_CLASH``; ``settings``: any other ``GenerateConfig`` field, or that."""
    score = read_midi(melody)
    bars = len(bars_of(score))
    if bars > MAX_BARS:
        raise SettingError(f"{melody}: {bars} bars; harmonize at most {MAX_BARS} at once (generate --keep --add "
                           "--from-bar --bars writes any stretch)")
    kept = tuple(str(index + 1) for index, part in enumerate(score.instruments) if part.notes)
    if not kept:
        raise MelodyError(f"{melody}: no notes to harmonize")
    settings = {"key_strength": HARMONY_KEY, "clash_strength": HARMONY_CLASH, **settings}
    return GenerateConfig(bars=bars, keep=kept, add=tuple(parts), from_bar=1, ending=ending, **settings)


def bars_of(score: Score, grid: int = TokenizerConfig().steps_per_quarter) -> list[int]:
    """The tick each of the bars of ``score`` starts at, up to where it ends (``score.end_line`` on the tokenizer's
    ``grid``)."""
    return score.bar_lines(until=max(1, end_line(score, grid)))


def _primer(seed: Score | None, manifest: Manifest, config: GenerateConfig, random_seed: int, keep=frozenset()):
    """The seed's primer (``keep``: its instruments kept), or without a seed the opening of a training piece picked
    by ``random_seed``."""
    tokenizer = manifest.tokenizer
    if seed is not None:
        learned = Learned(frozenset(manifest.programs), manifest.tracks, manifest.velocities, manifest.pitches)
        return make_primer(seed, tokenizer, config.primer_bars, learned, config.density,
                           None if config.from_bar is None else config.from_bar - 1,
                           new_parts=range(len(seed.instruments) - len(config.add), len(seed.instruments)),
                           keep=sorted(keep))
    opening = tokenizer.opening(_opening(manifest, random_seed), config.key, config.density, config.time_signature)
    return primer_from_opening(opening, tokenizer)


def new_part(text: str) -> Instrument:
    """A new track from ``NAME`` or ``NAME=INSTRUMENT`` (a General MIDI program, 0..127, or a word of its name:
    ``cello``, ``choir``, ``strings``; the first program whose name holds it); without one, the choir."""
    name, _, instrument = (item.strip() for item in text.partition("="))
    if not name:
        raise SettingError(f"a new track needs a name, got {text!r}")
    if not instrument:
        return Instrument(CHOIR, name=name)
    if instrument.isdigit() and int(instrument) <= 127:
        return Instrument(int(instrument), name=name)
    from pretty_midi.constants import INSTRUMENT_MAP

    found = [program for program, known in enumerate(INSTRUMENT_MAP) if instrument.lower() in known.lower()]
    if not found:
        raise SettingError(f"no General MIDI instrument is called {instrument!r} (try a program number, 0..127, "
                           "or a word such as piano, violin, cello, choir, strings, flute)")
    return Instrument(found[0], name=name)


def _kept_instruments(seed: Score | None, asked: tuple[str, ...], adding: bool = False) -> frozenset[int]:
    """The seed instruments ``asked`` for by number (from 1) or name; SettingError for one it lacks, or every
    track with notes (with nothing new to write)."""
    if not asked:
        return frozenset()
    names = [part.name.strip().lower() for part in seed.instruments]
    kept = set()
    for item in asked:
        if item.isdigit() and 1 <= int(item) <= len(names):
            kept.add(int(item) - 1)
        elif item.lower() in names:
            kept.add(names.index(item.lower()))
        else:
            raise SettingError(f"the seed has no track {item!r}; its tracks are 1..{len(names)}: "
                               + ", ".join(part.name or "(unnamed)" for part in seed.instruments))
    if not adding and {index for index, part in enumerate(seed.instruments) if part.notes} <= kept:
        raise SettingError("every track is kept: nothing is left to write")
    return frozenset(kept)


def _following_fit(sampler: Sampler, primer: np.ndarray, rows: list[np.ndarray], following: np.ndarray,
                   tokenizer) -> np.ndarray:
    """Per row, the mean log-likelihood per token (nats) of the seed's ``following`` bars after the primer and the
    row: higher is a row that leads better into what comes after it."""
    resumed = [tokenizer.resumed(following, np.concatenate([primer, row])) for row in rows]
    total = sampler.log_likelihood(sampler.prime(primer), [np.concatenate([row, after]) for row, after in
                                                           zip(rows, resumed)], [len(row) for row in rows])
    return total / np.array([max(len(after), 1) for after in resumed])


@dataclass(frozen=True)
class _Request:
    """What the sampler is asked for: the primer, the kept seed instruments and their notes, and the rules of the
    parts (``Sampler.sample``'s ``chords``, ``under``, ``register``, ``added``, ``smooth``, ``pace``, ``held_only``)."""

    primer: Primer
    keep: frozenset[int]
    kept: KeptNotes | None = None
    chords: np.ndarray | None = None
    parts: tuple = (None, None, None, None)  # per track: the part it stays under, its register, new, smooth
    pace: np.ndarray | None = None
    held_only: np.ndarray | None = None
    band: bool = False  # the model writes every part of the seed it can, the others loop (``--accompaniment band``)
    left_out: frozenset[int] = frozenset()  # pitched seed instruments the primer leaves out, heard as their loops


def _request(seed: Score | None, manifest: Manifest, config: GenerateConfig, random_seed: int) -> _Request:
    """The primer of ``seed`` as ``config`` asks, with the notes kept and the rules of each part."""
    tokenizer = manifest.tokenizer
    keep = _kept_instruments(seed, config.keep, bool(config.add))
    primer = _primer(seed, manifest, config, random_seed, keep)
    kept = kept_notes(primer, tokenizer, keep, config.bars) if keep else None
    if seed is None:
        return _Request(primer, keep, kept)
    chords = chord_limits(seed, primer)
    new_parts = range(len(seed.instruments) - len(config.add), len(seed.instruments))
    added = added_under(primer, new_parts)
    parts = (np.where(added >= 0, added, in_order(primer, chords)), registers(primer, new_parts, chords), added >= 0,
             avoiding_parallels(primer, chords))
    pace, held_only = paces(primer) if config.pace and config.density is None else (None, None)
    if pace is not None and kept is not None:  # a kept part plays as it is
        pace[sorted(kept.tracks)] = math.nan
    band = config.accompaniment == "band" and not keep and not tokenizer.config.melody_only
    return _Request(primer, keep, kept, chords, parts, pace, held_only, band,
                    left_out(seed, primer, tokenizer, config.bars) if band and config.from_bar is None else frozenset())


def _loops_heard(seed: Score, request: _Request, sampler: Sampler, primed, tokenizer, config: GenerateConfig,
                 random_seed: int, clock: "_Clock", arranged: list, generated: list, complete: list) -> int:
    """The band's second take: the samples in which the model left pitched parts of the band silent (so they
    loop), or starved them (``continuation.starved``; not when they are to close together, ``ending``), are written
    again, those parts kept silent and their loops (and those of the parts left out of the primer,
    ``_Request.left_out``) heard by every written part's clash rule (``Sampler.sample``'s ``loops``), all in one
    batch from ``random_seed`` plus ``LOOP_TAKE``; in place. A take that leaves another part silent or starved
    is followed by one more, up to ``TAKES`` in all. Returns the tokens sampled."""
    silenced, sampled = [frozenset()] * len(arranged), 0
    for take in range(1, TAKES):
        parts = [silenced[row] | one.looped_parts | (frozenset() if config.ending else  # a loop cannot close
                 starved(one, seed, request.primer, tokenizer, config.bars, request.pace))
                 for row, one in enumerate(arranged)]
        rows = [row for row, found in enumerate(parts) if found - silenced[row]]
        if not rows or not config.clash_strength:
            break
        loops = loops_sounding(seed, request.primer, tokenizer, config.bars,
                               [parts[row] | request.left_out for row in rows])
        again = dataclasses.replace(config, num_samples=len(rows), candidates=1)
        rewritten, finished = _sample(sampler, primed, request, tokenizer, again, random_seed + take * LOOP_TAKE,
                                      clock, stage="second take", loops=loops)
        for row, tokens, done in zip(rows, rewritten, finished):
            generated[row], complete[row], silenced[row] = tokens, done, parts[row]
            arranged[row] = arrange(seed, request.primer, tokens, tokenizer, config.bars, config.continuation_only,
                                    "band", request.keep)
        sampled += sum(len(tokens) for tokens in rewritten)
    return int(sampled)


LOOP_TAKE = 7919  # added to the random seed of a second take (``_loops_heard``), twice that of a third
TAKES = 3  # a sample is written at most this many times (``_loops_heard``)


def _sample(sampler: Sampler, primed, request: _Request, tokenizer, config: GenerateConfig, random_seed: int,
            clock: _Clock, stage: str = "sample", loops=None) -> tuple[list[np.ndarray], list[bool]]:
    """``config.num_samples`` x ``config.candidates`` rows (each sample's candidates together) of ``config.bars``
    bars after ``request``'s primer (its kept notes played in), and whether each is complete. A row without a
    single note is drawn again (reproducibly, random seed plus 1, 2, 3)."""
    primer, kept = request.primer.tokens, request.kept
    tracks = tokenizer.tracks(primer)
    allowed = tokenizer.sampling_mask(len(tracks))
    constraints = {"penalty": config.key_strength * tokenizer.out_of_key(primer),
                   "pitched": [not is_drum for is_drum, _ in tracks], "ending": config.ending, "kept": kept,
                   "chords": request.chords, "under": request.parts[0], "register": request.parts[1],
                   "added": request.parts[2], "smooth": request.parts[3], "pace": request.pace,
                   "held_only": request.held_only,
                   "close": tokenizer.tonic_notes(primer) if config.ending else None,
                   "clash": config.clash_strength}
    max_tokens = TOKENS_PER_BAR_CAP * config.bars

    def draw(rows: list[int], seed: int):
        heard = None if loops is None else (loops[0][rows], [loops[1][row] for row in rows])  # those rows' loops
        return sampler.sample(primed, len(rows), allowed, max_tokens, config.bars, seed, config.sampling,
                              loops=heard, **constraints)

    generated, complete = draw(list(range(config.num_samples * config.candidates)), random_seed)
    for attempt in range(1, RETRIES + 1):
        silent = [row for row, tokens in enumerate(generated) if not tokenizer.is_note(tokens).any()]
        if not silent:
            break
        for row, tokens, finished in zip(silent, *draw(silent, random_seed + attempt)):
            generated[row], complete[row] = tokens, finished
    clock.lap(stage)
    return generated, complete


def _track_roles(arranged: list, seed: Score | None, programs: list[int], request: _Request | None,
                 tokenizer) -> dict[str, list[str]]:
    """What each seed track did in any sample: "written" by the model, else "looped" or "silent";
    "not_played": ["drums"] when the seed has drums and the model plays none (they are left to the loop);
    "beyond": the pitched tracks past the most parts the model learned, left out of the primer (not kept); and
    "looped_in": {track: samples} for a track written in some samples and looped in others (left silent there)."""
    roles = {role: [] for role in ("kept", "written", "added", "looped", "silent")}
    looped_in = {}
    for one in arranged:
        for role, names in one.tracks.items():
            roles[role] += [name for name in names if name not in roles[role]]
        for name in one.tracks.get("looped", ()):
            looped_in[name] = looped_in.get(name, 0) + 1
    roles["looped_in"] = {name: count for name, count in looped_in.items() if name in roles["written"]}
    roles["looped"] = [name for name in roles["looped"] if name not in roles["written"]]
    roles["silent"] = [name for name in roles["silent"] if name not in roles["written"] + roles["looped"]]
    drums = seed is not None and any(part.is_drum and part.notes for part in seed.instruments)
    roles["not_played"] = ["drums"] if drums and -1 not in programs else []
    roles["beyond"] = [] if seed is None or tokenizer.config.melody_only else [
        track_name(part, k) for k, part in enumerate(seed.instruments)
        if part.notes and not part.is_drum and k not in request.primer.sources and k not in request.keep]
    return roles


def _opening(manifest: Manifest, random_seed: int) -> np.ndarray:
    """The opening of a training piece picked by ``random_seed``."""
    pieces = load_corpus(manifest.path, len(manifest.tokenizer))[0]
    if not pieces:
        raise MelodyError(f"{manifest.path}: its corpus holds no training pieces to start from")
    piece = pieces[np.random.default_rng(random_seed).integers(len(pieces))]
    return manifest.tokenizer.opening(piece)


class _Clock:
    """Wall time of each stage of a generation, in seconds (``laps``)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> float:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        self.laps[stage] = round(self.laps.get(stage, 0.0) + seconds, 3)
        return seconds


@functools.lru_cache(maxsize=4)
def _network(path: Path, stamp: tuple) -> NumpyLSTM:
    """The network of a model folder, read once per version of its model.keras (``stamp``)."""
    return numpy_network(read_manifest(path))


def numpy_network(manifest: Manifest) -> NumpyLSTM:
    """The network of a model folder, in NumPy (``numpy_lstm``)."""
    return NumpyLSTM(manifest.network, load_weights(manifest), manifest.tokenizer.bar_tokens())


def _sampler(manifest: Manifest, config: GenerateConfig) -> Sampler:
    if config.ending and not manifest.model_config.ahead:
        raise MelodyError(f"{manifest.path}: this model was trained without ahead inputs, so it cannot be told "
                          "where the music ends; --ending needs one trained with them (melody train --ahead)")
    stamp = manifest.network_stamp()
    network = _network(manifest.path, stamp) if stamp else numpy_network(manifest)
    return Sampler(network, manifest.tokenizer.token_table())
