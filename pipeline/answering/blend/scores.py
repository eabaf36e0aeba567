"""Blended scores from weights over normalised sources, and the predictions they rank.

A blend is a weighted sum of the sources' per-question normalised logits (:func:`apply`), and
:func:`predictions` turns any ``(n, MAX_OPTIONS)`` scores into the submission's ``"A B C"``
strings, naming only options a question has (NaN columns are options it does not have).
Ties between options are broken by letter (A before B), as :mod:`pipeline.metrics` breaks them
when it scores an array, so a reported MAP@3 is the one the predictions score.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.answering.blend.normalisation import Normalisation, checked_sources, normalise
from pipeline.metrics import TOP
from pipeline.questions.question import LETTERS, MAX_OPTIONS


def equal_weights(per_source_logits: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Every source weighted alike (the baseline a fitted blend must beat on held-out data)."""
    names = list(per_source_logits)
    if not names:
        raise ValueError("no sources to weight")
    return dict.fromkeys(names, 1.0 / len(names))


def apply(weights: Mapping[str, float], per_source_logits: Mapping[str, np.ndarray],
          normalisation: Normalisation = "softmax") -> np.ndarray:
    """The ``(n, MAX_OPTIONS)`` weighted sum of the sources' per-question normalised logits.

    Every weighted source must be given and every given source weighted (a weight of 0 is
    fine): a silently dropped reader would change the blend unnoticed.
    """
    arrays = checked_sources(per_source_logits)
    if set(weights) != set(arrays):
        raise ValueError(f"weights for {sorted(weights)} but logits for {sorted(arrays)}")
    if any(w < 0 or not np.isfinite(w) for w in weights.values()):
        raise ValueError(f"weights must be finite and non-negative: {dict(weights)}")
    n = len(next(iter(arrays.values())))
    total = np.zeros((n, MAX_OPTIONS), dtype=np.float64)
    for name, array in arrays.items():
        total += weights[name] * normalise(array, normalisation)
    return total


def ranked_options(scores: np.ndarray) -> np.ndarray:
    """Per question, option indices best first; ties go to the earlier letter, NaN last."""
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != MAX_OPTIONS:
        raise ValueError(f"scores must have shape (n, {MAX_OPTIONS}), not {array.shape}")
    array = np.where(np.isnan(array), -np.inf, array)
    return np.argsort(-array, axis=1, kind="stable")


def predictions(scores: np.ndarray) -> list[str]:
    """The submission strings: the three best of each question's options, best first
    (``"A B C"``; fewer letters for a question of two options, never one it does not have)."""
    present = ~np.isnan(np.asarray(scores, dtype=np.float64))
    return [" ".join([LETTERS[i] for i in row if has[i]][:TOP])
            for row, has in zip(ranked_options(scores), present, strict=True)]
