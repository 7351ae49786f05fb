"""What the network is told about the music ahead (melody.ahead), checked against a slow reading of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CORPORA
from melody import ahead
from melody.midi_read import read_midi
from melody.score import Instrument, Note, Score, TimeSignature
from melody.tokenizer import Tokenizer, TokenizerConfig

TOKENIZER = Tokenizer(TokenizerConfig())
TABLE = TOKENIZER.token_table()
QUARTER = TOKENIZER.config.steps_per_quarter


def features_of(tokens, kept, tell_ending):
    tracks = TOKENIZER.tracks(tokens)
    return ahead.piece_features(tokens, TABLE, TOKENIZER.header_length(tokens), [d for d, _ in tracks],
                                frozenset(kept), tell_ending)


def by_definition(tokens, kept, tell_ending) -> np.ndarray:
    """The module's table read literally, one token at a time."""
    header, drums = TOKENIZER.header_length(tokens), [d for d, _ in TOKENIZER.tracks(tokens)]
    names = TOKENIZER.names(tokens)
    time, track, events = 0, None, []  # (place, time, track, name)
    for place, name in enumerate(names):
        if place >= header:
            if name.startswith("TimeShift_"):
                time += int(name.split("_")[1])
            elif name.startswith("Track_"):
                track = int(name.split("_")[1])
        events.append((place, time, track, name))
    expected = np.zeros((len(tokens), ahead.WIDTH), np.float32)
    for place, now, _, _ in events[header:]:
        for later, when, track, name in events[place + 1:]:
            if name.startswith("Note_") and track in kept and not drums[track]:
                pitch_class = int(name.split("_")[1]) % 12
                if when - now < QUARTER:
                    expected[place, pitch_class] = 1
                elif when - now < 2 * QUARTER:
                    expected[place, 12 + pitch_class] = 1
        if kept:
            expected[place, 28] = 1
        bars_after = sum(name.startswith("Bar_") for _, _, _, name in events[place + 1:])
        if tell_ending and bars_after < 4:
            expected[place, 24 + bars_after] = 1
    return expected


@pytest.mark.parametrize("kept, tell_ending", [((0,), False), ((1, 3), True), ((), True), ((0, 1, 2), False)])
def test_features_of_a_real_chorale_follow_their_definition(kept, tell_ending):
    tokens = TOKENIZER.encode(read_midi(CORPORA / "chorales" / "bwv187.7.mid"))[:700]
    np.testing.assert_array_equal(features_of(tokens, kept, tell_ending), by_definition(tokens, kept, tell_ending))


def test_the_part_below_is_told_the_kept_melodys_next_notes_and_drums_tell_nothing():
    """A kept melody (C, E a quarter later, G two quarters later) over a bass and drums. On the bass's note at
    time 0: the melody's C is written before it (past), its E starts exactly a quarter on ('later'), its G two
    quarters on (beyond); the kept drum track adds no pitch class."""
    melody = Instrument(0, name="Melody", notes=[Note(0, 72, 480, 90), Note(480, 76, 480, 90), Note(960, 79, 480, 90)])
    bass = Instrument(33, name="Bass", notes=[Note(0, 36, 960, 90), Note(960, 43, 960, 90)])
    drums = Instrument(0, is_drum=True, name="Drums", notes=[Note(240 * q, 38, 120, 90) for q in range(8)])
    tokens = TOKENIZER.encode(Score(480, [melody, bass, drums], time_signatures=[TimeSignature(0, 4, 4)]))
    names = TOKENIZER.names(tokens)
    features = features_of(tokens, kept=(0, 2), tell_ending=False)
    bass_note = names.index("Note_36")
    assert np.flatnonzero(features[bass_note, ahead.SOON]).tolist() == []         # nothing kept within a quarter
    assert np.flatnonzero(features[bass_note, ahead.LATER]).tolist() == [76 % 12]  # E, a quarter on
    assert features[bass_note, ahead.KEPT] == 1
    assert not features[:TOKENIZER.header_length(tokens)].any()  # the header is told nothing
    np.testing.assert_array_equal(features, by_definition(tokens, (0, 2), False))


def test_the_kept_parts_own_tokens_are_given_and_everything_else_is_asked():
    """Melody kept over a bass: the melody's Track, Velocity, Note and Duration tokens are given (generation plays
    them in); the bass's, the bar lines, time shifts, header and End are asked of the network."""
    melody = Instrument(0, name="Melody", notes=[Note(0, 72, 480, 90), Note(480, 76, 480, 50)])
    bass = Instrument(33, name="Bass", notes=[Note(0, 36, 960, 70)])
    tokens = TOKENIZER.encode(Score(480, [melody, bass], time_signatures=[TimeSignature(0, 4, 4)]))
    header = TOKENIZER.header_length(tokens)
    given = ahead.given(tokens, TABLE, header, frozenset({0}))
    names = TOKENIZER.names(tokens)
    track = None
    for name, is_given in zip(names[header:], given[header:]):
        track = int(name.split("_")[1]) if name.startswith("Track_") else track
        moves = name.startswith(("Bar_", "TimeShift_")) or name == "End"
        assert is_given == (track == 0 and not moves), name
    assert not given[:header].any() and given.sum() == 2 + 2 * 3  # Track_0 twice, two velocities, notes, durations
    assert not ahead.given(tokens, TABLE, header, frozenset()).any()


def test_training_keeps_some_parts_of_multi_part_pieces_and_none_of_a_melody():
    rng = np.random.default_rng(0)
    four = [(False, 52)] * 4
    draws = [ahead.choose(rng, four) for _ in range(2000)]
    kept_sizes = [len(kept) for kept, _ in draws]
    assert 0.45 < np.mean([size == 0 for size in kept_sizes]) < 0.55
    assert max(kept_sizes) == 3 and min(size for size in kept_sizes if size) == 1  # never all, at least one
    # The lead alone: KEEP_LEAD of the windows that keep parts, and now and then by even odds.
    lead_alone = np.mean([kept == {0} for kept, _ in draws if kept])
    assert ahead.KEEP_LEAD < lead_alone < ahead.KEEP_LEAD + 0.1
    drums_first = [kept for kept, _ in (ahead.choose(rng, [(True, 0)] + four) for _ in range(1000)) if kept]
    assert np.mean([kept == {0} for kept in drums_first]) < 0.1  # a drum track is no lead to harmonize
    assert 0.45 < np.mean([told for _, told in draws]) < 0.55
    assert all(not kept for kept, _ in (ahead.choose(rng, [(False, 0)]) for _ in range(200)))


def test_transposing_turns_the_pitch_classes_and_nothing_else():
    features = np.zeros((2, ahead.WIDTH), np.float32)
    features[0, 11], features[1, 12 + 0], features[:, 25], features[:, 28] = 1, 1, 1, 1
    moved = ahead.transposed(features, 2)
    assert np.flatnonzero(moved[0]).tolist() == [1, 25, 28] and np.flatnonzero(moved[1]).tolist() == [14, 25, 28]
