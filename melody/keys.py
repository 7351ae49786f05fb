"""Keys: their names, their scales, and a key estimated from the notes when a file gives none.

A key is ``(tonic, minor)``: ``tonic`` a pitch class 0..11 (0 = C), ``minor`` a bool.
Names are the ones MIDI key-signature events use (mido's spelling: ``'Eb'``, ``'F#m'``).

``estimate_key`` is the Krumhansl-Schmuckler method: the duration-weighted
pitch-class histogram of the pitched notes is correlated with the
Krumhansl-Kessler major and minor profiles rotated to each of the 12 tonics;
the best of the 24 correlations names the key. Drums are left out. Empty
input gives C major.
"""

from __future__ import annotations

import numpy as np

MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")
_SPELLINGS = {"C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4, "E#": 5, "F": 5,
              "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11, "Cb": 11}

# Krumhansl & Kessler (1982): how well each pitch class fits a major / minor key on C.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor plus the raised seventh (harmonic minor's leading tone)


def key_name(tonic: int, minor: bool) -> str:
    """The MIDI key-signature name of a key: ``key_name(3, False) == 'Eb'``."""
    return (MINOR_NAMES if minor else MAJOR_NAMES)[tonic % 12]


def parse_key(name: str) -> tuple[int, bool]:
    """``(tonic, minor)`` of a key name (``'F#m'`` -> (6, True)); ValueError if it is not one."""
    minor = name.endswith("m")
    tonic = _SPELLINGS.get(name[:-1] if minor else name)
    if tonic is None:
        raise ValueError(f"not a key name: {name!r} (expected e.g. 'C', 'Bb', 'F#m')")
    return tonic, minor


def transposed_key_name(name: str, semitones: int) -> str:
    """The name of key ``name`` moved by ``semitones`` (an unknown name is returned as it is)."""
    try:
        tonic, minor = parse_key(name)
    except ValueError:
        return name
    return key_name(tonic + semitones, minor)


def scale(tonic: int, minor: bool) -> frozenset[int]:
    """The pitch classes of the key's scale (major; natural minor with the raised seventh)."""
    return frozenset((tonic + step) % 12 for step in (MINOR_SCALE if minor else MAJOR_SCALE))


def pitch_class_weights(notes) -> np.ndarray:
    """Total duration of each pitch class 0..11 over ``notes`` (objects with ``pitch`` and ``duration``)."""
    weights = np.zeros(12)
    for note in notes:
        weights[note.pitch % 12] += note.duration
    return weights


def estimate_key(notes) -> tuple[int, bool]:
    """The key whose Krumhansl-Kessler profile correlates best with the notes' pitch classes (see module)."""
    weights = pitch_class_weights(notes)
    if not weights.any():
        return 0, False
    best, best_key = -np.inf, (0, False)
    for minor, profile in ((False, MAJOR_PROFILE), (True, MINOR_PROFILE)):
        for tonic in range(12):
            correlation = np.corrcoef(weights, np.roll(profile, tonic))[0, 1]
            if np.isfinite(correlation) and correlation > best:
                best, best_key = correlation, (tonic, minor)
    return best_key


def in_key_share(notes, key: tuple[int, bool]) -> float:
    """Share of ``notes`` (by count) whose pitch class is in ``key``'s scale; nan without notes."""
    pitches = [note.pitch % 12 for note in notes]
    if not pitches:
        return float("nan")
    members = scale(*key)
    return sum(pitch in members for pitch in pitches) / len(pitches)
