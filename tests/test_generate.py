"""Generation: stateful sampling is exact and reproducible, and every output is a valid MIDI file."""

from __future__ import annotations

import dataclasses

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import _tiny_bundle, corpus_files, melody_command, note, run_melody, smf, track
from melody.bundle import load_bundle, load_corpus, load_weights
from melody.errors import MelodyError, OutputExistsError, SettingError
from melody.cli import cli
from melody.continuation import Learned, make_primer
from melody.keys import scale
from melody.metrics import continuation_fit
from melody.generate import DEFAULT_MODEL, GenerateConfig, generate, numpy_network
from melody import ahead
from melody.model import network_weights
from melody.sampler import Sampler, SamplingConfig
from melody.midi_read import read_midi
from melody.midi_write import validate_midi, write_midi
from melody.score import Instrument, Note, Score, TimeSignature

def stepper_and_sampler(bundle):
    network = numpy_network(bundle)
    return network, Sampler(network, bundle.tokenizer.token_table())


def primer_of(bundle, path=None):
    return make_primer(read_midi(path or corpus_files("folk")[0]), bundle.tokenizer).tokens


def assert_same_predictions(keras_logits, numpy_logits, where):
    """Logits equal to 1e-5 of their largest magnitude, and the probabilities to 1e-5."""
    scale = max(1.0, float(np.abs(keras_logits).max()))
    np.testing.assert_allclose(numpy_logits, keras_logits, rtol=0, atol=1e-5 * scale, err_msg=where)
    probabilities = [np.exp(x - x.max(-1, keepdims=True)) for x in (keras_logits, numpy_logits)]
    probabilities = [p / p.sum(-1, keepdims=True) for p in probabilities]
    np.testing.assert_allclose(probabilities[1], probabilities[0], rtol=0, atol=1e-5, err_msg=where)


@pytest.mark.parametrize("which", ["tiny lookback", "tiny plain", "default"])
def test_the_numpy_network_predicts_what_the_keras_model_predicts(bundle, melody_bundle, which):
    """The gate equations and the lookback live in melody.cell (training) and melody.numpy_lstm (generation):
    pinned together on real sequences, for freshly trained models with and without lookback and for the
    shipped one, token by token and whole."""
    bundle = {"tiny lookback": bundle, "tiny plain": melody_bundle}.get(which) or load_bundle(DEFAULT_MODEL)
    assert bool(bundle.model_config.lookback) == (which == "tiny lookback") or which == "default"
    network, tokenizer = numpy_network(bundle), bundle.tokenizer
    for path in (corpus_files("folk")[0], corpus_files("chorales")[0]):
        tokens = tokenizer.encode(read_midi(path))[:300].astype(np.int64)
        told = np.zeros((len(tokens), ahead.WIDTH), np.float32)
        if bundle.model_config.ahead:  # told what track 0 plays next and where these tokens end
            told = ahead.piece_features(tokens, tokenizer.token_table(), tokenizer.header_length(tokens),
                                        [d for d, _ in tokenizer.tracks(tokens)], frozenset({0}), True)
            assert told[:, ahead.SOON].any() and told[:, ahead.ENDING].any()
        inputs = [tokens[None].astype("int32"), told[None]] if bundle.model_config.ahead else tokens[None].astype("int32")
        expected = bundle.model(inputs).numpy()[0]
        logits, state = network.prime(tokens[:1], told[:1])
        assert_same_predictions(expected[0], logits[0], f"{path.name}, token 0")
        rows = _repeated(state, 3)  # three rows at once: the products take the kernels' other layout
        for position in range(1, len(tokens)):
            logits, state = network.step(tokens[position:position + 1], state, told[position:position + 1])
            assert_same_predictions(expected[position], logits[0], f"{path.name}, token {position}")
            logits, rows = network.step(np.repeat(tokens[position], 3), rows,
                                        np.repeat(told[position:position + 1], 3, axis=0))
            for row in range(3):
                assert_same_predictions(expected[position], logits[row], f"{path.name}, token {position}, row {row}")
        assert_same_predictions(expected[-1], network.prime(tokens, told)[0][0], f"{path.name}, primed whole")


def _repeated(state, rows):
    """A network's state (arrays, nested in lists and tuples) for ``rows`` rows alike."""
    if isinstance(state, (list, tuple)):
        return type(state)(_repeated(part, rows) for part in state)
    return np.repeat(state, rows, axis=0)


def test_weights_read_from_the_folder_are_the_keras_models(bundle):
    """bundle.load_weights (model.keras read without TensorFlow) gives the arrays Keras holds, by name."""
    from_folder, from_keras = load_weights(bundle), network_weights(bundle.model, bundle.model_config)
    assert bundle.model_config.lookback  # the lookback's weights too: the first kernel's extra rows, repeat/*
    assert from_folder.keys() == from_keras.keys() and len(from_folder) == 2 * 3 + 3 + 2
    for name in from_folder:
        np.testing.assert_array_equal(from_folder[name], from_keras[name], err_msg=name)


def test_asked_to_end_the_model_is_told_the_bars_left_at_every_token(bundle):
    """--ending: each token the model reads is told how many bar lines are left (the primer's last one
    included), from the real sampler through the real network; without it, nothing."""
    network, tokenizer = numpy_network(bundle), bundle.tokenizer
    told = []

    class Listening:
        def prime(self, tokens, ahead=None):
            told.append(None if ahead is None else ahead[-1])
            return network.prime(tokens, ahead)

        def step(self, tokens, state, ahead=None):
            told.append(None if ahead is None else ahead[0])
            return network.step(tokens, state, ahead)

    sampler = Sampler(Listening(), tokenizer.token_table())
    primer = primer_of(bundle)
    rows, done = sampler.sample(sampler.prime(primer, ending_in=5), 1, tokenizer.sampling_mask(1), 2000, 6,
                                random_seed=3, ending=True)
    assert done[0] and len(told) == 1 + len(rows[0])  # primed, then every sampled token stepped
    bars_left = 5 - np.concatenate([[0], np.cumsum(tokenizer.is_bar(rows[0]))])
    assert bars_left[-1] == 0
    for features, left in zip(told, bars_left):
        expected = [left] if left < ahead.ENDING_BARS else []
        assert (np.flatnonzero(features[ahead.ENDING]).tolist(), features.sum()) == (expected, len(expected))
    told.clear()
    sampler.sample(sampler.prime(primer), 1, tokenizer.sampling_mask(1), 2000, 6, random_seed=3)
    assert told and all(features is None for features in told)


