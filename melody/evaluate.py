"""Measuring a model: how well it predicts music it never saw, and how its output compares with real music.

* ``evaluate_likelihood``: the model's negative log-likelihood per token (nats),
  perplexity and bits per note on held-out files (or on the validation files
  kept in the model folder), next to a unigram and a Kneser-Ney n-gram baseline
  fitted on the model's own training corpus (``corpus.npz`` in the model folder),
  the n-gram order chosen on its validation files. Bits per note (all bits over
  the number of notes) compares models whose tokenizations differ.
* ``compare_music``: ``metrics.music_metrics`` for a folder of generated files and
  a folder of reference files (mean and spread of each), and for every generated
  file the longest run of tokens it shares verbatim with the training corpus.
* ``fit_to_seeds``: for generated continuations and the seeds they continue, how
  each fits its seed (``metrics.continuation_fit``: bars written, key, density,
  tracks that play on, repetition) and the totals.

Files are read as the model sees them (``Tokenizer.prepare``): a model that
learned melodies only is measured on lead lines, as it trained.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melody.baselines import CopyIndex, fit_ngram, perplexity, token_counts, unigram_nll
from melody.bundle import Bundle, Manifest, load_bundle, load_corpus, read_manifest
from melody.errors import CorpusError, MelodyError
from melody.metrics import DENSITY_BARS, continuation_fit, music_metrics
from melody.midi_read import find_midi_files, read_midi
from melody.score import Score
from melody.tokenizer import Tokenizer

LOG2 = math.log(2)


@dataclass
class Files:
    """Readable files (path, score, tokens) and the skipped ones (path, reason)."""

    paths: list[Path]
    scores: list[Score]
    pieces: list[np.ndarray]
    skipped: list[tuple[str, str]]


def read_files(sources, tokenizer: Tokenizer, on_file=None) -> Files:
    """Every MIDI file under ``sources`` as the model sees it (``Tokenizer.prepare``); unreadable or empty
    files are skipped."""
    paths = find_midi_files([Path(source) for source in sources])
    if not paths:
        raise CorpusError(f"{', '.join(map(str, sources))}: no MIDI files (.mid .midi .kar .rmi) found")
    files = Files([], [], [], [])
    for path in paths:
        try:
            score = tokenizer.prepare(read_midi(path))
            if not score.notes:
                raise MelodyError(f"{path}: no notes")
            files.paths.append(path), files.scores.append(score), files.pieces.append(tokenizer.encode(score))
        except MelodyError as error:
            files.skipped.append((str(path), str(error)))
        if on_file:
            on_file()
    if not files.pieces:
        raise CorpusError(f"none of the {len(paths)} MIDI files could be read "
                          f"(first: {files.skipped[0][1]})")
    return files


GROUP_TOKENS = 1 << 20  # files are read, measured and let go a group of this many tokens at a time
PASS_TOKENS, WARM_UP = 16_384, 1_024  # a longer piece goes through the network in overlapping chunks


def token_groups(paths, tokenizer: Tokenizer, skipped: list, on_file=None):
    """The tokens of the files at ``paths`` (read as the model sees them), in lists of about GROUP_TOKENS
    tokens; unreadable or empty files are appended to ``skipped`` as (path, reason). Scores are not kept,
    so memory does not grow with the number of files."""
    group, size = [], 0
    for path in paths:
        try:
            score = tokenizer.prepare(read_midi(path))
            if not score.notes:
                raise MelodyError(f"{path}: no notes")
            group.append(tokenizer.encode(score))
            size += len(group[-1])
        except MelodyError as error:
            skipped.append((str(path), str(error)))
        if on_file:
            on_file()
        if size >= GROUP_TOKENS:
            yield group
            group, size = [], 0
    if group:
        yield group


def model_nll(model, pieces: list[np.ndarray], batch_tokens: int = 32768,
              scored: list[np.ndarray] | None = None) -> float:
    """Total negative log-likelihood (nats) of every piece's tokens after the first (``scored``: per piece, a
    bool per token saying which count; the first never does)."""
    losses = token_nll(model, pieces, batch_tokens)
    scored = scored or [np.ones(len(piece), bool) for piece in pieces]
    return float(sum(loss[counted].sum() for loss, counted in zip(losses, scored)))


def token_nll(model, pieces: list[np.ndarray], batch_tokens: int = 32768) -> list[np.ndarray]:
    """Per piece, each token's negative log-likelihood (nats) given the tokens before it; the first
    token's entry is 0 (nothing comes before it, it is not scored).

    Pieces of similar length are batched, padded at the end (an LSTM never looks ahead). A piece
    longer than PASS_TOKENS goes through in chunks, each starting WARM_UP tokens before the first
    token it scores, so that its state has warmed up (exact for shorter pieces, all real songs but the
    longest performances; memory stays bounded for any length).
    """
    batch_nll = _batch_nll(model)
    losses = [np.zeros(len(piece), np.float64) for piece in pieces]
    chunks = [(index, *chunk) for index, piece in enumerate(pieces) for chunk in _chunks(piece)]
    chunks.sort(key=lambda chunk: len(chunk[2]))
    batch = []
    for position, chunk in enumerate(chunks):
        batch.append(chunk)
        following = len(chunks[position + 1][2]) if position + 1 < len(chunks) else None
        if following is None or (len(batch) + 1) * following > batch_tokens:
            width = -(-len(chunk[2]) // 64) * 64 + 1  # few distinct shapes
            tokens = np.zeros((len(batch), width), dtype=np.int32)
            for row, (_, _, piece, _) in enumerate(batch):
                tokens[row, :len(piece)] = piece
            rows = batch_nll(tokens).numpy()
            for row, (index, start, piece, counted) in zip(rows, batch):
                where = np.flatnonzero(counted)
                losses[index][start + where] = row[where - 1]
            batch = []
    return losses


@functools.lru_cache(maxsize=2)
def _batch_nll(model):
    """Each token's NLL (batch, time - 1) in a padded batch under ``model``, traced once per model (all
    groups share it)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def batch_nll(tokens):
        from melody.model import plain_inputs

        logits = model(plain_inputs(model, tokens[:, :-1]), training=False)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(tokens[:, 1:], tf.cast(logits, tf.float32))

    return batch_nll


