"""Per-question normalisation: each reader's ``(n, 5)`` logits made comparable across readers.

Readers give logits on their own scales (a log-likelihood, a cosine, a BM25 sum), so a blend
never adds them raw: within each question a softmax turns them into the reader's
probabilities over the five options, a z-score into their spread-free order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from scipy.special import softmax

from pipeline.questions.csv_format import LETTERS

Normalisation = Literal["softmax", "zscore"]
OPTIONS = len(LETTERS)
MIN_SPREAD = 1e-9


def checked_logits(array: np.ndarray, what: str = "logits") -> np.ndarray:
    """``array`` as float64 of shape ``(n, 5)``, all finite; ``what`` names it in errors."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != OPTIONS:
        raise ValueError(f"{what} must have shape (n, {OPTIONS}), not {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} hold non-finite values")
    return array


def normalise(logits: np.ndarray, method: Normalisation = "softmax") -> np.ndarray:
    """Each question's logits made comparable across readers.

    ``"softmax"``: probabilities over the five options (a reader's confidence counts: a
    reader sure of one option outweighs one that barely prefers it). ``"zscore"``: centred
    and scaled to unit spread per question (only the reader's relative order and gaps count;
    a question where the reader gives all options the same logit gets zeros).
    """
    array = checked_logits(logits)
    if method == "softmax":
        return softmax(array, axis=1)
    if method == "zscore":
        centred = array - array.mean(axis=1, keepdims=True)
        spread = array.std(axis=1, keepdims=True)
        return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > MIN_SPREAD)
    raise ValueError(f"unknown normalisation {method!r}: use 'softmax' or 'zscore'")


def checked_sources(per_source_logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every source's logits checked (:func:`checked_logits`), all covering the same questions."""
    if not per_source_logits:
        raise ValueError("no sources to blend")
    arrays = {name: checked_logits(array, f"logits of {name!r}")
              for name, array in per_source_logits.items()}
    sizes = {name: len(array) for name, array in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"sources cover different numbers of questions: {sizes}")
    return arrays