def test_kept_notes_are_played_in_their_time_and_told_ahead_as_in_training(bundle):
    """A chorale's soprano kept over 3 bars while the model writes the other voices: every row holds the
    soprano's notes exactly (time, pitch, length, loudness bin) and no other note on its track; at every token,
    the primer's included, the model was told what training's ``piece_features`` tells that token of the finished
    stream (the primer's tokens were once told nothing but the last), and the
    kept notes are written as training's are: a Velocity token only where the velocity changes (they once
    repeated theirs at every change of track)."""
    from melody.continuation import make_primer

    network, tokenizer = numpy_network(bundle), bundle.tokenizer
    chorale = read_midi(corpus_files("chorales")[3])
    prepared = tokenizer.prepare(chorale)
    lines = prepared.bar_lines(until=prepared.end_tick)
    primer = make_primer(chorale.replace(instruments=[dataclasses.replace(part, notes=tuple(
        n for n in part.notes if n.start < lines[3] * chorale.ticks_per_quarter // 12)) for part in chorale.instruments]),
        tokenizer, primer_bars=3)
    region = (primer.start + primer.end, lines[6])
    kept = tokenizer.kept_notes(prepared, {0}, *region)
    assert len(kept) >= 6 and kept.times[0] >= 0
    told = []

    class Listening:
        def prime(self, tokens, ahead=None):
            told.append(ahead)
            return network.prime(tokens, ahead)

        def step(self, tokens, state, ahead=None):
            told.append(ahead)
            return network.step(tokens, state, ahead)

    sampler = Sampler(Listening(), tokenizer.token_table())
    allowed = tokenizer.sampling_mask(4)
    header = tokenizer.header_length(primer.tokens)
    rows, done = sampler.sample(sampler.prime(primer.tokens, kept, ending_in=2, header=header, drums=(False,) * 4),
                                3, allowed, 3000, 3, random_seed=5, ending=True, kept=kept)
    assert done.all()
    wanted = sorted((n.start - region[0], n.pitch, n.duration, tokenizer.config.velocity_bin(n.velocity))
                    for n in prepared.instruments[0].notes if region[0] <= n.start < region[1])
    for number, row in enumerate(rows):
        stream = np.concatenate([primer.tokens, row])
        decoded = tokenizer.decode(stream)
        soprano = sorted((n.start - primer.end, n.pitch, n.duration, tokenizer.config.velocity_bin(n.velocity))
                         for n in decoded.instruments[0].notes if n.start >= primer.end)
        assert soprano == wanted, number
        assert any(n.start >= primer.end for part in decoded.instruments[1:] for n in part.notes)
        table = tokenizer.token_table()  # the soprano sings at one loudness: its Track token, then its Note
        after_track = row[1:][table["track_of"][row[:-1]] == 0]
        assert len(after_track) and (table["pitch_of"][after_track] >= 0).all(), number
        expected = ahead.piece_features(stream, tokenizer.token_table(), tokenizer.header_length(stream),
                                        [False] * 4, frozenset({0}), True)
        seen = np.concatenate([told[0]] + [step[number][None] for step in told[1:len(row) + 1]])
        np.testing.assert_array_equal(seen, expected[:len(stream)], err_msg=f"row {number}")  # the primer's too


def test_kept_tracks_stay_and_the_others_are_written_anew_in_the_bars_asked(bundle, tmp_path):
    """--keep Soprano --from-bar 5 --bars 3 on a chorale: the soprano is the seed's note for note, the other
    voices are the seed's outside bars 5-7 and new inside them; the summary names what was kept and written."""
    seed = corpus_files("chorales")[3]
    config = GenerateConfig(bars=3, random_seed=4, keep=("Soprano",), from_bar=5)
    result = generate(bundle, seed=seed, config=config, write=False)
    original, made = read_midi(seed), result.scores[0]
    lines = original.bar_lines(until=original.end_tick)
    begin, end = lines[4], lines[7]
    assert made.instruments[0].notes == original.instruments[0].notes
    for before, after in zip(original.instruments[1:], made.instruments[1:]):
        outside = [(n.start, n.pitch, n.duration) for n in before.notes if not begin <= n.start < end]
        assert [(n.start, n.pitch, n.duration) for n in after.notes if not begin <= n.start < end] == outside
    new = [(n.start, n.pitch) for part in made.instruments[1:] for n in part.notes if begin <= n.start < end]
    old = [(n.start, n.pitch) for part in original.instruments[1:] for n in part.notes if begin <= n.start < end]
    assert new and new != old and result.summary["notes"] == len(new)
    assert result.summary["tracks"]["kept"] == ["Soprano"] and "Soprano" not in result.summary["tracks"]["written"]
    with pytest.raises(SettingError, match="no track 'Flute'"):
        generate(bundle, seed=seed, config=GenerateConfig(keep=("Flute",)), write=False)
    with pytest.raises(SettingError, match="every track is kept"):
        generate(bundle, seed=seed, config=GenerateConfig(keep=("1", "2", "3", "4")), write=False)


def test_harmonize_keeps_the_melody_and_adds_named_voices_that_sing_one_note_at_a_time(bundle, tmp_path):
    """``melody harmonize`` on a chorale's soprano alone: the soprano note for note, three new choir tracks
    named as asked, every new note inside the melody's bars, no voice starting two notes at once, and the
    summary naming the added tracks."""
    original = read_midi(corpus_files("chorales")[3])
    melody = tmp_path / "soprano.mid"
    write_midi(original.replace(instruments=original.instruments[:1]), melody)
    out = tmp_path / "h.mid"
    result = CliRunner().invoke(cli, ["harmonize", str(melody), "--model", str(bundle.path), "--out", str(out),
                                      "--random-seed", "3", "--json", "--parts", "Alto,Tenor,Bass=cello"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    made = read_midi(out)
    assert made.instruments[0].notes == original.instruments[0].notes
    assert [(part.name, part.program) for part in made.instruments[1:]] == [("Alto", 52), ("Tenor", 52),
                                                                              ("Bass", 42)]
    end = original.bar_lines()[-1] + original.instruments[0].notes[-1].end - original.bar_lines()[-1]
    new = [note for part in made.instruments[1:] for note in part.notes]
    assert new and summary["notes"] == len(new) and max(note.start for note in new) < max(end, made.end_tick)
    assert summary["bars"] == len(original.bar_lines(until=original.end_tick - original.ticks_per_quarter // 4))
    for part in made.instruments[1:]:
        starts = [note.start for note in part.notes]
        assert len(starts) == len(set(starts)), part.name
    assert summary["tracks"]["kept"] == ["Soprano"]
    assert summary["tracks"]["added"] == [part.name for part in made.instruments[1:] if part.notes]


def test_a_chord_limit_holds_every_track_to_its_most_notes_at_one_moment(bundle):
    """At temperature 3 the tiny model starts several notes of one track at one moment; with ``chords`` of 1
    none does."""
    _, sampler = stepper_and_sampler(bundle)
    tokenizer = bundle.tokenizer
    primer = make_primer(read_midi(corpus_files("chorales")[2]), tokenizer)
    primed = sampler.prime(primer.tokens)
    allowed = tokenizer.sampling_mask(len(tokenizer.tracks(primer.tokens)))
    hot = SamplingConfig(temperature=3.0)

    def most_at_once(chords):
        rows, _ = sampler.sample(primed, 8, allowed, 1000, 4, 11, hot, chords=chords)
        most = 0
        for row in rows:
            decoded = tokenizer.decode(np.concatenate([primer.tokens, row]))
            for part in decoded.instruments:
                starts = np.unique([n.start for n in part.notes if n.start >= primer.end], return_counts=True)[1]
                most = max([most, *starts])
        return most

    assert most_at_once(None) > 1
    assert most_at_once(np.ones(4, np.int64)) == 1


def test_a_fill_keeps_the_candidate_after_which_the_seeds_next_bars_are_likeliest(bundle):
    """--from-bar 5 --bars 2 --candidates 4 draws the same four rows as four samples would (one batch, one random
    seed) and keeps the one whose following-bars likelihood is the highest of the four."""
    seed = corpus_files("chorales")[3]
    four = generate(bundle, seed, config=GenerateConfig(bars=2, from_bar=5, num_samples=4, random_seed=9), write=False)
    best = generate(bundle, seed, config=GenerateConfig(bars=2, from_bar=5, candidates=4, random_seed=9), write=False)
    fits = four.summary["following_log_likelihood"]
    assert len(set(fits)) > 1 and best.summary["following_log_likelihood"] == [max(fits)]
    assert best.scores[0] == four.scores[int(np.argmax(fits))]


def test_log_likelihood_is_the_sum_of_each_tokens_log_probability_after_all_before_it(bundle):
    network, sampler = stepper_and_sampler(bundle)
    primer = primer_of(bundle)
    rows = [primer[-30:-10], primer[-12:]]
    total = sampler.log_likelihood(sampler.prime(primer), rows, [5, 0])
    for row, start, found in zip(rows, [5, 0], total):
        expected = 0.0
        for index in range(start, len(row)):
            logits = network.prime(np.concatenate([primer, row[:index]]).astype(np.intp))[0][0]
            expected += logits[row[index]] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        assert found == pytest.approx(expected, abs=1e-3)


def test_new_parts_are_named_with_their_instruments():
    from melody.generate import new_part

    assert (new_part("Bass=cello").program, new_part("Bass=cello").name) == (42, "Bass")
    assert new_part("Alto").program == 52 and new_part("Keys=0").program == 0 and new_part("S = piano").name == "S"
    for bad in ("=cello", "Bass=kazoo", "Bass=128"):
        with pytest.raises(SettingError):
            new_part(bad)


def test_top_k_1_is_greedy_within_the_allowed_tokens(bundle):
    network, sampler = stepper_and_sampler(bundle)  # its logits are Keras's (test above)
    primer = primer_of(bundle)
    allowed = bundle.tokenizer.sampling_mask(1)
    primed = sampler.prime(primer)
    greedy = SamplingConfig(top_k=1, phrase_returns=0)  # on the model's own logits
    (sampled,), _ = sampler.sample(primed, 1, allowed, 30, 100, random_seed=5, config=greedy)
    table = bundle.tokenizer.token_table()
    is_note, is_duration, is_velocity = (bundle.tokenizer.kinds.mask(kind) for kind in ("Note", "Duration", "Velocity"))
    sequence = list(primer)
    for _ in range(30):  # the rules written out plainly: the meter, then the note grammar
        logits = network.prime(np.array(sequence))[0][0]
        last_bar = max(i for i, token in enumerate(sequence) if table["bar_steps"][token])
        position = table["shift_steps"][sequence[last_bar:]].sum()
        length = table["bar_steps"][sequence[last_bar]]
        if position == length:  # at the bar line: the meter's bar token and nothing else
            sequence.append(sequence[last_bar])
            continue
        logits[~allowed | (table["bar_steps"] > 0) | (position + table["shift_steps"] > length)] = -np.inf
        last = sequence[-1]
        if is_note[last]:  # a duration after a note, and only then
            logits[~is_duration] = -np.inf
        elif table["track_of"][last] >= 0:  # after a track, its velocity or a note
            logits[~(is_note | is_velocity)] = -np.inf
        elif is_velocity[last]:  # after a velocity, a note
            logits[~is_note] = -np.inf
        else:
            logits[is_duration] = -np.inf
        sequence.append(int(np.argmax(logits)))
    assert list(sampled) == sequence[len(primer):]
    (other_seed,), _ = sampler.sample(primed, 1, allowed, 30, 100, random_seed=6, config=greedy)
    assert list(other_seed) == list(sampled)


def test_top_p_keeps_only_the_nucleus(bundle):
    network, sampler = stepper_and_sampler(bundle)  # its logits are Keras's (test above)
    primer = primer_of(bundle)
    allowed = bundle.tokenizer.sampling_mask(1)
    rows, _ = sampler.sample(sampler.prime(primer), 64, allowed, 1, 100, random_seed=1,
                             config=SamplingConfig(top_p=0.3))
    first = [row[0] for row in rows]
    logits = network.prime(primer)[0][0]
    logits[~allowed | bundle.tokenizer.is_bar(np.arange(len(bundle.tokenizer)))] = -np.inf
    logits[bundle.tokenizer.kinds.mask("Duration")] = -np.inf  # the primer ends with a bar line
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)
    nucleus = set(order[:np.searchsorted(np.cumsum(probabilities[order]), 0.3) + 1])
    assert set(first) <= nucleus


def test_sampling_stops_before_the_bar_line_after_the_last_bar(bundle):
    _, sampler = stepper_and_sampler(bundle)
    tokenizer = bundle.tokenizer
    rows, complete = sampler.sample(sampler.prime(primer_of(bundle)), 8, tokenizer.sampling_mask(1), 4000, 3,
                                    random_seed=2)
    assert complete.all()
    for row in rows:
        assert tokenizer.is_bar(row).sum() == 2  # bars 2 and 3 opened; the one closing bar 3 is not kept
        assert not set(tokenizer.names(row)) & {"Pad", "Begin", "End", "Track_1", "Program_0", "Key_C"}


def test_same_random_seed_same_bytes_and_samples_differ(bundle, tmp_path):
    seed = corpus_files("folk")[3]
    one = generate(bundle, seed, tmp_path / "a.mid", config=GenerateConfig(bars=4, num_samples=3, random_seed=11))
    two = generate(bundle, seed, tmp_path / "b.mid", config=GenerateConfig(bars=4, num_samples=3, random_seed=11))
    assert [p.name for p in one.files] == ["a-1.mid", "a-2.mid", "a-3.mid"]
    for a, b in zip(one.files, two.files):
        assert a.read_bytes() == b.read_bytes()
    assert len({p.read_bytes() for p in one.files}) == 3
    for path in one.files:
        assert validate_midi(path) == []


def test_output_keeps_the_seed_then_continues(bundle, tmp_path):
    seed = corpus_files("chorales")[5]
    result = generate(bundle, seed, tmp_path / "out.mid", config=GenerateConfig(bars=4, random_seed=3))
    before, after = read_midi(seed), read_midi(result.files[0])
    assert after.tempos == before.tempos and after.time_signatures == before.time_signatures
    assert after.key_signatures == before.key_signatures
    assert [i.name for i in after.instruments][:4] == [i.name for i in before.instruments]
    assert len(after.notes) > len(before.notes) and after.end_tick > before.end_tick
    assert result.summary["notes"] == len(after.notes) - len(before.notes)
    only = generate(bundle, seed, tmp_path / "only.mid",
                    config=GenerateConfig(bars=4, random_seed=3, continuation_only=True))
    new = read_midi(only.files[0])
    assert len(new.notes) == result.summary["notes"]
    assert min(n.start for n in new.notes) < 4 * 480 * 2  # starts within its first bar or two


def test_from_scratch_a_training_piece_opens_and_its_meter_is_the_files(bundle, tmp_path):
    result = generate(bundle, None, tmp_path / "x.mid", config=GenerateConfig(bars=3, random_seed=2))
    assert set(result.summary) >= {"files", "tokens", "tokens_per_second", "bars", "notes", "seconds"}
    score = read_midi(result.files[0])
    assert len(score.bar_lines()) <= 4
    assert result.summary["tokens"] > 0 and result.summary["tokens_per_second"] > 0
    pieces = load_corpus(bundle.path)[0]
    opening = bundle.tokenizer.opening(pieces[np.random.default_rng(2).integers(len(pieces))])
    meter = bundle.tokenizer.names(opening[-1:])[0]  # the first bar line of the piece it started from
    assert meter.startswith("Bar_")
    assert [f"Bar_{t.numerator}_{t.denominator}" for t in score.time_signatures] == [meter]
    programs = {(False, p) for p in bundle.programs if p >= 0} | ({(True, 0)} if -1 in bundle.programs else set())
    assert {(i.is_drum, 0 if i.is_drum else i.program) for i in score.instruments} <= programs


def test_real_world_seeds_give_valid_files(bundle, melody_bundle, wild, tmp_path):
    seeds = [wild / "MIDIs_multitrack" / "Aicha.mid",                          # pop, 13 tracks with drums
             wild / "MIDIs_multitrack" / "d6caebd1964d9e4a3c5ea59525230e2a.mid",  # type 0
             wild / "MIDIs_one_track" / "Maestro_1.mid"]                        # piano performance
    for model in (bundle, melody_bundle):
        for index, seed in enumerate(seeds):
            result = generate(model, seed, tmp_path / f"{model.melody_only}-{index}.mid",
                              config=GenerateConfig(bars=2, random_seed=1))
            assert validate_midi(result.files[0]) == [], seed.name
            assert result.summary["notes"] > 0, seed.name
            assert read_midi(result.files[0]).end_tick > 0


def test_a_model_of_piano_music_writes_only_piano_and_continues_the_seeds_own_tracks(tmp_path_factory, tmp_path,
                                                                                    pop_song):
    """Trained on program-0 files only, a model never writes another instrument from scratch; continuing a
    multi-track seed, its notes go to the seed's tracks (names, programs, channels unchanged)."""
    piano = _tiny_bundle(tmp_path_factory, "piano", corpus_files("folk")[:40], units=32, epochs=1, steps=30)
    assert piano.programs == [0]
    for random_seed in range(3):
        alone = read_midi(generate(piano, None, tmp_path / f"a{random_seed}.mid",
                                   config=GenerateConfig(bars=4, random_seed=random_seed)).files[0])
        assert {(i.program, i.is_drum) for i in alone.instruments} == {(0, False)}
    seed = read_midi(pop_song)
    result = generate(piano, pop_song, tmp_path / "pop.mid", config=GenerateConfig(bars=2, random_seed=1))
    after = read_midi(result.files[0])
    assert [(i.name, i.program, i.is_drum) for i in after.instruments] == \
        [(i.name, i.program, i.is_drum) for i in seed.instruments]
    assert result.summary["notes"] > 0


def test_instruments_the_model_lacks_are_announced_by_the_part_they_play():
    """For a model of voices, strings and folk melodies (programs 0, 40, 41, 42, 52, no drums): a synth lead
    is announced as a violin, a pad as the choir, an electric bass as the cello, and the drums are left out
    of the primer (to the loop); a piano stays a piano."""
    from melody.continuation import make_primer
    from melody.tokenizer import Tokenizer, TokenizerConfig

    bars = range(8)
    parts = [Instrument(81, name="Lead", notes=[Note(480 * q, 76, 480, 90) for q in bars]),
             Instrument(89, name="Pad", notes=[Note(1920 * q, 64, 1920, 60) for q in range(2)]),
             Instrument(0, name="Keys", notes=[Note(960 * q, 60, 960, 70) for q in range(4)]),
             Instrument(33, name="Bass", notes=[Note(480 * q, 40, 480, 90) for q in bars]),
             Instrument(0, is_drum=True, name="Drums", notes=[Note(240 * q, 36, 120, 100) for q in bars])]
    tokenizer = Tokenizer(TokenizerConfig())
    primer = make_primer(Score(480, parts, time_signatures=[TimeSignature(0, 4, 4)]), tokenizer,
                         learned=Learned(programs=frozenset({0, 40, 41, 42, 52})))
    assert tokenizer.tracks(primer.tokens) == [(False, 40), (False, 52), (False, 0), (False, 42)]
    assert primer.sources == (0, 1, 2, 3)


def test_the_primer_holds_only_tracks_velocities_and_notes_the_model_learned():
    """A model that met at most 4 tracks, one velocity and notes C2..C7, continuing 7 parts: the lead, the bass
    (around E1, below every note it met) and the two busiest others are primed, the rest left to loop; every
    note at the one velocity, the bass an octave up. A new bass note comes back down an octave, and each part's
    new notes keep that part's loudness in the seed."""
    from melody.continuation import arrange
    from melody.tokenizer import Tokenizer, TokenizerConfig

    bars = range(8)
    def part(name, pitch, every, velocity, until=8):  # notes every ``every`` quarters up to bar ``until``
        return Instrument(0, name=name, notes=[Note(480 * q, pitch + q % 3, 480, velocity + q % 5)
                                               for q in range(0, 4 * until, every)])
    parts = [part("Lead", 76, 1, 100), part("Pad", 70, 4, 40), part("Keys", 64, 1, 70), part("Strings", 62, 2, 60),
             part("Gone", 60, 1, 50, until=1), part("Guitar", 55, 1, 80), part("Bass", 28, 1, 90)]
    seed = Score(480, parts, time_signatures=[TimeSignature(0, 4, 4)])
    tokenizer = Tokenizer(TokenizerConfig())
    primer = make_primer(seed, tokenizer, learned=Learned(tracks=4, velocities=(4,), pitches=(36, 96)))
    assert primer.sources == (0, 2, 5, 6)  # lead, keys, guitar, bass: track order kept
    velocities = tokenizer.kinds["Velocity"].holds(primer.tokens)
    assert set(primer.tokens[velocities]) == {tokenizer.kinds["Velocity"].token(4)}
    assert primer.octaves == (0, 0, 0, 1)
    assert min(n.pitch for n in primer.score.instruments[3].notes) == 40
    assert primer.loudness == (102, 72, 82, 92)  # each part's median velocity in its last notes
    kinds = tokenizer.kinds
    bass_note = [kinds["Track"].token(3), kinds["Note"].token(41), kinds["Duration"].token(11)]
    arranged = arrange(seed, primer, np.array(bass_note), tokenizer, 1, continuation_only=True, accompaniment="none")
    bass = next(p for p in arranged.score.instruments if p.name == "Bass")
    assert [(n.pitch, n.velocity) for n in bass.notes] == [(29, 92)]
    unlearned = make_primer(seed, tokenizer)
    assert len(unlearned.sources) == 7 and unlearned.octaves == (0,) * 7 and unlearned.loudness is None


def test_a_song_with_more_parts_than_the_model_learned(bundle, pop_song, tmp_path):
    """Aicha's 12 pitched parts to a model that met at most 4 (folk songs and chorales) and one velocity: it writes
    at most 4, the summary names the other 8 as not written and says why, and each written part's new notes keep
    that part's loudness in the seed (the median of its last 32 notes)."""
    out = tmp_path / "aicha.mid"
    result = CliRunner().invoke(cli, ["generate", "--model", str(bundle.path), "--seed", str(pop_song), "--out",
                                      str(out), "--bars", "4", "--random-seed", "3", "--continuation-only", "--json"])
    summary = json.loads(result.output)
    tracks, seed, written = summary["tracks"], read_midi(pop_song), read_midi(out)
    assert 1 <= len(tracks["written"]) <= bundle.tracks == 4 and len(tracks["beyond"]) == 8
    assert not set(tracks["written"]) & set(tracks["beyond"])
    for name in tracks["written"]:
        notes = next(part for part in seed.instruments if part.name == name).notes
        loudness = int(np.median([note.velocity for note in notes][-32:]))
        assert {note.velocity for part in written.instruments if part.name == name for note in part.notes} == {loudness}
    text = CliRunner().invoke(cli, ["generate", "--model", str(bundle.path), "--seed", str(pop_song), "--out",
                                    str(tmp_path / "again.mid"), "--bars", "4", "--random-seed", "3"]).output
    assert "not written: " + ", ".join(tracks["beyond"]) + " (the model learned at most 4 parts" in text
    looped = json.loads(CliRunner().invoke(cli, ["generate", "--model", str(bundle.path), "--seed", str(pop_song),
                                                 "--out", str(tmp_path / "loop.mid"), "--bars", "4", "--json",
                                                 "--accompaniment", "loop"]).output)
    assert looped["following_log_likelihood"] is None and "judge" not in looped["wall_seconds"]  # not a fill


def test_starved_parts_loop_but_not_where_the_parts_are_to_close_together(bundle, monkeypatch):
    """With every part counted as starved (``STARVED`` 100), a chorale's alto, tenor and bass loop under a newly
    written soprano; asked to close (``ending``), they are written, since a loop cannot close with the others."""
    from melody import continuation

    monkeypatch.setattr(continuation, "STARVED", 100.0)
    seed = corpus_files("chorales")[3]
    looped = generate(bundle, seed, config=GenerateConfig(bars=2, random_seed=1), write=False).summary["tracks"]
    assert looped["written"] == ["Soprano"] and looped["looped"] == ["Alto", "Tenor", "Bass"]
    closing = generate(bundle, seed, config=GenerateConfig(bars=2, random_seed=1, ending=True), write=False)
    assert closing.summary["tracks"]["written"] == ["Soprano", "Alto", "Tenor", "Bass"]


def test_a_part_the_model_all_but_leaves_out_is_starved_and_loops_instead():
    """Lead and bass strike every quarter of the seed; in 2 new bars (8 quarters) the bass, paced at 1 onset a
    quarter, is starved with 1 onset (under a quarter of 8), not with 2; the lead never is; nor is a part that does
    not sound in the seed's last bars (it has no loop to play instead)."""
    from melody.continuation import arrange, starved
    from melody.tokenizer import Tokenizer, TokenizerConfig

    def part(name, pitch, bars=8):
        return Instrument(0, name=name, notes=[Note(480 * q, pitch, 480, 80) for q in range(4 * bars)])
    tokenizer = Tokenizer(TokenizerConfig())
    kinds = tokenizer.kinds
    note = lambda track, pitch: [kinds["Track"].token(track), kinds["Note"].token(pitch), kinds["Duration"].token(11)]
    shift = [kinds["TimeShift"].token(11)]  # a quarter
    def bass_onsets(seed, count):
        primer = make_primer(seed, tokenizer)
        tokens = note(1, 48) * (count > 0) + sum((shift + note(0, 72) + note(1, 48) * (k + 1 < count)
                                                  for k in range(7)), [])
        return starved(arrange(seed, primer, np.array(tokens), tokenizer, 2), seed, primer, tokenizer, 2,
                       np.array([1.0, 1.0]))
    seed = Score(480, [part("Lead", 72), part("Bass", 48)], time_signatures=[TimeSignature(0, 4, 4)])
    assert bass_onsets(seed, 1) == {1} and bass_onsets(seed, 2) == frozenset()
    gone = Score(480, [part("Lead", 72), part("Bass", 48, bars=2)], time_signatures=[TimeSignature(0, 4, 4)])
    assert bass_onsets(gone, 1) == frozenset()


def test_each_new_note_joins_the_track_it_was_sampled_for(bundle, tmp_path):
    """SATB: four tracks with one program. New notes land on several of them, and no track is added."""
    seed_path = corpus_files("chorales")[7]
    seed = read_midi(seed_path)
    result = generate(bundle, seed_path, tmp_path / "satb.mid", config=GenerateConfig(bars=4, random_seed=5))
    after = read_midi(result.files[0])
    assert [(i.name, i.program, i.channel) for i in after.instruments] == \
        [(i.name, i.program, i.channel) for i in seed.instruments]
    grown = [len(a.notes) - len(b.notes) for a, b in zip(after.instruments, seed.instruments)]
    assert sum(grown) == result.summary["notes"] and sum(count > 0 for count in grown) >= 2


def test_melody_model_continues_the_lead_line(melody_bundle, tmp_path):
    seed = corpus_files("chorales")[40]
    result = generate(melody_bundle, seed, tmp_path / "m.mid", config=GenerateConfig(bars=4, random_seed=4))
    after = read_midi(result.files[0])
    soprano = next(i for i in after.instruments if i.name == "Soprano")
    original = next(i for i in read_midi(seed).instruments if i.name == "Soprano")
    assert len(soprano.notes) > len(original.notes)
    # the new notes are the soprano's, whatever program the model sampled: no extra instrument appears
    assert [(i.name, i.program) for i in after.instruments] == [(i.name, i.program) for i in read_midi(seed).instruments]


def test_new_music_starts_after_the_seed_has_ended(melody_bundle, tmp_path):
    """The lead line stops after 2 bars while the piano plays on to bar 4: the melody model's
    continuation waits for the seed to end, and keeps its place in the bar."""
    lead = tuple(Note(480 * i, 67 + (i % 3), 480, 90) for i in range(8))
    piano = tuple(Note(1920 * bar, pitch, 1920, 60) for bar in range(4) for pitch in (48, 55))
    seed = Score(480, (Instrument(52, name="Soprano", notes=lead), Instrument(0, name="Piano", notes=piano)),
                 time_signatures=(TimeSignature(0, 4, 4),))
    write_midi(seed, tmp_path / "seed.mid")
    result = generate(melody_bundle, tmp_path / "seed.mid", tmp_path / "out.mid",
                      config=GenerateConfig(bars=2, random_seed=1))
    new = [n for n in read_midi(result.files[0]).notes if n not in set(read_midi(tmp_path / "seed.mid").notes)]
    assert new and min(n.start for n in new) >= 4 * 1920 - 120  # not before the piano's last bar ends
    assert result.written[0] == (4 * 1920, 6 * 1920)  # the two bars after the piano's last, shaded in --png


def test_bad_requests_write_nothing(bundle, tmp_path):
    drums = tmp_path / "drums.mid"
    drums.write_bytes(smf(track(note(9, 36, 100))))
    taken = tmp_path / "taken.mid"
    taken.write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        generate(bundle, corpus_files("folk")[0], taken)
    with pytest.raises(OutputExistsError):  # the second of three files exists: none is written
        (tmp_path / "s-2.mid").write_bytes(b"mine")
        generate(bundle, corpus_files("folk")[0], tmp_path / "s.mid", config=GenerateConfig(num_samples=3))
    assert not (tmp_path / "s-1.mid").exists() and taken.read_bytes() == b"mine"
    with pytest.raises(MelodyError, match="bars must be in 1..256"):
        generate(bundle, None, tmp_path / "z.mid", config=GenerateConfig(bars=0))
    with pytest.raises(MelodyError, match="bars must be in 1..256, got 100000"):  # refused, not silently cut
        generate(bundle, None, tmp_path / "z.mid", config=GenerateConfig(bars=100_000))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SamplingConfig(temperature=0)
    with pytest.raises(ValueError, match="top-p must be in"):
        SamplingConfig(top_p=1.5)
    with pytest.raises(ValueError, match="top-k must be at least 1"):
        SamplingConfig(top_k=0)
    with pytest.raises(ValueError, match="phrase returns must be in 0..10 nats"):
        SamplingConfig(phrase_returns=-1)


def test_default_model_ships_and_generates_from_the_command_line(tmp_path):

    from melody.generate import DEFAULT_MODEL

    shipped = load_bundle(DEFAULT_MODEL)
    assert not shipped.melody_only and shipped.model_config.ahead  # every part, told what lies ahead
    assert shipped.metrics["best_val_loss"] < shipped.metrics["unigram_val_nll"]
    out = tmp_path / "x.mid"
    result = run_melody("generate", "--seed", corpus_files("chorales")[0], "--out", out, "--random-seed", 1,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and f"Wrote {out}" in result.stdout
    assert validate_midi(out) == []
    done = result.stdout.strip().splitlines()[-1]  # how long it took, and where the time went
    assert done.startswith("Done in ") and all(f"{stage} " in done for stage in ("read", "load", "prime", "sample",
                                                                                 "write"))
    result = run_melody("generate", "--seed", corpus_files("chorales")[0], "--out", out, "--force", "--json",
                        cwd=tmp_path)
    stages = json.loads(result.stdout)["wall_seconds"]
    assert set(stages) == {"read", "load", "prime", "sample", "write", "total"}
    assert all(seconds >= 0 for seconds in stages.values())
    # the total counts from the interpreter's start, so it holds every stage and the start-up
    assert stages["total"] >= sum(seconds for stage, seconds in stages.items() if stage != "total")


def test_the_time_taken_is_melodys_not_the_shells_that_ran_it(bundle, tmp_path):
    """`bash -c "sleep 3 && melody generate ..."`: bash runs melody in its own process (started 3 s before
    melody did); the summary's total is melody's own time."""
    command = " ".join(f"'{part}'" for part in melody_command("generate", "--model", bundle.path, "--seed",
                                                             corpus_files("chorales")[0], "--out", tmp_path / "g.mid",
                                                             "--json"))
    started = time.perf_counter()
    result = subprocess.run(["bash", "-c", f"sleep 3 && exec {command}"], capture_output=True, text=True)
    whole = time.perf_counter() - started
    total = json.loads(result.stdout)["wall_seconds"]["total"]
    assert 0.2 < total < whole - 2.5


# ----------------------------------------------------------------------------- fitting the seed

METERS = [(4, 4), (3, 4), (2, 4), (2, 2), (1, 4), (6, 8), (9, 8), (12, 8), (5, 4), (7, 8)]


def rebarred(path, signatures):
    """A real tune with its bar lines redrawn: ``signatures`` as (tick in quarters, numerator, denominator)."""
    score = read_midi(path)
    quarter = score.ticks_per_quarter
    return score.replace(time_signatures=[TimeSignature(q * quarter, n, d) for q, n, d in signatures])


@pytest.mark.parametrize("meter", METERS + ["changes"], ids=lambda m: m if isinstance(m, str) else f"{m[0]}-{m[1]}")
def test_bars_asked_are_bars_written_in_the_seeds_meter(bundle, tmp_path, meter):
    """The sampler's bar lines fall where the meter puts them, and there are exactly as many as asked."""
    signatures = [(0, 3, 4), (6, 5, 8), (11, 2, 4)] if meter == "changes" else [(0, *meter)]
    seed = rebarred(corpus_files("folk")[11], signatures)
    write_midi(seed, tmp_path / "seed.mid")
    result = generate(bundle, tmp_path / "seed.mid", tmp_path / "out.mid",
                      config=GenerateConfig(bars=3, random_seed=2, sampling=SamplingConfig(temperature=1.5)))
    out = read_midi(result.files[0])
    last = seed.time_signatures[-1]
    bar = last.bar_ticks(out.ticks_per_quarter)
    seed_end = round(seed.end_tick * out.ticks_per_quarter / seed.ticks_per_quarter)
    begin = next(line for line in out.bar_lines(until=seed_end + bar + 1) if line >= seed_end - 120)
    new = [n for n in out.notes if n.start >= begin]
    assert new and all(n.end <= begin + 3 * bar for n in new)  # nothing spills past the third bar
    assert out.end_tick == begin + 3 * bar  # and the file lasts the three bars, rests at the end too
    assert out.time_signatures[-1].numerator == last.numerator and out.time_signatures[-1].denominator == \
        last.denominator
    # and in tokens: every new bar is exactly one bar of the meter long
    tokenizer = bundle.tokenizer
    primer = make_primer(seed, tokenizer)
    _, sampler = stepper_and_sampler(bundle)
    rows, complete = sampler.sample(sampler.prime(primer.tokens), 4, tokenizer.sampling_mask(1), 1000, 3,
                                    random_seed=5, config=SamplingConfig(temperature=1.5))
    steps = tokenizer.token_table()["shift_steps"]
    length = tokenizer.bar_steps(last.numerator, last.denominator)
    assert complete.any()  # a tiny model may babble a chord past the token cap; the meter holds regardless
    for row, done in zip(rows, complete):
        lines = np.flatnonzero(tokenizer.is_bar(row))
        assert len(lines) == 2 if done else len(lines) <= 2
        for start, end in zip([-1, *lines], [*lines, len(row)] if done else lines):
            assert steps[row[start + 1:end]].sum() == length, tokenizer.names(row)


def test_without_a_seed_the_meter_and_key_asked_for(bundle, tmp_path):
    result = generate(bundle, None, tmp_path / "waltz.mid",
                      config=GenerateConfig(bars=4, random_seed=3, key="F#m", time_signature=(7, 8), key_strength=20))
    out = read_midi(result.files[0])
    assert [(t.numerator, t.denominator) for t in out.time_signatures] == [(7, 8)]
    assert [k.key for k in out.key_signatures] == ["F#m"]
    pitched = [n.pitch % 12 for i in out.instruments if not i.is_drum for n in i.notes]
    assert pitched and set(pitched) <= scale(6, True)  # 20 nats: nothing outside F# minor
    assert len(out.bar_lines()) <= 4
    with pytest.raises(MelodyError, match="come from the seed"):
        generate(bundle, corpus_files("folk")[0], tmp_path / "x.mid", config=GenerateConfig(key="C"))
    with pytest.raises(MelodyError, match="time signature 5/3 is not one melody writes"):
        generate(bundle, None, tmp_path / "x.mid", config=GenerateConfig(time_signature=(5, 3)))
    with pytest.raises(MelodyError, match="not a key name"):
        generate(bundle, None, tmp_path / "x.mid", config=GenerateConfig(key="H"))


def test_the_primer_carries_the_seeds_key_and_the_density_asked_for(bundle):
    tokenizer = bundle.tokenizer
    seed = read_midi(corpus_files("chorales")[3])
    header = tokenizer.names(make_primer(seed, tokenizer).tokens[:3])
    assert header[1] == f"Key_{seed.key_signatures[0].key}"
    busy = make_primer(seed, tokenizer, density=3.0).tokens
    calm = make_primer(seed, tokenizer, density=0.25).tokens
    assert tokenizer.names(busy[2:3]) == ["Density_7"] and tokenizer.names(calm[2:3]) == ["Density_1"]
    assert np.array_equal(busy[3:], calm[3:])


def test_the_band_plays_on_under_a_melody_models_tune(melody_bundle, pop_song, tmp_path):
    """Every track sounding in the seed's last bar sounds in the first new bar; with accompaniment 'none'
    only the lead goes on."""
    seed = read_midi(pop_song)
    result = generate(melody_bundle, pop_song, tmp_path / "band.mid", config=GenerateConfig(bars=4, random_seed=1))
    fit = continuation_fit(seed, read_midi(result.files[0]), 4)
    assert fit["tracks_before"] >= 4 and fit["tracks_kept"] == fit["tracks_before"]
    assert result.summary["accompaniment_notes"] > 0
    alone = generate(melody_bundle, pop_song, tmp_path / "solo.mid",
                     config=GenerateConfig(bars=4, random_seed=1, accompaniment="none"))
    grown = [len(a.notes) - len(b.notes) for a, b in zip(read_midi(alone.files[0]).instruments, seed.instruments)]
    assert sum(count > 0 for count in grown) == 1 and alone.summary["accompaniment_notes"] == 0


def test_evaluate_pairs_continuations_with_their_seeds(bundle, tmp_path):
    seeds, continued = tmp_path / "seeds", tmp_path / "continued"
    seeds.mkdir()
    for path in corpus_files("folk")[300:302]:
        shutil.copy(path, seeds)
        generate(bundle, path, continued / f"{path.stem}-continued.mid", config=GenerateConfig(bars=4, random_seed=1))
    result = json.loads(CliRunner().invoke(cli, ["evaluate", "--generated", str(continued), "--seeds", str(seeds),
                                                 "--bars", "4", "--json"]).output)
    fit = result["fit"]
    assert [Path(p["seed"]).name for p in fit["pairs"]] == [p.name for p in corpus_files("folk")[300:302]]
    for pair, path in zip(fit["pairs"], corpus_files("folk")[300:302]):  # each continuation with its own seed
        own = continuation_fit(read_midi(path), read_midi(continued / f"{path.stem}-continued.mid"), 4)
        assert pair["bars_written"] == own["bars_written"] and 1 <= own["bars_written"] <= 4  # (a tiny model
        assert pair["in_key"] == pytest.approx(own["in_key"], nan_ok=True)                   # may rest in a bar)
        assert pair["tracks_before"] == own["tracks_before"] == 1
        for name in ("clash", "lead_on_others", "copied_bars", "parallels"):  # nan is null in JSON
            assert pair[name] == pytest.approx(own[name]) if pair[name] is not None else np.isnan(own[name])
    assert fit["tracks_before"] == 2  # summed over the pairs
    assert fit["bars_exact"] == np.mean([p["bars_written"] == 4 for p in fit["pairs"]])
    assert all(0 <= p["in_key"] <= 1 and p["density_ratio"] > 0 for p in fit["pairs"])
    assert "nll" not in result  # the fit alone needs no model


def test_a_track_silent_in_the_primers_bars_keeps_its_number(bundle):
    """Strings play only in the first two bars: a primer of the last two bars still declares them, so the
    bass stays Track_2 and its new notes go to the bass."""
    piano = [Note(480 * q, 72 + q % 5, 480, 80) for q in range(32)]
    strings = [Note(1920 * b, 64, 1920, 70) for b in range(2)]
    bass = [Note(1920 * b, 36 + b % 3, 1920, 90) for b in range(8)]
    seed = Score(480, (Instrument(0, name="Piano", notes=piano), Instrument(40, name="Strings", notes=strings),
                       Instrument(33, name="Bass", notes=bass)), time_signatures=(TimeSignature(0, 4, 4),))
    tokenizer = bundle.tokenizer
    primer = make_primer(seed, tokenizer, primer_bars=2)
    assert tokenizer.tracks(primer.tokens) == [(False, 0), (False, 40), (False, 33)] and primer.sources == (0, 1, 2)
    decoded = tokenizer.decode(primer.tokens, meta=primer.timing)
    assert [len(i.notes) for i in decoded.instruments] == [8, 0, 2]
    assert {n.pitch for n in decoded.instruments[2].notes} == {36 + 6 % 3, 36 + 7 % 3}


def test_accompaniment_loop_writes_the_lead_over_the_other_parts_loops_which_the_model_hears(bundle):
    """A chorale's soprano over its alto, tenor and bass repeating their last bars: the three lower voices after
    the seed are exactly their loops (``with_loops``; played into the stream as kept notes, the test above), the
    soprano is new, and the summary says so."""
    from melody.continuation import with_loops

    path = corpus_files("chorales")[5]
    seed = read_midi(path)
    config = GenerateConfig(bars=3, random_seed=2, accompaniment="loop")
    made = generate(bundle, path, config=config, write=False)
    looped, at_bar, loops = with_loops(seed, {1, 2, 3}, 3, grid=12)
    begin = seed.bar_lines(until=looped.end_tick)[at_bar]
    for voice in (1, 2, 3):
        assert made.scores[0].instruments[voice].notes == looped.instruments[voice].notes
    soprano = [n for n in made.scores[0].instruments[0].notes if n.start >= begin]
    assert soprano and made.written[0][0] == begin
    tracks = made.summary["tracks"]
    assert tracks["written"] == ["Soprano"] and tracks["looped"] == ["Alto", "Tenor", "Bass"] and not tracks["kept"]
    assert made.summary["accompaniment_notes"] == sum(loops.values())


def test_continuing_after_a_bar_leaves_out_the_bars_after_it_and_loops_the_groove_before_them(bundle, tmp_path):
    """--after 8 on a 12-bar song whose bars 9-12 are an outro (the drums stop, the piano holds one chord): the
    output is the song's bars 1-8 (the note held over bar 8's end cut there) and 2 new bars, in which the drums,
    which the model cannot play, repeat bars 5-8's groove, and nothing of the outro is heard."""
    groove = [Note(480 * q, 60 + q % 5, 480, 80) for q in range(31)] + [Note(480 * 31, 67, 960, 80)]
    outro = [Note(480 * 33, pitch, 480 * 15, 70) for pitch in (48, 55, 64)]
    drums = tuple(Note(240 * e, (36, 42, 38, 42)[e % 4], 120, 100) for e in range(64))
    write_midi(Score(480, (Instrument(0, name="Piano", notes=tuple(groove + outro)),
                           Instrument(0, True, "Kit", drums)), time_signatures=(TimeSignature(0, 4, 4),)),
               tmp_path / "song.mid")
    made = generate(bundle, tmp_path / "song.mid", config=GenerateConfig(bars=2, after=8, random_seed=3),
                    write=False)
    piano, kit = made.scores[0].instruments
    assert made.written[0] == (480 * 32, 480 * 40)
    assert [(n.start, n.pitch, n.duration) for n in piano.notes if n.start < 480 * 32] == \
        [(n.start, n.pitch, min(n.duration, 480 * 32 - n.start)) for n in groove]
    assert not any(n.start >= 480 * 32 and n.duration > 480 * 8 for n in piano.notes)  # no outro chord
    assert [(n.start - 480 * 16, n.pitch) for n in kit.notes if n.start >= 480 * 32] == \
        [(n.start, n.pitch) for n in drums if 480 * 16 <= n.start < 480 * 24]
    assert (made.summary["after"], made.summary["seed_bars"]) == (8, 12)
    with pytest.raises(SettingError, match="the seed has 12 bars"):
        generate(bundle, tmp_path / "song.mid", config=GenerateConfig(after=13), write=False)
    with pytest.raises(SettingError, match="give a seed"):
        generate(bundle, None, config=GenerateConfig(after=2), write=False)


def test_loops_repeat_the_bars_before_a_final_hit_not_the_hit():
    """Drums through bars 1-5 and a piano chord held from bar 5 into bar 6, which holds only a crash and the bass's
    last note (2 onsets after bar 5's 18): the loops after bar 6 repeat the drums' bars 2-5 and the piano's bar 5, its
    chord cut at that bar's end; a
    sixth bar that plays on (8 onsets: half of bar 5's) is looped as before, bars 3-6."""
    from melody.continuation import with_loops

    def song(last_bar):
        kit = [Note(240 * e, (36, 42, 38, 42)[e % 4], 120, 100) for e in range(40)] + last_bar
        chord = [Note(480 * 16, pitch, 480 * 8, 70) for pitch in (60, 64)]
        return Score(480, (Instrument(0, name="Piano", notes=tuple(chord + [Note(480 * 20, 36, 480, 70)])),
                           Instrument(0, True, "Kit", tuple(kit))), time_signatures=(TimeSignature(0, 4, 4),))

    looped, at_bar, _ = with_loops(song([Note(480 * 20, 49, 480, 100)]), {0, 1}, 4, grid=12)
    piano, kit = looped.instruments
    assert at_bar == 6
    new_kit = [(n.start - 480 * 24, n.pitch) for n in kit.notes if n.start >= 480 * 24]
    assert new_kit == [(240 * e, (36, 42, 38, 42)[e % 4]) for e in range(32)]  # bars 2-5 again: no crash
    assert [(n.start, n.pitch, n.duration) for n in piano.notes if n.start >= 480 * 24] == \
        [(480 * q, pitch, 480 * 4) for q in (24, 28, 32, 36) for pitch in (60, 64)]  # bar 5's chord, cut at its end
    groove = [Note(240 * e, (36, 42, 38, 42)[e % 4], 120, 100) for e in range(40, 48)]
    looped, _, _ = with_loops(song(groove), {1}, 4, grid=12)
    assert [(n.start - 480 * 16, n.pitch) for n in looped.instruments[1].notes if n.start >= 480 * 24] == \
        [(240 * e, (36, 42, 38, 42)[e % 4]) for e in range(16, 48)]


def test_a_seed_that_ends_on_an_outro_is_told_where_the_band_last_played():
    """Three parts through bars 1-8, then one alone in bars 9-12: the last 4 bars hold 1 part, and the last 4 that
    hold 3 are bars 8-11, so ``fuller_bar`` answers bar 8, where two parts stop; with all three to the end, or one
    part alone throughout, or two of three still playing, it answers None."""
    from melody.continuation import fuller_bar

    def song(bars_each):
        return Score(480, tuple(Instrument(0, name=f"p{k}", notes=tuple(Note(480 * q, 60 + 4 * k, 480, 80)
                                                                        for q in range(4 * bars)))
                                for k, bars in enumerate(bars_each)), time_signatures=(TimeSignature(0, 4, 4),))

    assert fuller_bar(song((12, 8, 8)), 12) == (8, 3, 1)
    assert fuller_bar(song((12, 12, 12)), 12) is None and fuller_bar(song((12,)), 12) is None
    assert fuller_bar(song((12, 8, 11)), 12) is None  # 2 of 3 still play: no outro


def test_a_fill_leaves_what_the_model_cannot_play_as_it_was(bundle, tmp_path):
    """Bars 3-4 of a piano piece with drums, written again by a model without drums: the drums of those bars stay
    note for note, and the summary counts them among the tracks kept."""
    piano = tuple(Note(480 * q, 60 + q % 7, 480, 80) for q in range(24))
    drums = tuple(Note(240 * e, 36 + 2 * (e % 2), 120, 100) for e in range(48))
    write_midi(Score(480, (Instrument(0, name="Piano", notes=piano), Instrument(0, True, "Kit", drums)),
                     time_signatures=(TimeSignature(0, 4, 4),)), tmp_path / "seed.mid")
    made = generate(bundle, tmp_path / "seed.mid", config=GenerateConfig(bars=2, from_bar=3, random_seed=3),
                    write=False)
    assert made.scores[0].instruments[1].notes == read_midi(tmp_path / "seed.mid").instruments[1].notes
    assert made.summary["tracks"]["kept"] == ["Kit"] and made.summary["tracks"]["written"] == ["Piano"]


def test_bars_written_before_any_part_has_played_have_no_pace_to_keep(bundle, tmp_path):
    """A song whose only part comes in at bar 9 (a POP909 intro), written from bar 3: no part has a pace in the
    bars before (each is nan), and the bars are written all the same, with nothing held to a pace."""
    tune = tuple(Note(480 * q, 60 + q % 7, 480, 80) for q in range(32, 48))
    write_midi(Score(480, (Instrument(0, name="Piano", notes=tune),), time_signatures=(TimeSignature(0, 4, 4),)),
               tmp_path / "seed.mid")
    made = generate(bundle, tmp_path / "seed.mid", config=GenerateConfig(bars=2, from_bar=3, random_seed=3),
                    write=False)
    assert made.summary["paces"] == {} and made.summary["bars_short"] == []
    assert made.written[0] == (480 * 8, 480 * 16)


def test_a_sample_cut_short_by_the_token_limit_is_said_in_the_headline(bundle, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["melody.generate"], "TOKENS_PER_BAR_CAP", 4)  # no bar of a chorale fits in 4
    result = CliRunner().invoke(cli, ["generate", "--model", str(bundle.path), "--seed", str(corpus_files("chorales")[0]),
                                      "--out", str(tmp_path / "g.mid"), "--bars", "3", "--random-seed", "1"])
    assert result.exit_code == 0, result.output
    headline = next(line for line in result.output.splitlines() if "new notes" in line)
    assert headline.startswith("1 x 3 bars asked, 1 of them cut short by the token limit (") and " of 3 bars)" in headline


def test_a_lead_resting_at_the_end_asks_for_the_density_of_its_last_bars_that_play(bundle):
    """Eighth notes for 8 bars over a pad, then 4 bars of the pad alone (an outro): the primer asks for the busy
    bars' density, not the outro's."""
    from melody.tokenizer import DENSITIES, onset_density

    lead = tuple(Note(240 * e, 72 + e % 5, 240, 90) for e in range(64))
    pad = tuple(Note(1920 * b, 60, 1920, 60) for b in range(12))
    seed = Score(480, (Instrument(0, name="Lead", notes=lead), Instrument(52, name="Pad", notes=pad)),
                 time_signatures=(TimeSignature(0, 4, 4),))
    tokenizer = bundle.tokenizer
    asked = tokenizer.names(make_primer(seed, tokenizer).tokens)[2]
    busy = onset_density(seed.replace(instruments=(seed.instruments[0],)))
    assert asked == tokenizer.names([tokenizer.density_token(busy)])[0] == f"Density_{DENSITIES.index(2.0) + 1}"
    outro = tokenizer.names([tokenizer.density_token(onset_density(Score(480, (Instrument(52, notes=pad[8:]),))))])
    assert asked != outro[0]


def test_a_part_resting_in_the_last_bar_still_belongs_to_the_band(melody_bundle, tmp_path):
    """A pad holds chords in bars 1-3 and rests in bar 4 (a break): under a melody model's new tune it comes back,
    repeating its last 4 bars (the break included); a part silent for the last 4 bars does not."""
    lead = tuple(Note(480 * q, 72 + q % 5, 480, 90) for q in range(24))
    pad = tuple(Note(1920 * b, 60, 1920, 60) for b in (2, 3, 4))
    intro = (Note(0, 48, 1920, 60),)
    seed = Score(480, (Instrument(52, name="Lead", notes=lead), Instrument(48, name="Pad", notes=pad),
                       Instrument(32, name="Intro", notes=intro)), time_signatures=(TimeSignature(0, 4, 4),))
    write_midi(seed, tmp_path / "seed.mid")
    made = generate(melody_bundle, tmp_path / "seed.mid", config=GenerateConfig(bars=4, random_seed=1), write=False)
    looped = [n.start for n in made.scores[0].instruments[1].notes if n.start >= 6 * 1920]
    assert looped == [6 * 1920, 7 * 1920, 8 * 1920]  # the pad's bars 3-5 again, then its break
    assert made.summary["tracks"]["looped"] == ["Pad"] and "Intro" in made.summary["tracks"]["silent"]


def test_parts_above_a_kept_bass_write_first_at_its_moments(bundle):
    """At each moment the stream writes its tracks in order, the top part first; a kept bass note waits while the
    parts above it write theirs at that moment (before, it was played at once, and they could only follow it,
    out of order), and comes when the model would do anything else."""
    tokenizer = bundle.tokenizer
    table = tokenizer.token_table()
    seed = corpus_files("chorales")[3]
    config = GenerateConfig(bars=3, from_bar=5, keep=("Bass",), random_seed=6, num_samples=8,
                            sampling=SamplingConfig(temperature=1.5))
    made = generate(bundle, seed, config=config, write=False)
    original = read_midi(seed)
    lines = original.bar_lines(until=original.end_tick)
    begin, end = lines[4], lines[7]
    bass = {n.start for n in original.instruments[3].notes if begin <= n.start < end}
    together = [n.start for score in made.scores for part in score.instruments[:3] for n in part.notes
                if n.start in bass]
    assert len(together) > len(bass)  # upper notes struck with the bass's
    for score in made.scores:
        assert score.instruments[3].notes == original.instruments[3].notes
    _, sampler = stepper_and_sampler(bundle)
    primer = make_primer(original, tokenizer, at_bar=4)
    from melody.continuation import kept_notes

    kept = kept_notes(primer, tokenizer, {3}, 3)
    rows, _ = sampler.sample(sampler.prime(primer.tokens, kept), 8, tokenizer.sampling_mask(4), 768, 3, 6,
                             SamplingConfig(temperature=1.5), kept=kept)
    for row in rows:  # within every moment, tracks in order
        latest = -1
        for token in row:
            if table["shift_steps"][token] or table["bar_steps"][token]:
                latest = -1
            elif table["track_of"][token] >= 0:
                assert table["track_of"][token] >= latest
                latest = table["track_of"][token]

def test_voices_that_never_crossed_in_the_seed_keep_their_order(bundle):
    """A chorale (bwv104.6, whose tenor and bass cross) continued 16 times at a high temperature: the alto's and
    the tenor's every note lies at or under the last note of the voice above it (they never crossed in the seed);
    the order holds only for single lines that never crossed (``in_order``: a pair that crossed, or a chordal
    part, is free), and the bass, free, does rise above the tenor."""
    from melody.continuation import chord_limits, in_order

    path = corpus_files("chorales")[5]
    seed = read_midi(path)
    primer = make_primer(seed, bundle.tokenizer)
    assert list(in_order(primer, chord_limits(seed, primer))) == [-1, 0, 1, -1]
    config = GenerateConfig(bars=6, random_seed=2, num_samples=16, sampling=SamplingConfig(temperature=1.3),
                            accompaniment="none")  # a voice the model leaves silent in a row is not looped there
    result = generate(bundle, path, config=config, write=False)
    over = {"Alto": 0, "Tenor": 0, "Bass": 0}
    for made, (begin, _) in zip(result.scores, result.written):
        for above, part in zip(made.instruments, made.instruments[1:]):
            for note in (n for n in part.notes if n.start >= begin):
                before = [n.pitch for n in above.notes if n.start <= note.start]
                over[part.name] += bool(before) and note.pitch > before[-1]
    assert over["Alto"] == over["Tenor"] == 0 < over["Bass"], over
    soprano, alto = primer.score.instruments[:2]
    over = Note(soprano.notes[3].start, soprano.notes[3].pitch + 2, 100, 80)  # the alto above, once
    crossed = primer.score.replace(instruments=(soprano, dataclasses.replace(alto, notes=tuple(sorted(
        alto.notes + (over,), key=lambda n: n.start)))) + primer.score.instruments[2:])
    assert list(in_order(dataclasses.replace(primer, score=crossed), [1, 1, 1, 1])) == [-1, -1, 1, -1]
    assert list(in_order(primer, [1, 3, 1, 1])) == [-1, -1, -1, -1]


def test_written_voices_avoid_parallels_where_the_seed_does(bundle, monkeypatch):
    """A chorale (no parallel fifths or octaves in its bars) continued 8 times by the shipped model at a high
    temperature, silent parts left silent: its written voices move in parallel fifths or octaves less than a third
    as often as free ones (a voice left no other note may; the tiny model writes too few moves to tell); a seed whose tenor doubles the soprano an octave down
    (parallel octaves throughout) leaves its voices free (``avoiding_parallels``)."""
    from melody.continuation import avoiding_parallels, chord_limits
    from melody.ensemble import parallels

    path = corpus_files("chorales")[5]
    seed = read_midi(path)
    primer = make_primer(seed, bundle.tokenizer)
    assert list(avoiding_parallels(primer, chord_limits(seed, primer))) == [True] * 4
    soprano = seed.instruments[0]
    doubled = seed.replace(instruments=(soprano, seed.instruments[1], dataclasses.replace(
        seed.instruments[2], notes=tuple(dataclasses.replace(n, pitch=n.pitch - 12) for n in soprano.notes)),
        seed.instruments[3]))
    doubled_primer = make_primer(doubled, bundle.tokenizer)
    assert not avoiding_parallels(doubled_primer, chord_limits(doubled, doubled_primer)).any()

    def written_parallels():
        config = GenerateConfig(bars=6, random_seed=3, num_samples=8, sampling=SamplingConfig(temperature=1.3),
                                accompaniment="none")
        result = generate(shipped, path, config=config, write=False)
        return [parallels(made, begin, end) for made, (begin, end) in zip(result.scores, result.written)]

    shipped = load_bundle(DEFAULT_MODEL)
    held = written_parallels()
    monkeypatch.setattr(sys.modules["melody.generate"], "avoiding_parallels",
                        lambda primer, chords: np.zeros(len(primer.sources), bool))
    free = written_parallels()
    assert np.nansum(held) < np.nansum(free) / 3, (held, free)


def test_added_voices_stay_under_the_voice_above_and_never_move_with_another_in_fifths_or_octaves(bundle, tmp_path,
                                                                                                 monkeypatch):
    """Sixteen harmonizations of a chorale's soprano: no added voice rises more than ``CROSS_REACH`` above the last
    note of the voice above it, nor moves with any voice above it (that one having just moved) from a fifth or an
    octave into the same interval. A crossing costs ``CROSSING``: some with it, none with an unpayable cost,
    more with none."""
    from melody import sampler
    from melody.generate import harmonizing

    original = read_midi(corpus_files("chorales")[3])
    melody = tmp_path / "soprano.mid"
    write_midi(original.replace(instruments=original.instruments[:1]), melody)

    def crossing_share(samples):
        config = harmonizing(melody, ("Alto", "Tenor", "Bass=cello"), ending=False, random_seed=3,
                             num_samples=samples, sampling=SamplingConfig(temperature=1.3))
        crossed = [_voices_apart(made, sampler.CROSS_REACH) for made in generate(bundle, melody, config=config,
                                                                                 write=False).scores]
        return sum(c for c, _ in crossed) / sum(n for _, n in crossed)

    paid = crossing_share(16)
    monkeypatch.setattr(sampler, "CROSSING", 1e9)
    never = crossing_share(8)
    monkeypatch.setattr(sampler, "CROSSING", 0.0)
    free = crossing_share(8)
    assert never == 0 < paid < free, (never, paid, free)


def test_a_harmonization_starts_with_its_melody_not_before_its_pickup(bundle, tmp_path):
    """Eight harmonizations of chorale sopranos that begin with a pickup (the first bar rests until its last beat):
    no added voice strikes before the soprano's first note (they did: the model filled the empty beats), and every
    added voice sings in the first bar the soprano does."""
    from melody.generate import harmonizing

    chorales = [score for score in map(read_midi, corpus_files("chorales"))
                if min(n.start for n in score.instruments[0].notes) > 0][:2]
    assert len(chorales) == 2
    for number, chorale in enumerate(chorales):
        melody = tmp_path / f"soprano-{number}.mid"
        write_midi(chorale.replace(instruments=chorale.instruments[:1]), melody)
        first = min(n.start for n in chorale.instruments[0].notes)
        config = harmonizing(melody, ending=False, random_seed=number, num_samples=8)
        for made in generate(bundle, melody, config=config, write=False).scores:
            starts = [min(n.start for n in added.notes) for added in made.instruments[1:]]
            assert min(starts) >= first and max(starts) < first + 4 * chorale.ticks_per_quarter, (first, starts)


def test_added_voices_pay_for_leaps_and_for_doubling_the_melody(bundle, tmp_path, monkeypatch):
    """Eight harmonizations of a chorale's soprano with the voice costs high, and with none: with them, the added
    voices leap less (mean interval between their notes) and sit less often on the pitch class the soprano sounds
    when they strike."""
    from melody import sampler
    from melody.generate import harmonizing

    original = read_midi(corpus_files("chorales")[3])
    melody = tmp_path / "soprano.mid"
    write_midi(original.replace(instruments=original.instruments[:1]), melody)

    def voices(leap, doubling):
        monkeypatch.setattr(sampler, "LEAP", leap)
        monkeypatch.setattr(sampler, "DOUBLING", doubling)
        config = harmonizing(melody, ending=False, random_seed=4, num_samples=8)
        leaps, doubled, notes = [], 0, 0
        for made in generate(bundle, melody, config=config, write=False).scores:
            soprano = made.instruments[0].notes
            for part in made.instruments[1:]:
                leaps += [abs(b.pitch - a.pitch) for a, b in zip(part.notes, part.notes[1:])]
                for note in part.notes:
                    above = [n for n in soprano if n.start <= note.start < n.end]
                    doubled += bool(above) and above[-1].pitch % 12 == note.pitch % 12
                    notes += 1
        return np.mean(leaps), doubled / notes

    free_leap, free_doubled = voices(0.0, 0.0)
    held_leap, held_doubled = voices(1.0, 3.0)
    assert held_leap < 0.8 * free_leap and held_doubled < 0.7 * free_doubled, (free_leap, held_leap, free_doubled,
                                                                              held_doubled)


def test_the_lowest_added_part_leaps_by_fourths_fifths_and_octaves_for_free(bundle):
    """Three parts added under a melody, each last on C4: an octave down costs the inner parts ``LEAP`` x 10 nats
    and the lowest (the bass) nothing; a ninth down (14 semitones) costs the bass only the two semitones beyond
    the octave; a step costs no part anything."""
    from melody.sampler import LEAP, _Playing

    table = bundle.tokenizer.token_table()
    tune = Instrument(0, name="Tune", notes=tuple(Note(480 * q, 72, 480, 90) for q in range(8)))
    seed = Score(480, (tune, Instrument(52, name="Alto"), Instrument(52, name="Tenor"), Instrument(52, name="Bass")),
                 time_signatures=(TimeSignature(0, 4, 4),))
    primer = make_primer(seed, bundle.tokenizer, new_parts=[1, 2, 3])
    added = np.array([source in (1, 2, 3) for source in primer.sources])
    playing = _Playing(None, 1, table, primer.tokens, parts=(None, added, None), hearing=True)
    note = {pitch: np.flatnonzero(table["pitch_of"] == pitch)[0] for pitch in (58, 48, 46)}
    for track, source in enumerate(primer.sources):
        playing.last_pitch[0, track] = 60
    costs = {}
    for track, source in enumerate(primer.sources):
        playing.track = np.array([track])
        cost = playing.voice_cost(np.zeros(1, np.int64))[0]
        costs[seed.instruments[source].name] = {pitch: cost[token] for pitch, token in note.items()}
    assert costs["Alto"][48] == pytest.approx(10 * LEAP) and costs["Tenor"][48] == pytest.approx(10 * LEAP)
    assert costs["Bass"][48] == 0 and costs["Bass"][46] == pytest.approx(2 * LEAP)
    assert costs["Alto"][58] == costs["Bass"][58] == 0 and costs["Tune"] == {58: 0, 48: 0, 46: 0}


def test_added_voices_named_after_a_choir_voice_keep_to_its_range(bundle, tmp_path, monkeypatch):
    """Eight harmonizations of a chorale's soprano: parts named after a voice ("Bass" played by a cello too) leave
    their voice's range (``VOICE_RANGES``) by more than 2 semitones in fewer than 2% of their notes when the
    register costs a lot (12.5 nats at 5 semitones), more often with the cost off; a part named otherwise has none.
    Within its range a voice pays nothing; beyond it, either way, alike."""
    from melody import sampler
    from melody.continuation import VOICE_RANGES
    from melody.generate import harmonizing

    original = read_midi(corpus_files("chorales")[3])
    melody = tmp_path / "soprano.mid"
    write_midi(original.replace(instruments=original.instruments[:1]), melody)
    parts = ("Alto", "Tenor 2", "Bass=cello")
    ranges = [VOICE_RANGES[voice] for voice in ("alto", "tenor", "bass")]

    def high_share(spread):
        monkeypatch.setattr(sampler, "REGISTER_SPREAD", spread)
        config = harmonizing(melody, parts, ending=False, random_seed=5, num_samples=8)
        pitches = [(note.pitch, low, high) for made in generate(bundle, melody, config=config, write=False).scores
                   for part, (low, high) in zip(made.instruments[1:], ranges) for note in part.notes]
        return np.mean([not low - 2 <= pitch <= high + 2 for pitch, low, high in pitches])

    held, free = high_share(1.0), high_share(1e9)
    assert held < 0.02 and free > held + 0.05, (held, free)
    from melody.continuation import registers

    seed = original.replace(instruments=original.instruments[:1] + tuple(
        Instrument(52, name=name) for name in ("Bass", "Second tenor", "Bassoon", "Piano")))
    primer = make_primer(seed, bundle.tokenizer, new_parts=range(1, 5))
    soprano = [note.pitch for note in primer.score.instruments[0].notes]  # its last 8 bars: the whole 4-bar seed
    assert np.array_equal(registers(primer, range(1, 5), np.ones(5)),
                          [[min(soprano), max(soprano)], [45, 57], [55, 64], [np.nan] * 2, [np.nan] * 2],
                          equal_nan=True)
    chordal = registers(primer, range(1, 5), np.array([3, 1, 1, 1, 6]))  # a soprano in chords: no range of its own
    assert np.isnan(chordal[0]).all() and np.array_equal(chordal[1], [45, 57])
    # the bass pays nothing from A2 (45) up to A3 (57), 0.5 nats 5 semitones beyond either, 2 at 10
    monkeypatch.setattr(sampler, "REGISTER_SPREAD", 5.0)
    table = bundle.tokenizer.token_table()
    bias = Sampler(numpy_network(bundle), table)._bias(None, None, registers(primer, range(1, 5), np.ones(5)))
    bass = bias[1 + primer.sources.index(1)]
    at = {pitch: -bass[np.flatnonzero(table["pitch_of"] == pitch)[0]] for pitch in (67, 62, 57, 45, 40, 35)}
    assert at == pytest.approx({67: 2.0, 62: 0.5, 57: 0.0, 45: 0.0, 40: 0.5, 35: 2.0})
    assert not bias[1 + primer.sources.index(3)].any()  # a bassoon is no choir voice: free


def test_a_part_written_from_the_first_bar_keeps_the_register_of_the_notes_it_replaces(bundle):
    """Written from bar 1 there are no bars before the new music: each single line's register is then the range of
    its own notes in the ``RANGE_BARS`` bars it is rewriting (a new bass under a kept soprano, alto and tenor stays a
    bass); from bar 9, the range of the 8 bars before. Likewise, its lines avoid parallel fifths and octaves because
    Bach's do in the bars rewritten (they once moved freely there: no bars before to judge by)."""
    from melody.continuation import RANGE_BARS, avoiding_parallels, registers

    chorale = read_midi(corpus_files("chorales")[3])
    for at_bar, (first, last) in ((0, (0, RANGE_BARS)), (8, (0, 8))):
        primer = make_primer(chorale, bundle.tokenizer, at_bar=at_bar)
        lines = primer.score.bar_lines() + [primer.score.end_tick]
        wanted = [[min(pitches), max(pitches)] for pitches in
                  ([n.pitch for n in part.notes if lines[first] <= n.start < lines[last]]
                   for part in primer.score.instruments)]
        assert np.array_equal(registers(primer, (), np.ones(4)), wanted), at_bar
        assert avoiding_parallels(primer, np.ones(4)).all(), at_bar


def test_written_parts_keep_to_their_register_in_the_seed(bundle, tmp_path, monkeypatch):
    """Eight continuations of a chorale, every voice written: notes more than 4 semitones beyond the range a voice
    sang in the seed's last 8 bars (``continuation.registers``) are under 2% of the written notes when the register
    costs a lot (12.5 nats at 5 semitones), and more common with the cost off."""
    from melody import sampler
    from melody.continuation import RANGE_BARS

    seed = read_midi(corpus_files("chorales")[3])
    since = seed.bar_lines(until=seed.end_tick)[-RANGE_BARS]
    ranges = [(min(p), max(p)) for p in ([n.pitch for n in part.notes if n.start >= since] for part in
                                         seed.instruments)]

    def beyond_share(spread):
        monkeypatch.setattr(sampler, "REGISTER_SPREAD", spread)
        config = GenerateConfig(bars=8, random_seed=3, num_samples=8, accompaniment="none")
        pitches = [(note.pitch, low, high) for made in generate(bundle, seed_path, config=config, write=False).scores
                   for part, (low, high) in zip(made.instruments, ranges) for note in part.notes
                   if note.start >= seed.end_tick]
        assert len(pitches) > 100
        return np.mean([pitch > high + 4 or pitch < low - 4 for pitch, low, high in pitches])

    seed_path = tmp_path / "chorale.mid"
    write_midi(seed, seed_path)
    held, free = beyond_share(1.0), beyond_share(1e9)
    assert held < 0.02 and free > held + 0.05, (held, free)


def _voices_apart(made, reach: int = 0) -> tuple[int, int]:
    """Asserts each voice under the one above it (at most ``reach`` semitones over its last note) and never in
    parallel fifths or octaves with another; returns (notes over the voice above, notes)."""
    crossed = notes = 0
    for above, part in zip(made.instruments, made.instruments[1:]):  # each added voice under the one above it
        for note in part.notes:
            before = [n.pitch for n in above.notes if n.start <= note.start]
            assert not before or note.pitch <= before[-1] + reach, (part.name, note)
            crossed, notes = crossed + bool(before and note.pitch > before[-1]), notes + 1
    for upper_index, above in enumerate(made.instruments):  # and never in parallel fifths or octaves with another
        for part in made.instruments[upper_index + 1:]:
            for previous, note in zip(part.notes, part.notes[1:]):
                upper = [n for n in above.notes if n.start <= note.start]
                if len(upper) < 2 or upper[-1].start != note.start or upper[-1].pitch == upper[-2].pitch:
                    continue
                interval = abs(upper[-2].pitch - previous.pitch) % 12
                same_way = (note.pitch - previous.pitch) * (upper[-1].pitch - upper[-2].pitch) > 0
                assert not (same_way and interval in (0, 7) and abs(upper[-1].pitch - note.pitch) % 12 == interval), \
                    (above.name, part.name, previous, note)
    return crossed, notes


def test_a_paced_lead_keeps_closer_to_its_pace_than_a_free_one(bundle, monkeypatch):
    """Eight rows of 4 bars of a chorale, the lead (track 0) free (the tiny model's writes about 1/4 onset per
    quarter), then held to a slow pace (1/20) and a fast one (2): its onsets per quarter move towards each,
    nearer it than free (the pace alone: no ``REST_PULL``, which the primer's own rests would set against 1/20)."""
    from melody import sampler as sampling

    monkeypatch.setattr(sampling, "REST_PULL", -np.inf)
    _, sampler = stepper_and_sampler(bundle)
    tokenizer = bundle.tokenizer
    primer = make_primer(read_midi(corpus_files("chorales")[2]), tokenizer)
    primed = sampler.prime(primer.tokens)
    allowed = tokenizer.sampling_mask(len(tokenizer.tracks(primer.tokens)))

    def lead_rate(pace):
        rows, _ = sampler.sample(primed, 8, allowed, 1200, 5, 4, pace=pace)
        rates = []
        for row in rows:
            decoded = tokenizer.decode(np.concatenate([primer.tokens, row]))
            onsets = {n.start for n in decoded.instruments[0].notes if n.start >= primer.end}
            rates.append(len(onsets) * decoded.ticks_per_quarter / (decoded.end_tick - primer.end))
        return float(np.mean(rates))

    free, slow, fast = lead_rate(None), lead_rate([0.05, np.nan]), lead_rate([2.0])
    assert slow < free < fast
    assert abs(np.log(slow / 0.05)) < abs(np.log(free / 0.05)) and abs(np.log(fast / 2)) < abs(np.log(free / 2))


def test_a_part_resting_longer_than_it_ever_did_in_the_primer_is_drawn_back_in(bundle, monkeypatch):
    """Eight rows of 8 bars of a chorale, every voice held back to its pace as ``generate`` does: the time a voice
    spends in rests longer than its longest one in the primer (``_rests``: Bach's voices rest a beat at most) is
    shorter with ``REST_PULL`` than without it; and ``_rests`` reads a hand-made primer right."""
    from melody import sampler as sampling
    from melody.continuation import paces

    _, sampler = stepper_and_sampler(bundle)
    tokenizer, table = bundle.tokenizer, bundle.tokenizer.token_table()
    primer = make_primer(read_midi(corpus_files("chorales")[2]), tokenizer)
    primed = sampler.prime(primer.tokens)
    allowed = tokenizer.sampling_mask(len(tokenizer.tracks(primer.tokens)))
    pace, held_only = paces(primer)
    longest, _ = sampling._rests(primer.tokens, table, len(pace) + 1)

    def overdue(pull):
        monkeypatch.setattr(sampling, "REST_PULL", pull)
        rows, _ = sampler.sample(primed, 8, allowed, 3000, 8, 4, pace=pace, held_only=held_only)
        total = 0
        for row in rows:
            decoded = tokenizer.decode(np.concatenate([primer.tokens, row]))
            for k, part in enumerate(decoded.instruments):
                sounded = primer.end
                for note in sorted(part.notes, key=lambda n: n.start):
                    if note.start >= primer.end:
                        total += max(note.start - sounded - longest[k], 0)
                    sounded = max(sounded, note.start + note.duration)
                total += max(decoded.end_tick - sounded - longest[k], 0)
        return total

    assert overdue(6.0) < overdue(-np.inf)
    hand_made = np.array(tokenizer.header(tokenizer.prepare(read_midi(corpus_files("chorales")[2])))[:3] + [
        table["track_of"].tolist().index(0), int(np.flatnonzero(table["pitch_of"] == 60)[0]),
        int(np.flatnonzero(table["duration_steps"] == 12)[0]), int(np.flatnonzero(table["shift_steps"] == 18)[0]),
        int(np.flatnonzero(table["pitch_of"] == 62)[0]), int(np.flatnonzero(table["duration_steps"] == 6)[0]),
        int(np.flatnonzero(table["shift_steps"] == 12)[0])])
    longest, ends = sampling._rests(hand_made, table, 2)
    assert longest.tolist() == [6.0, np.inf] and ends.tolist() == [-6, 0]  # a 6-step rest inside, 6 at the end


def test_each_part_s_pace_is_its_onsets_per_quarter_in_its_last_bars_that_play(bundle):
    """Quarter notes in bars 1-4, eighths in 5-8, then an outro of 4 bars where only a pad plays: the lead is held
    to its eighths (2 onsets per quarter), neither the outro's silence nor the whole song's average, and is drawn
    in; the pad to its whole notes, strings heard only in bars 1-2 to their half notes, both only held back."""
    from melody.continuation import paces

    lead = tuple(Note(480 * q, 72, 480, 90) for q in range(16)) + tuple(Note(7680 + 240 * e, 74, 240, 90)
                                                                         for e in range(32))
    pad = tuple(Note(1920 * b, 60, 1920, 60) for b in range(12))
    strings = tuple(Note(960 * h, 67, 960, 60) for h in range(4))
    seed = Score(480, (Instrument(0, name="Lead", notes=lead), Instrument(48, name="Strings", notes=strings),
                       Instrument(52, name="Pad", notes=pad)), time_signatures=(TimeSignature(0, 4, 4),))
    primer = make_primer(seed, bundle.tokenizer)
    names = [seed.instruments[k].name for k in primer.sources]
    pace, held_only = paces(primer)
    assert dict(zip(names, pace)) == pytest.approx({"Lead": 2.0, "Strings": 0.5, "Pad": 0.25})
    assert dict(zip(names, held_only)) == {"Lead": False, "Strings": True, "Pad": True}


def test_a_pace_counts_the_primer_so_parts_neither_wait_at_the_start_nor_catch_up_on_a_rest(bundle):
    """As the new music starts, a part that played at its pace up to the end of the primer is on its pace (its
    first new note does not put it ahead and hold it back); one that rested through the primer's last two bars
    is behind by ``PACE_ENTRY`` nats, drawn back in but not by the whole rest, and one far faster than its pace
    ahead by as much; a new part starts level."""
    from melody.continuation import paces
    from melody.sampler import PACE_ENTRY, _Playing

    steady = tuple(Note(480 * q, 72 + q % 3, 480, 90) for q in range(32))
    resting = tuple(Note(480 * q, 64 + q % 2, 480, 90) for q in range(24))
    seed = Score(480, (Instrument(0, name="Lead", notes=steady), Instrument(48, name="Strings", notes=resting),
                       Instrument(52, name="Alto")), time_signatures=(TimeSignature(0, 4, 4),))
    primer = make_primer(seed, bundle.tokenizer, new_parts=[2])
    pace, held_only = paces(primer)
    assert list(pace[:2]) == pytest.approx([1.0, 1.0])
    drawn = np.zeros(len(pace), bool)  # every part drawn in, so that its lag shows both ways
    playing = _Playing(None, 1, bundle.tokenizer.token_table(), primer.tokens, pace=pace, held_only=drawn)
    lag = dict(zip([seed.instruments[k].name for k in primer.sources], playing._lag(np.zeros(1))[0]))
    assert abs(lag["Lead"]) < PACE_ENTRY / 2 and lag["Strings"] == pytest.approx(PACE_ENTRY) and lag["Alto"] == 0
    pace[0] = 0.1
    playing = _Playing(None, 1, bundle.tokenizer.token_table(), primer.tokens, pace=pace, held_only=drawn)
    assert playing._lag(np.zeros(1))[0, 0] == pytest.approx(-PACE_ENTRY)


def test_a_new_part_is_drawn_in_to_move_a_little_more_often_than_the_melody(bundle):
    """A melody of quarter notes (1 onset per quarter) with two new parts added under it: each new part is drawn
    in (not only held back) to ``NEW_PART_PACE`` onsets per quarter, Bach's lower voices against his soprano."""
    from melody.continuation import NEW_PART_PACE, paces

    tune = Instrument(0, name="Tune", notes=tuple(Note(480 * q, 72 + q % 3, 480, 90) for q in range(16)))
    seed = Score(480, (tune, Instrument(52, name="Alto"), Instrument(52, name="Bass")),
                 time_signatures=(TimeSignature(0, 4, 4),))
    pace, held_only = paces(make_primer(seed, bundle.tokenizer, new_parts=[1, 2]))
    assert list(pace) == pytest.approx([1.0, NEW_PART_PACE, NEW_PART_PACE]) and NEW_PART_PACE > 1
    assert list(held_only) == [False, False, False]


def primed_chorale(bundle):
    """The tiny model's sampler primed with a chorale: (sampler, tokenizer, token table, primer, primed, the tokens
    a row may draw)."""
    _, sampler = stepper_and_sampler(bundle)
    tokenizer = bundle.tokenizer
    primer = make_primer(read_midi(corpus_files("chorales")[2]), tokenizer)
    return (sampler, tokenizer, tokenizer.token_table(), primer, sampler.prime(primer.tokens),
            tokenizer.sampling_mask(len(tokenizer.tracks(primer.tokens))))


def test_a_held_part_is_drawn_in_only_a_little(bundle, monkeypatch):
    """Eight rows of a chorale's alto (track 1) held to a fast pace: drawn in fully, it plays more notes than free;
    as a part other than the lead (``held_only``), drawn in by at most ``PACE_HELD_LIMIT``, more than free and fewer
    than drawn in fully. With that limit 0 its lag never draws it in: each row's tokens are the free row's until
    the alto's first note (after it, that note puts it ahead of a pace that has only begun). Held back to a slow
    pace, it plays fewer notes than free."""
    from melody import sampler as sampling

    monkeypatch.setattr(sampling, "REST_PULL", -np.inf)  # the pace alone
    sampler, tokenizer, table, primer, primed, allowed = primed_chorale(bundle)

    def alto(pace=None, held_only=None):
        rows, _ = sampler.sample(primed, 8, allowed, 1200, 4, 4, pace=pace, held_only=held_only)
        onsets = [len({n.start for n in tokenizer.decode(np.concatenate([primer.tokens, row])).instruments[1].notes
                       if n.start >= primer.end}) for row in rows]
        return rows, sum(onsets)

    def first_alto_note(row):
        track = [t for t in table["track_of"][primer.tokens] if t >= 0][-1]
        for index, token in enumerate(row):
            track = table["track_of"][token] if table["track_of"][token] >= 0 else track
            if track == 1 and table["pitch_of"][token] >= 0:
                return index
        return len(row)

    free_rows, free = alto()
    fast, slow = [np.nan, 3.0], [np.nan, 0.05]
    assert 0 < sampling.PACE_HELD_LIMIT < sampling.PACE_LIMIT
    held, drawn = alto(fast, [False, True])[1], alto(fast, [False, False])[1]
    assert free < held < drawn, (free, held, drawn)
    monkeypatch.setattr(sampling, "PACE_HELD_LIMIT", 0.0)
    held_rows, _ = alto(fast, [False, True])
    for free_row, held_row in zip(free_rows, held_rows):
        until = first_alto_note(free_row) + 1
        assert np.array_equal(free_row[:until], held_row[:until])
    assert alto(slow, [False, True])[1] < free


def test_sampling_runs_on_the_cores_the_machine_has_spare_and_puts_the_threads_back(monkeypatch):
    """On a machine busy with something else (load average as high as its cores) the products run on one OpenBLAS
    thread, on an idle one on every core; afterwards the thread count is what it was. Where NumPy's BLAS is no
    OpenBLAS melody can reach, nothing is touched."""
    import os

    from melody import numpy_lstm

    before = numpy_lstm.blas_threads()
    if not before:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS")
    cores = os.cpu_count()
    for load, expected in ((float(cores), 1), (0.0, cores)):
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        assert numpy_lstm.spare_cores() == expected
        with numpy_lstm.spare_threads():
            assert numpy_lstm.blas_threads() == expected
        assert numpy_lstm.blas_threads() == before
    monkeypatch.setattr(numpy_lstm, "_openblas", lambda: None)
    assert numpy_lstm.blas_threads(1) == 0
    with numpy_lstm.spare_threads():
        pass


def test_an_ending_closes_every_part_on_the_tonic_chord_at_the_last_downbeat(bundle):
    """Eight 3-bar continuations of a chorale with --ending: at the last bar's downbeat all four parts sound, every
    note of the key's tonic triad, the lowest on the tonic; nothing written before is held into that bar, nothing
    new starts after the downbeat. Without --ending the tiny model closes so in none of them."""
    from melody.keys import parse_key

    seed = corpus_files("chorales")[2]
    key = make_primer(read_midi(seed), bundle.tokenizer).tokens[1]
    tonic, minor = parse_key(bundle.tokenizer.names([key])[0].split("_")[1])
    triad = {tonic, (tonic + 4) % 12, (tonic + 7) % 12} | ({(tonic + 3) % 12} if minor else set())

    def closes(made, start):
        downbeat = made.bar_lines(until=made.end_tick)[-1]
        if downbeat >= made.end_tick:
            downbeat = made.bar_lines(until=made.end_tick)[-2]
        sounding = [(n.pitch, k) for k, part in enumerate(made.instruments) for n in part.notes
                    if n.start <= downbeat < n.end]
        held_in = [n for part in made.instruments for n in part.notes if start <= n.start < downbeat < n.end]
        after = [n for part in made.instruments for n in part.notes if n.start > downbeat]
        return (len({k for _, k in sounding}) == 4 and all(p % 12 in triad for p, _ in sounding)
                and min(sounding)[0] % 12 == tonic and not held_in and not after)

    for ending, expected in ((True, 8), (False, 0)):
        made = generate(bundle, seed, config=GenerateConfig(bars=3, ending=ending, num_samples=8, random_seed=5),
                        write=False)
        start = read_midi(seed).end_tick
        assert sum(closes(score, start) for score in made.scores) == expected, ending


def test_the_summary_says_what_pace_each_part_was_held_to(bundle, tmp_path):
    """With a seed the summary gives, by track name, the pace each written part was held to (its seed part's,
    ``continuation.paces``) and the command prints them; a kept part is not held to one; with --density, or
    --no-pace, none is and the summary says so."""
    from melody.continuation import paces

    seed = corpus_files("chorales")[2]
    score = read_midi(seed)
    primer = make_primer(score, bundle.tokenizer)
    expected = {score.instruments[k].name: pace for k, pace in zip(primer.sources, paces(primer)[0])}
    held = generate(bundle, seed, config=GenerateConfig(bars=2, random_seed=1), write=False).summary["paces"]
    assert held == pytest.approx(expected, abs=1e-3) and len(held) == 4 and min(held.values()) > 0
    kept = generate(bundle, seed, config=GenerateConfig(bars=2, random_seed=1, keep=("1",)), write=False)
    assert kept.summary["paces"] == pytest.approx({k: v for k, v in expected.items()
                                                   if k != score.instruments[0].name}, abs=1e-3)
    for config in (GenerateConfig(bars=2, density=2.0), GenerateConfig(bars=2, pace=False)):
        assert generate(bundle, seed, config=config, write=False).summary["paces"] == {}
    result = run_melody("generate", "--model", bundle.path, "--seed", seed, "--bars", 2, "--out", tmp_path / "x.mid")
    assert result.returncode == 0 and "Pace: " in result.stdout, result.stderr


def test_a_clash_strength_makes_parts_clash_less(bundle):
    """Eight 4-bar continuations of a chorale, every part written: with --clash-strength 3 the parts form seconds,
    sevenths and tritones for a smaller share of the time they sound together than with 0 (the model alone)."""
    seed = corpus_files("chorales")[2]
    original = read_midi(seed)

    def clash(strength):
        made = generate(bundle, seed, config=GenerateConfig(bars=4, num_samples=8, random_seed=2,
                                                            clash_strength=strength), write=False)
        return np.nanmean([continuation_fit(original, score, 4)["clash"] for score in made.scores])

    assert clash(3.0) < 0.8 * clash(0.0)


def test_a_part_hears_every_note_of_a_chord_another_part_holds(bundle):
    """A piano strikes C-E-G (G last) and holds it two bars under a lead's quarter notes: a bar on, the lead's D
    clashes with two of the chord's notes (C and E, not only the G struck last), its F with E and G, its F# with all
    three, its C with none; the piano hears the lead's C and not its own chord; after the chord, the lead hears
    nothing."""
    from melody.sampler import _Playing

    lead = tuple(Note(480 * q, 72, 480, 90) for q in range(12))
    chord = tuple(Note(0, pitch, 480 * 8, 90) for pitch in (60, 64, 67))
    seed = Score(480, (Instrument(0, name="Lead", notes=lead), Instrument(0, name="Piano", notes=chord)),
                 time_signatures=(TimeSignature(0, 4, 4),))
    tokenizer, table = bundle.tokenizer, bundle.tokenizer.token_table()
    tokens = tokenizer.encode(seed)
    start = tokenizer.header_length(tokens)
    playing = _Playing(None, 1, table, tokens[:start], hearing=True)
    steps, now = table["steps_per_quarter"], np.zeros(1, np.int64)
    for token in tokens[start:]:  # the stream up to the second bar
        if now[0] + table["shift_steps"][token] > 4 * steps:
            break
        now += table["shift_steps"][token]
        playing.played(np.array([token]), now)
    decoded = tokenizer.decode(tokens).instruments
    lead_track, piano_track = (next(k for k, part in enumerate(decoded) if len(part.notes) == count) for count in (12, 3))
    pitches = (62, 65, 66, 60)

    def heard(track: int, quarter: int) -> list[float]:
        playing.track = np.array([track])
        bias = playing.clash_bias(np.array([quarter * steps]))[0]
        return [bias[(table["pitch_of"] == p)].max() for p in pitches]

    assert heard(lead_track, 4) == [2, 2, 3, 0]
    assert heard(piano_track, 4) == [1, 0, 1, 0]  # the lead's C only
    assert heard(lead_track, 8) == [0, 0, 0, 0]


def test_rows_leave_their_silent_parts_to_the_loop_and_their_clash_rule_hears_it(bundle):
    """Eight rows of a chorale with a loop sounding C, E and G under them all the time, and the bass left to it:
    no row writes a bass note, and at a clash strength of 20 nats the written notes keep to the loop's pitch
    classes (every other pitch class forms a second, seventh or tritone with one of them), where without the
    loop they do not."""
    from melody.ensemble import CLASHING

    sampler, tokenizer, table, primer, primed, allowed = primed_chorale(bundle)
    triad = {0, 4, 7}
    assert all(any(abs(pc - other) % 12 in CLASHING for other in triad) for pc in set(range(12)) - triad)
    sounding = np.zeros((8, 4 * 4 * table["steps_per_quarter"] + 1, 12), np.int64)
    sounding[:, :, sorted(triad)] = 1
    bass = primer.sources.index(3)

    def notes(loops):
        rows, _ = sampler.sample(primed, 8, allowed, 1200, 4, 5, clash=20.0, loops=loops)
        decoded = [tokenizer.decode(np.concatenate([primer.tokens, row])).instruments for row in rows]
        return [(track, note.pitch % 12) for parts in decoded for track, part in enumerate(parts)
                for note in part.notes if note.start >= primer.end]

    heard = notes((sounding, [[bass]] * 8))
    assert heard and not [pc for track, pc in heard if track == bass]
    assert np.mean([pc in triad for _, pc in heard]) > 0.97
    assert np.mean([pc in triad for _, pc in notes(None)]) < 0.8


def test_a_sample_whose_part_the_model_left_silent_is_written_again_around_its_loop(monkeypatch):
    """Eight samples of a chorale from the shipped model, parts other than the lead never drawn back in when they
    fall behind or rest long (``PACE_HELD_LIMIT`` 0, no ``REST_PULL``; drawn in a little, as shipped, no part of
    this chorale falls silent in 480 samples): in one the model leaves the bass silent. The bass loops its last bars there, and that sample is
    written again with the bass left to its loop (the summary counts it and times the second take)."""
    from melody import continuation, sampler

    monkeypatch.setattr(sampler, "PACE_HELD_LIMIT", 0.0)
    monkeypatch.setattr(sampler, "REST_PULL", -np.inf)
    monkeypatch.setattr(continuation, "STARVED", 0.0)  # only a part left silent, not one all but silent
    seed_file = corpus_files("chorales")[1]
    made = generate(None, seed_file, config=GenerateConfig(bars=4, num_samples=8, random_seed=7), write=False)
    assert made.summary["tracks"]["looped_in"] == {"Bass": 1} and made.summary["wall_seconds"]["second take"] > 0
    seed = read_midi(seed_file)
    bass = [part.name for part in seed.instruments].index("Bass")
    looping = [score for score, (start, end) in zip(made.scores, made.written)
               if [n for n in score.instruments[bass].notes if start <= n.start < end]
               and len(score.instruments[bass].notes) > len(seed.instruments[bass].notes)]
    assert len(looping) == 8  # every sample's bass sounds in the new bars: written in seven, looped in one


def test_the_summary_says_which_samples_looped_a_track_the_model_wrote_in_others():
    """Four samples: the tenor written in three and left silent (so looped) in one; the bass looped in all. The
    summary's roles say "written" for the tenor and count the sample that looped it; the bass is "looped"."""
    from melody.continuation import Arranged
    from melody.generate import _track_roles

    def sample(written, looped):
        return Arranged(Score(480), 0, {"kept": [], "written": written, "added": [], "looped": looped, "silent": []})

    roles = _track_roles([sample(["Soprano", "Tenor"], ["Bass"])] * 3 + [sample(["Soprano"], ["Tenor", "Bass"])],
                         None, [0], None, None)
    assert (roles["written"], roles["looped"], roles["looped_in"]) == (["Soprano", "Tenor"], ["Bass"], {"Tenor": 1})


def _doubling_seed(doubled_notes: int) -> Score:
    """Eight bars of 4/4: a lead in quarter notes, two C5's then two D5's by turns, and a piano in half notes under
    it, on the lead's pitch class an octave down for the first ``doubled_notes`` half notes, a third lower after."""
    lead = tuple(Note(480 * q, 72 + 2 * (q // 2 % 2), 480, 90) for q in range(32))
    piano = tuple(Note(960 * h, (60 if h < doubled_notes else 57) + 2 * (h % 2), 960, 90) for h in range(16))
    return Score(480, (Instrument(0, name="Lead", notes=lead), Instrument(0, name="Piano", notes=piano)),
                 time_signatures=(TimeSignature(0, 4, 4),))


def test_the_share_of_kept_notes_another_part_doubles_is_read_from_the_primer(bundle):
    """The piano doubles the lead under its first 8 half notes: 16 of the lead's 32 quarter notes sound over their
    own pitch class."""
    from melody.sampler import _doubled

    tokenizer, table = bundle.tokenizer, bundle.tokenizer.token_table()
    tokens = tokenizer.encode(_doubling_seed(8))
    decoded = tokenizer.decode(tokens).instruments
    lead_track = next(k for k, part in enumerate(decoded) if len(part.notes) == 32)
    kept = np.zeros(int(table["track_of"].max()) + 2, bool)
    kept[lead_track] = True
    pitched = np.ones(len(kept), bool)
    assert _doubled(tokens, table, kept, pitched) == 16 / 32
    assert _doubled(tokenizer.encode(_doubling_seed(0)), table, kept, pitched) == 0
    assert np.isnan(_doubled(tokens[:tokenizer.header_length(tokens)], table, kept, pitched))  # no notes yet


def test_parts_written_under_a_kept_lead_double_it_as_often_as_the_seed_taught(bundle, tmp_path, monkeypatch):
    """A seed whose piano doubles its lead all the time, the lead kept and the piano written again for 4 bars: with
    the pull toward the kept part's pitch classes (``CARRY``) more of the lead's notes sound over their own pitch
    class than with none. A seed whose piano never doubles its lead gets no pull: the same notes either way."""
    from melody import sampler as sampling
    from melody.ensemble import on_others

    def written(doubled_notes: int):
        seed_path = tmp_path / f"seed{doubled_notes}.mid"
        write_midi(_doubling_seed(doubled_notes), seed_path, force=True)
        made = generate(bundle, seed_path, config=GenerateConfig(bars=4, from_bar=5, keep=("Lead",), num_samples=8,
                                                                 random_seed=3), write=False)
        doubled = float(np.nanmean([on_others(score, 0, 480 * 16, 480 * 32) for score in made.scores]))
        return doubled, [score.instruments for score in made.scores]

    (pulled, _), (_, never) = written(16), written(0)
    monkeypatch.setattr(sampling, "CARRY", 0.0)
    (unpulled, _), (_, never_unpulled) = written(16), written(0)
    assert pulled > unpulled + 0.1, (pulled, unpulled)
    assert never == never_unpulled