def _chunks(piece: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(where it starts, tokens, which of them it scores) covering ``piece``, whose first token is never
    scored: itself, or overlapping chunks, each token after the first scored in exactly one of them."""
    scores = np.arange(len(piece)) > 0
    if len(piece) <= PASS_TOKENS:
        return [(0, piece, scores)]
    step = PASS_TOKENS - WARM_UP
    chunks = []
    for first in range(1, len(piece), step):
        start = max(0, first - 1 - WARM_UP)
        counted = scores[start:first + step].copy()
        counted[:first - start] = False
        chunks.append((start, piece[start:first + step], counted))
    return chunks


def _row(total_nats: float, tokens: int, notes: int) -> dict:
    nll = total_nats / tokens
    return {"nll": round(nll, 4), "perplexity": round(perplexity(nll), 3),
            "bits_per_note": round(total_nats / LOG2 / notes, 3) if notes else None}


def evaluate_likelihood(bundle: Manifest, data=None, on_file=None) -> dict:
    """The model and both baselines on ``data`` (files/folders) or, if None, on the model's validation files.
    Files are measured a group at a time (``token_groups``); the network (TensorFlow) is loaded once the
    first readable group has been read, unless ``bundle`` holds it already.

    Returns {"nll", "perplexity", "bits_per_note", "tokens", "notes", "files", "skipped", "data",
    "baselines": {"unigram": {...}, "ngram": {..., "order", "orders"}}, "gain": {baseline: share}}.
    """
    tokenizer, skipped = bundle.tokenizer, []
    train, validation = load_corpus(bundle.path, len(tokenizer))
    if data:
        paths = find_midi_files([Path(source) for source in data])
        if not paths:
            raise CorpusError(f"{', '.join(map(str, data))}: no MIDI files (.mid .midi .kar .rmi) found")
        groups = token_groups(paths, tokenizer, skipped, on_file)
        first = next(groups, None)  # user input first: a folder of nothing readable fails before TensorFlow
        if first is None:
            raise CorpusError(f"none of the {len(paths)} MIDI files could be read (first: {skipped[0][1]})")
        groups = itertools.chain([first], groups)
    else:
        groups = iter([validation])
    counts = sum((token_counts(piece, len(tokenizer)) for piece in train), np.zeros(len(tokenizer), np.int64))
    ngram, orders = fit_ngram(train, validation, len(tokenizer))
    network = bundle.model if isinstance(bundle, Bundle) else load_bundle(bundle.path).model
    nats = {"model": 0.0, "unigram": 0.0, "ngram": 0.0}
    tokens = notes = files = 0
    for pieces in groups:
        targets = [piece[1:] for piece in pieces]
        predicted = sum(len(piece) for piece in targets)
        nats["model"] += model_nll(network, pieces)
        nats["unigram"] += unigram_nll(counts, np.concatenate(targets).astype(np.int64)) * predicted
        nats["ngram"] += ngram.nll(pieces)[0]
        tokens, files = tokens + predicted, files + len(pieces)
        notes += sum(int(tokenizer.is_note(piece).sum()) for piece in targets)
    if tokens == 0:
        raise CorpusError("the files hold no notes to predict")
    described = [str(source) for source in data] if data else "the model's validation files"
    result = {**_row(nats["model"], tokens, notes), "tokens": tokens, "notes": notes, "files": files,
              "skipped": [{"path": p, "reason": r} for p, r in skipped], "data": described}
    result["baselines"] = {
        "unigram": _row(nats["unigram"], tokens, notes),
        "ngram": {**_row(nats["ngram"], tokens, notes), "order": ngram.order,
                  "orders": {str(k): round(v, 4) for k, v in orders.items()}},
    }
    result["gain"] = {name: round(1 - result["nll"] / row["nll"], 4) for name, row in result["baselines"].items()}
    return result


def evaluate(model: str | os.PathLike | Manifest | None = None, data=None, generated=None, reference=None,
             on_file=None, seeds=None, bars: int | None = None) -> dict:
    """``melody evaluate``: the likelihood numbers on ``data`` (the model's validation files when neither
    ``data`` nor ``generated`` is given); with ``generated``, the music comparison under "music", and with
    ``seeds`` too, how each continuation fits its seed under "fit" (``fit_to_seeds``)."""
    from melody.generate import DEFAULT_MODEL

    for needs, name in ((reference, "reference"), (seeds, "seeds")):
        if needs is not None and generated is None:
            raise MelodyError(f"{name} needs generated (the files to compare with it)")
    for path in [*(data or []), generated, reference, seeds]:
        if path is not None and not Path(path).exists():
            raise MelodyError(f"{path}: no such file or folder")
    result = {"fit": fit_to_seeds(generated, seeds, bars, on_file)} if seeds is not None else {}
    if seeds is not None and not data and reference is None:
        return result  # the fit needs no model
    bundle = model if isinstance(model, Manifest) else read_manifest(model or DEFAULT_MODEL)  # no network yet
    result.update(evaluate_likelihood(bundle, data or None, on_file) if data or generated is None else {})
    if generated is not None:
        result["music"] = compare_music(generated, reference, bundle, on_file)
    return result


def fit_to_seeds(generated, seeds, bars: int | None = None, on_file=None) -> dict:
    """``metrics.continuation_fit`` of every generated file against its seed, and the totals.

    A generated file goes with the seed whose name (without its suffix) its own name starts with, the
    longest such: ``song.mid`` is the seed of ``song-continued.mid`` and ``song-2.mid``. ``bars``: the
    number asked when generating. Returns {"pairs": [{"generated", "seed", **fit}], "unpaired": [names],
    "bars_exact", "in_key_mean", "in_key_worst" (over tonal seeds: at least 85% of their last bars' notes
    in their key), "tonal_seeds", "density_within_1_5", "tracks_kept", "tracks_before", "bars_playing",
    "seed_bars_playing" (means over the pairs), "distinct_bar_ratio",
    and the mean of each ensemble measure over the pairs that have one: "clash_mean", "lead_on_others_mean",
    "copied_bars_mean", "parallels_mean"}.
    """
    seed_paths = {path.stem: path for path in find_midi_files([Path(seeds)])}
    result = {"pairs": [], "unpaired": []}
    for path in find_midi_files([Path(generated)]):
        stems = [stem for stem in seed_paths if path.stem.startswith(stem)]
        if not stems:
            result["unpaired"].append(path.name)
            continue
        seed = seed_paths[max(stems, key=len)]
        fit = continuation_fit(read_midi(seed), read_midi(path), bars)
        result["pairs"].append({"generated": str(path), "seed": str(seed), **fit})
        if on_file:
            on_file()
    if not result["pairs"]:
        raise CorpusError(f"no generated file in {generated} goes with a seed in {seeds} (a continuation's name "
                          "starts with its seed's, as melody generate names them)")
    return {**result, **_fit_totals(result["pairs"])}


def _fit_totals(pairs: list[dict]) -> dict:
    def finite(values):
        return [v for v in values if v is not None and not math.isnan(v)]

    tonal = finite(p["in_key"] for p in pairs if p["seed_in_key"] >= 0.85)
    densities = finite(p["density_ratio"] for p in pairs)
    distinct = finite(p["distinct_bar_ratio"] for p in pairs)
    exact = [p["bars_exact"] for p in pairs if p["bars_exact"] is not None]
    return {"bars_exact": sum(exact) / len(exact) if exact else None,
            "in_key_mean": float(np.mean(tonal)) if tonal else math.nan,
            "in_key_worst": min(tonal) if tonal else math.nan, "tonal_seeds": len(tonal),
            "density_within_1_5": float(np.mean([1 / 1.5 <= d <= 1.5 for d in densities])) if densities else math.nan,
            "tracks_kept": sum(p["tracks_kept"] for p in pairs), "tracks_before": sum(p["tracks_before"] for p in pairs),
            "bars_playing": _mean(finite(p["bars_playing"] for p in pairs)),
            "seed_bars_playing": _mean(finite(p["seed_bars_playing"] for p in pairs)),
            "distinct_bar_ratio": float(np.mean(distinct)) if distinct else math.nan,
            **{f"{name}_mean": _mean(finite(p[name] for p in pairs)) for name in ENSEMBLE}}


ENSEMBLE = ("clash", "lead_on_others", "copied_bars", "parallels")  # ``continuation_fit``'s ensemble measures


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def fit_table(result: dict) -> str:
    """``fit_to_seeds``'s result as a text table: one row per continuation, then the totals."""
    lines = [f"{'continuation':32} {'bars':>5} {'key':>4} {'seed in key':>11} {'in key':>7} {'density':>8} "
             f"{'tracks kept':>11} {'distinct':>8}"]
    for p in result["pairs"]:
        lines.append(f"{Path(p['generated']).name[:32]:32} {p['bars_written']:>5} {p['key']:>4} "
                     f"{p['seed_in_key']:>11.2f} {p['in_key']:>7.2f} {p['density_ratio']:>8.2f} "
                     f"{p['tracks_kept']:>5}/{p['tracks_before']:<5} {p['distinct_bar_ratio']:>8.2f}")
    exact = "-" if result["bars_exact"] is None else f"{result['bars_exact']:.0%}"
    lines += ["", f"bars as asked: {exact}; in key over {result['tonal_seeds']} tonal seeds: mean "
                  f"{result['in_key_mean']:.2f}, worst {result['in_key_worst']:.2f}; density within 1.5x of the "
                  f"seed lead's: {result['density_within_1_5']:.0%}; tracks still sounding after the seed: "
                  f"{result['tracks_kept']}/{result['tracks_before']}, sounding in {result['bars_playing']:.0%} of the "
                  f"new bars ({result['seed_bars_playing']:.0%} of the seed's last {DENSITY_BARS}); distinct bars: "
                  f"{result['distinct_bar_ratio']:.2f}"]
    lines.append(f"ensemble: clashing {result['clash_mean']:.2f} of the time parts sound together; the lead on "
                 f"another part's pitch class {result['lead_on_others_mean']:.2f}; accompaniment bars copied "
                 f"{result['copied_bars_mean']:.2f}; parallel fifths and octaves {result['parallels_mean']:.1f} per "
                 "100 moves of a pair")
    if result["unpaired"]:
        lines.append(f"without a seed (not measured): {', '.join(result['unpaired'][:10])}")
    return "\n".join(lines)


def describe(values: list[float]) -> dict:
    """Mean, standard deviation, 5th and 95th percentile of ``values``, ignoring nan (all nan if none)."""
    values = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if len(values) == 0:
        return {"mean": math.nan, "std": math.nan, "p5": math.nan, "p95": math.nan}
    return {"mean": float(values.mean()), "std": float(values.std()),
            "p5": float(np.percentile(values, 5)), "p95": float(np.percentile(values, 95))}


def compare_music(generated, reference=None, bundle: Manifest | None = None, on_file=None) -> dict:
    """Music metrics of the ``generated`` files (and ``reference`` files), and copying from the training corpus.

    Returns {"generated": {"files", "skipped", "metrics": {name: describe(...)}}, "reference": {...} or None,
    "within": {name: bool: the generated mean lies within the reference mean +- one standard deviation},
    "inside": {name: share of generated files whose value lies in the reference's 5th..95th percentile},
    "copies": [{"path", "tokens", "bars"}] (when ``bundle`` is given), "longest_copy_bars"}.
    """
    tokenizer = bundle.tokenizer if bundle else Tokenizer()
    sets = {"generated": read_files([generated], tokenizer, on_file)}
    if reference is not None:
        sets["reference"] = read_files([reference], tokenizer, on_file)
    result = {"reference": None}
    for name, files in sets.items():
        values = [music_metrics(score) for score in files.scores]
        result[name] = {"files": len(files.scores), "skipped": [{"path": p, "reason": r} for p, r in files.skipped],
                        "metrics": {key: describe([v[key] for v in values]) for key in values[0]},
                        "per_file": {str(path): v for path, v in zip(files.paths, values)}}
    if reference is not None:
        ours, theirs = result["generated"]["metrics"], result["reference"]["metrics"]
        result["within"] = {key: bool(abs(ours[key]["mean"] - theirs[key]["mean"]) <= theirs[key]["std"])
                            for key in ours}
        result["inside"] = {key: _share_inside([v[key] for v in result["generated"]["per_file"].values()],
                                               theirs[key]) for key in ours}
    if bundle is not None:
        index = CopyIndex(load_corpus(bundle.path, len(bundle.tokenizer))[0])
        result["copies"] = [_copy(index, path, piece, tokenizer) for path, piece in zip(sets["generated"].paths,
                                                                                          sets["generated"].pieces)]
        result["longest_copy_bars"] = max(copy["bars"] for copy in result["copies"])
    return result


def _share_inside(values: list[float], reference: dict) -> float:
    """Share of ``values`` in [p5, p95] of the reference (nan counts as inside only if the reference is all nan)."""
    if math.isnan(reference["p5"]):
        return float(np.mean([math.isnan(v) for v in values]))
    return float(np.mean([reference["p5"] <= v <= reference["p95"] for v in values]))


def _copy(index: CopyIndex, path: os.PathLike, piece: np.ndarray, tokenizer: Tokenizer) -> dict:
    """The longest verbatim run in tokens, and the complete bars in it (bar lines inside it, minus one)."""
    length, start = index.longest_copy(piece)
    bar_lines = int(tokenizer.is_bar(piece[start:start + length]).sum())
    return {"path": str(path), "tokens": length, "bars": max(bar_lines - 1, 0)}


# ----------------------------------------------------------------------------- tables for people

def likelihood_table(result: dict) -> str:
    """``evaluate_likelihood``'s result as a small text table."""
    ngram = result["baselines"]["ngram"]
    rows = [("melody LSTM", result, ""),
            (f"n-gram (Kneser-Ney, order {ngram['order']})", ngram, f"{result['gain']['ngram']:.1%}"),
            ("unigram", result["baselines"]["unigram"], f"{result['gain']['unigram']:.1%}")]
    data = result["data"] if isinstance(result["data"], str) else ", ".join(result["data"])
    lines = [f"{result['files']} files ({len(result['skipped'])} skipped) from {data}: "
             f"{result['tokens']:,} tokens, {result['notes']:,} notes",
             f"{'':32} {'nats/token':>10} {'perplexity':>10} {'bits/note':>9} {'LSTM gain':>9}"]
    for name, row, gain in rows:
        bits = "-" if row["bits_per_note"] is None else f"{row['bits_per_note']:.2f}"
        lines.append(f"{name:32} {row['nll']:>10.4f} {row['perplexity']:>10.2f} {bits:>9} {gain:>9}")
    lines.append(verdict(result))
    return "\n".join(lines)


def verdict(result: dict) -> str:
    """One line on whether the network has learned the music: does it beat its own n-gram baseline?"""
    gain = result["gain"]["ngram"]
    if gain > 0:
        return f"Verdict: the network predicts this music {gain:.1%} better than the n-gram baseline."
    return (f"Verdict: the network predicts this music {-gain:.1%} worse than a simple n-gram: it has not learned "
            "it; train longer, on more music, or fine-tune the shipped model (melody train DIR --init-from default).")


def music_table(result: dict) -> str:
    """``compare_music``'s result as a text table: mean +- spread per metric, then copying per file."""
    sets = [name for name in ("generated", "reference") if result.get(name)]
    headers = [f"{name} ({result[name]['files']} files)" for name in sets]
    lines = [f"{'metric':22}" + "".join(f"{header:>26}" for header in headers)]
    for key in result["generated"]["metrics"]:
        cells = "".join(f"{_spread(result[name]['metrics'][key]):>26}" for name in sets)
        mark = "" if "within" not in result else \
            f"   {'within' if result['within'][key] else 'OUTSIDE':8} {result['inside'][key]:>5.0%} inside p5..p95"
        lines.append(f"{key:22}{cells}{mark}")
    if "copies" in result:
        lines.append("")
        lines.append("Longest run copied verbatim from the training corpus:")
        for copy in result["copies"]:
            lines.append(f"  {copy['path']}: {copy['tokens']} tokens, {copy['bars']} complete bars")
    return "\n".join(lines)


def _spread(summary: dict) -> str:
    return "-" if math.isnan(summary["mean"]) else f"{summary['mean']:.3f} +- {summary['std']:.3f}"
