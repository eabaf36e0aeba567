"""Per-question normalisation: each reader's ``(n, MAX_OPTIONS)`` logits made comparable.

Readers give logits on their own scales (a log-likelihood, a cosine, a BM25 sum), so a blend
never adds them raw: within each question a softmax turns them into the reader's
probabilities over the question's options, a z-score into their spread-free order. A question
has 2 to 10 options; the columns past its last one are NaN in every array here, and stay NaN
through every function (masked: they get no probability, no score and no rank).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from scipy.special import logsumexp

from pipeline.questions.question import MAX_OPTIONS, MIN_OPTIONS

Normalisation = Literal["softmax", "zscore"]
MIN_SPREAD = 1e-9


def checked_logits(array: np.ndarray, what: str = "logits") -> np.ndarray:
    """``array`` as float64 of shape ``(n, MAX_OPTIONS)``: each row finite over its first 2 to
    10 columns (the question's options) and NaN after; ``what`` names it in errors."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != MAX_OPTIONS:
        raise ValueError(f"{what} must have shape (n, {MAX_OPTIONS}), not {array.shape}")
    present = ~np.isnan(array)
    counts = present.sum(axis=1)
    if np.isinf(array).any() or (present != (np.arange(MAX_OPTIONS) < counts[:, None])).any():
        raise ValueError(f"{what} hold infinite values or a gap among a question's options")
    if (counts < MIN_OPTIONS).any():
        raise ValueError(f"{what} give some question fewer than {MIN_OPTIONS} options")
    return array


def log_softmax(array: np.ndarray) -> np.ndarray:
    """Per question, log-probabilities over the options it has (NaN stays NaN)."""
    array = np.asarray(array, dtype=np.float64)
    masked = np.where(np.isnan(array), -np.inf, array)
    return array - logsumexp(masked, axis=1, keepdims=True)


def normalise(logits: np.ndarray, method: Normalisation = "softmax") -> np.ndarray:
    """Each question's logits made comparable across readers.

    ``"softmax"``: probabilities over the question's options (a reader's confidence counts: a
    reader sure of one option outweighs one that barely prefers it). ``"zscore"``: centred
    and scaled to unit spread per question (only the reader's relative order and gaps count;
    a question where the reader gives all options the same logit gets zeros).
    """
    array = checked_logits(logits)
    if method == "softmax":
        return np.exp(log_softmax(array))
    if method == "zscore":
        centred = array - np.nanmean(array, axis=1, keepdims=True)
        spread = np.nanstd(array, axis=1, keepdims=True)
        zeros = np.where(np.isnan(array), np.nan, 0.0)
        return np.divide(centred, spread, out=zeros, where=spread > MIN_SPREAD)
    raise ValueError(f"unknown normalisation {method!r}: use 'softmax' or 'zscore'")


def checked_sources(per_source_logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every source's logits checked (:func:`checked_logits`), all covering the same questions
    with the same options."""
    if not per_source_logits:
        raise ValueError("no sources to blend")
    arrays = {name: checked_logits(array, f"logits of {name!r}")
              for name, array in per_source_logits.items()}
    sizes = {name: len(array) for name, array in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"sources cover different numbers of questions: {sizes}")
    masks = {name: tuple(np.isnan(array).sum(axis=1)) for name, array in arrays.items()}
    if len(set(masks.values())) != 1:
        raise ValueError(f"sources give different numbers of options: {sorted(masks)}")
    return arrays


def present(array: np.ndarray) -> np.ndarray:
    """Where each question has an option (the non-NaN cells)."""
    return ~np.isnan(np.asarray(array, dtype=np.float64))
