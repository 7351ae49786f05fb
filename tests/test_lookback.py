"""The lookback: what the piece did k bars ago, the same in Keras (training) and NumPy (sampling), and a
mixture that really brings bars back."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import corpus_files
from melody.bundle import read_manifest
from melody.cli import cli
from melody.cell import Lookback, Repeat
from melody.generate import GenerateConfig, generate, numpy_network
from melody.metrics import distinct_bar_ratio
from melody.model import ModelConfig, build_model
from melody.numpy_lstm import empty_history, remember

BAR, OTHER_BAR = 10, 11  # two bar-line ids of a made-up vocabulary of 20 tokens
# Bar 0: 1 2 3 | bar 1: 1 2 4 5 | bar 2: 1 2 3 | bar 3 (another meter): 1 2
SEQUENCE = [7, BAR, 1, 2, 3, BAR, 1, 2, 4, 5, BAR, 1, 2, 3, OTHER_BAR, 1, 2]
# Written out by hand, for distances 1 and 2: does each token equal the token at its place 1 / 2 bars ago,
# and what came next at that place (-1: nothing, e.g. that bar had ended or is not there)?
MATCHED = [[0, 0]] * 5 + [[1, 0], [1, 0], [1, 0], [0, 0], [0, 0],   # bar 1 starts as bar 0, then 4 5
                          [1, 1], [1, 1], [1, 1], [0, 1],           # bar 2: 1 2 as both, its 3 as bar 0's
                          [0, 0], [1, 1], [1, 1]]                   # another bar line, then 1 2 again
AHEAD = [[-1, -1]] * 5 + [[1, -1], [2, -1], [3, -1], [BAR, -1], [-1, -1],
                          [1, 1], [2, 2], [4, 3], [5, BAR],
                          [1, 1], [2, 2], [3, 4]]


def test_hand_written_lookback_in_keras_and_numpy():
    """Token places are aligned from each bar line; a bar of another meter still aligns (its line differs,
    so it does not match); a shorter bar k ago leaves nothing ahead."""
    matched, ahead = Lookback([BAR, OTHER_BAR], [1, 2])(np.array([SEQUENCE], "int32"))
    np.testing.assert_array_equal(matched.numpy()[0], MATCHED)
    np.testing.assert_array_equal(ahead.numpy()[0], AHEAD)
    is_bar = np.isin(np.arange(20), [BAR, OTHER_BAR])
    history = empty_history(2, capacity=4)  # grows while it remembers
    for place, token in enumerate(SEQUENCE):
        history, matched_now, ahead_now = remember(history, np.array([token]), is_bar, (1, 2))
        np.testing.assert_array_equal(matched_now[0], MATCHED[place], err_msg=f"token {place}")
        np.testing.assert_array_equal(ahead_now[0], AHEAD[place], err_msg=f"token {place}")


def test_repeat_mixes_a_real_distribution():
    """p(y) = (exp(l_y) + sum of exp(s_k) over the k whose ahead_k is y) / total, two distances on one token."""
    rng = np.random.default_rng(0)
    h, logits = rng.normal(size=(1, 3, 4)).astype("float32"), rng.normal(size=(1, 3, 6)).astype("float32")
    ahead = np.array([[[2, -1], [5, 5], [-1, -1]]], "int32")
    layer = Repeat(2)
    mixed = layer(h, logits, ahead).numpy()[0]
    scores = h[0] @ layer.kernel.numpy() + layer.bias.numpy()
    for t in range(3):
        weights = np.exp(logits[0, t]).astype("float64")
        for k in range(2):
            if ahead[0, t, k] >= 0:
                weights[ahead[0, t, k]] += np.exp(scores[t, k])
        expected = weights / weights.sum()
        got = np.exp(mixed[t] - mixed[t].max())
        np.testing.assert_allclose(got / got.sum(), expected, rtol=1e-5, err_msg=f"time {t}")
    np.testing.assert_array_equal(mixed[2], logits[0, 2])  # nothing ahead: the plain logits


def test_the_lookback_layers_save_and_load(tmp_path):
    model = build_model(ModelConfig(units=8, layers=1, embedding=4, dropout=0.0, ahead=False), 20,
                        bar_tokens=[BAR, OTHER_BAR])
    tokens = np.array([SEQUENCE], "int32")
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again(tokens).numpy(), model(tokens).numpy())


def test_lookback_settings_are_checked():
    with pytest.raises(ValueError, match="lookback"):
        ModelConfig(lookback=(0,))
    with pytest.raises(ValueError, match="lookback"):
        ModelConfig(lookback=(2, 2))
    assert ModelConfig(lookback=[1, 2]).lookback == (1, 2)
    with pytest.raises(ValueError, match="bar tokens"):
        Lookback([], [1])


def test_a_network_that_repeats_plays_the_bar_again(bundle, tmp_path):
    """Through the real sampler: the tiny lookback model with its "repeat 1 bar ago" score pushed up writes
    a continuation whose bars are copies of one bar; the same model left alone does not."""
    seed = corpus_files("folk")[3]
    network = numpy_network(bundle)
    assert bundle.model_config.lookback == (1, 2, 4, 8)
    alone = generate(bundle, seed=seed, write=False, network=network,
                     config=GenerateConfig(bars=8, random_seed=2, continuation_only=True))
    network.repeat = (network.repeat[0], network.repeat[1] + np.array([40.0, 0, 0, 0], np.float32))
    repeating = generate(bundle, seed=seed, write=False, network=network,
                         config=GenerateConfig(bars=8, random_seed=2, continuation_only=True))
    assert distinct_bar_ratio(alone.scores[0]) > 0.5
    assert distinct_bar_ratio(repeating.scores[0]) <= 2 / 7


def test_a_folder_from_before_the_lookback_holds_a_plain_lstm(melody_bundle, tmp_path):
    """config.json written before the lookback existed has no "lookback": it is read as the plain LSTM and
    generates as before."""
    folder = tmp_path / "older"
    shutil.copytree(melody_bundle.path, folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["model"].pop("lookback") == []
    (folder / "config.json").write_text(json.dumps(config))
    manifest = read_manifest(folder)
    assert manifest.model_config.lookback == ()
    made = generate(manifest, seed=corpus_files("chorales")[40], write=False,
                    config=GenerateConfig(bars=4, random_seed=1))
    again = generate(melody_bundle, seed=corpus_files("chorales")[40], write=False,
                     config=GenerateConfig(bars=4, random_seed=1))
    assert made.scores[0] == again.scores[0]


def test_lookback_on_the_command_line():
    """--lookback 1,2,4 or none (the plain LSTM); anything else is one Error: line, exit 2."""
    from melody.model import parse_bar_distances

    assert parse_bar_distances("1,2,4") == (1, 2, 4) and parse_bar_distances("none") == ()
    result = CliRunner().invoke(cli, ["train", "corpora/folk", "--out", "never", "--lookback", "1,x"])
    assert result.exit_code == 2 and "1,x" in result.output
    result = CliRunner().invoke(cli, ["train", "corpora/folk", "--out", "never", "--lookback", "0"])
    assert result.exit_code == 2 and "lookback must be" in result.output


def test_phrase_returns_bring_back_the_bars_four_and_eight_before(bundle):
    """``--phrase-returns`` raises the model's score for repeating the bar 4 and 8 bars back, not 1 or 2: at
    its top, 10 nats, each new bar of the tiny lookback model's continuation is the one 4 bars before it (so at most 4
    of 8 are distinct), and no new bar is the bar just before it; at 0 the same model does not repeat its first four."""
    from melody.sampler import SamplingConfig

    seed, network = corpus_files("folk")[3], numpy_network(bundle)

    def continuation(returns):
        config = GenerateConfig(bars=8, random_seed=2, continuation_only=True,
                                sampling=SamplingConfig(phrase_returns=returns))
        return generate(bundle, seed=seed, write=False, network=network, config=config).scores[0]

    def bars(score):
        lines = score.bar_lines(until=score.end_tick) + [score.end_tick]
        return [tuple((n.start - left, n.pitch) for n in score.notes if left <= n.start < right)
                for left, right in zip(lines, lines[1:])]

    returning = bars(continuation(10.0))
    assert len(returning) == 8 and returning[4:] == returning[:4]
    assert all(bar != before for bar, before in zip(returning[1:], returning))
    plain = bars(continuation(0.0))
    assert len(plain) == 8 and plain[4:] != plain[:4]
