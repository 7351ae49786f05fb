"""Generation: stateful sampling is exact and reproducible, and every output is a valid MIDI file."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import _tiny_bundle, corpus_files, note, smf, track
from melody.bundle import load_bundle, load_corpus
from melody.errors import MelodyError, OutputExistsError
from melody.continuation import make_primer
from melody.generate import generate
from melody.model import LSTMStepper
from melody.sampler import Sampler, SamplingConfig
from melody.midi_read import read_midi
from melody.midi_write import validate_midi, write_midi
from melody.score import Instrument, Note, Score, TimeSignature

def stepper_and_sampler(bundle):
    stepper = LSTMStepper(bundle.model)
    return stepper, Sampler(stepper, bundle.tokenizer.is_bar(np.arange(len(bundle.tokenizer))))


def primer_of(bundle, path=None):
    return make_primer(read_midi(path or corpus_files("folk")[0]), bundle.tokenizer).tokens[None]


def test_step_by_step_logits_equal_full_sequence_logits(bundle):
    stepper, _ = stepper_and_sampler(bundle)
    tokens = bundle.tokenizer.encode(read_midi(corpus_files("folk")[0]))[:40].astype("int32")[None]
    full = bundle.model(tokens).numpy()[0]
    logits, state = stepper.prime(tokens[:, :1])
    np.testing.assert_allclose(logits.numpy()[0], full[0], atol=1e-4)
    for position in range(1, tokens.shape[1]):
        logits, state = stepper.step(tokens[:, position], state)
        np.testing.assert_allclose(logits.numpy()[0], full[position], atol=1e-4, err_msg=f"token {position}")


def test_top_k_1_is_greedy_within_the_allowed_tokens(bundle):
    _, sampler = stepper_and_sampler(bundle)
    primer = primer_of(bundle)
    allowed = bundle.tokenizer.sampling_mask(1)
    sampled = sampler.sample(primer, allowed, 30, 100, random_seed=5, config=SamplingConfig(top_k=1))[0]
    sequence = list(primer[0])
    for _ in range(30):
        logits = bundle.model(np.array([sequence], dtype="int32")).numpy()[0, -1]
        logits[~allowed] = -np.inf
        sequence.append(int(np.argmax(logits)))
    assert list(sampled) == sequence[primer.shape[1]:]
    other_seed = sampler.sample(primer, allowed, 30, 100, random_seed=6, config=SamplingConfig(top_k=1))[0]
    assert list(other_seed) == list(sampled)


def test_top_p_keeps_only_the_nucleus(bundle):
    _, sampler = stepper_and_sampler(bundle)
    primer = np.tile(primer_of(bundle), (64, 1))
    allowed = bundle.tokenizer.sampling_mask(1)
    first = [row[0] for row in sampler.sample(primer, allowed, 1, 100, random_seed=1, config=SamplingConfig(top_p=0.3))]
    logits = bundle.model(primer[:1]).numpy()[0, -1]
    logits[~allowed] = -np.inf
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)
    nucleus = set(order[:np.searchsorted(np.cumsum(probabilities[order]), 0.3) + 1])
    assert set(first) <= nucleus


def test_sampling_stops_before_the_bar_line_after_the_last_bar(bundle):
    _, sampler = stepper_and_sampler(bundle)
    tokenizer = bundle.tokenizer
    rows = sampler.sample(np.tile(primer_of(bundle), (8, 1)), tokenizer.sampling_mask(1), 4000, 3, random_seed=2)
    for row in rows:
        assert tokenizer.is_bar(row).sum() == 3  # bars 2 and 3 opened; the one opening bar 4 is not kept
        assert not set(tokenizer.names(row)) & {"Pad", "Begin", "End", "Track_1", "Program_0", "Key_C"}


def test_same_random_seed_same_bytes_and_samples_differ(bundle, tmp_path):
    seed = corpus_files("folk")[3]
    one = generate(bundle, seed, tmp_path / "a.mid", bars=4, num_samples=3, random_seed=11)
    two = generate(bundle, seed, tmp_path / "b.mid", bars=4, num_samples=3, random_seed=11)
    assert [p.name for p in one.files] == ["a-1.mid", "a-2.mid", "a-3.mid"]
    for a, b in zip(one.files, two.files):
        assert a.read_bytes() == b.read_bytes()
    assert len({p.read_bytes() for p in one.files}) == 3
    for path in one.files:
        assert validate_midi(path) == []


def test_output_keeps_the_seed_then_continues(bundle, tmp_path):
    seed = corpus_files("chorales")[5]
    result = generate(bundle, seed, tmp_path / "out.mid", bars=4, random_seed=3)
    before, after = read_midi(seed), read_midi(result.files[0])
    assert after.tempos == before.tempos and after.time_signatures == before.time_signatures
    assert after.key_signatures == before.key_signatures
    assert [i.name for i in after.instruments][:4] == [i.name for i in before.instruments]
    assert len(after.notes) > len(before.notes) and after.end_tick > before.end_tick
    assert result.summary["notes"] == len(after.notes) - len(before.notes)
    only = generate(bundle, seed, tmp_path / "only.mid", bars=4, random_seed=3, continuation_only=True)
    new = read_midi(only.files[0])
    assert len(new.notes) == result.summary["notes"]
    assert min(n.start for n in new.notes) < 4 * 480 * 2  # starts within its first bar or two


def test_from_scratch_a_training_piece_opens_and_its_meter_is_the_files(bundle, tmp_path):
    result = generate(bundle, None, tmp_path / "x.mid", bars=3, random_seed=2)
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
            result = generate(model, seed, tmp_path / f"{model.melody_only}-{index}.mid", bars=2, random_seed=1)
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
        alone = read_midi(generate(piano, None, tmp_path / f"a{random_seed}.mid", bars=4,
                                   random_seed=random_seed).files[0])
        assert {(i.program, i.is_drum) for i in alone.instruments} == {(0, False)}
    seed = read_midi(pop_song)
    result = generate(piano, pop_song, tmp_path / "pop.mid", bars=2, random_seed=1)
    after = read_midi(result.files[0])
    assert [(i.name, i.program, i.is_drum) for i in after.instruments] == \
        [(i.name, i.program, i.is_drum) for i in seed.instruments]
    assert result.summary["notes"] > 0


def test_each_new_note_joins_the_track_it_was_sampled_for(bundle, tmp_path):
    """SATB: four tracks with one program. New notes land on several of them, and no track is added."""
    seed_path = corpus_files("chorales")[7]
    seed = read_midi(seed_path)
    result = generate(bundle, seed_path, tmp_path / "satb.mid", bars=4, random_seed=5)
    after = read_midi(result.files[0])
    assert [(i.name, i.program, i.channel) for i in after.instruments] == \
        [(i.name, i.program, i.channel) for i in seed.instruments]
    grown = [len(a.notes) - len(b.notes) for a, b in zip(after.instruments, seed.instruments)]
    assert sum(grown) == result.summary["notes"] and sum(count > 0 for count in grown) >= 2


def test_melody_model_continues_the_lead_line(melody_bundle, tmp_path):
    seed = corpus_files("chorales")[40]
    result = generate(melody_bundle, seed, tmp_path / "m.mid", bars=4, random_seed=4)
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
    result = generate(melody_bundle, tmp_path / "seed.mid", tmp_path / "out.mid", bars=2, random_seed=1)
    new = [n for n in read_midi(result.files[0]).notes if n not in set(read_midi(tmp_path / "seed.mid").notes)]
    assert new and min(n.start for n in new) >= 4 * 1920 - 120  # not before the piano's last bar ends
    assert result.continuation_starts[0] == min(n.start for n in new)


def test_bad_requests_write_nothing(bundle, tmp_path):
    drums = tmp_path / "drums.mid"
    drums.write_bytes(smf(track(note(9, 36, 100))))
    taken = tmp_path / "taken.mid"
    taken.write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        generate(bundle, corpus_files("folk")[0], taken)
    with pytest.raises(OutputExistsError):  # the second of three files exists: none is written
        (tmp_path / "s-2.mid").write_bytes(b"mine")
        generate(bundle, corpus_files("folk")[0], tmp_path / "s.mid", num_samples=3)
    assert not (tmp_path / "s-1.mid").exists() and taken.read_bytes() == b"mine"
    with pytest.raises(MelodyError, match="bars must be in 1..256"):
        generate(bundle, None, tmp_path / "z.mid", bars=0)
    with pytest.raises(MelodyError, match="bars must be in 1..256, got 100000"):  # refused, not silently cut
        generate(bundle, None, tmp_path / "z.mid", bars=100_000)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SamplingConfig(temperature=0)
    with pytest.raises(ValueError, match="top-p must be in"):
        SamplingConfig(top_p=1.5)
    with pytest.raises(ValueError, match="top-k must be at least 1"):
        SamplingConfig(top_k=0)


def test_default_model_ships_and_generates_from_the_command_line(tmp_path):
    import subprocess
    import sys

    from melody.generate import DEFAULT_MODEL

    shipped = load_bundle(DEFAULT_MODEL)
    assert shipped.melody_only and shipped.metrics["best_val_loss"] < shipped.metrics["unigram_val_nll"]
    out = tmp_path / "x.mid"
    result = subprocess.run([sys.executable, "-m", "melody", "generate", "--seed",
                             str(corpus_files("chorales")[0]), "--out", str(out), "--random-seed", "1"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and f"Wrote {out}" in result.stdout
    assert validate_midi(out) == []
