"""Synthetic labelled questions shared by the blend tests: one informative source, one noise."""

from __future__ import annotations

import numpy as np

from pipeline.questions.question import LETTERS, MAX_OPTIONS

CHANCE_MAP3 = (1 + 1 / 2 + 1 / 3) / 5  # a random order of five options


def padded(rows: list[list[float]] | np.ndarray) -> np.ndarray:
    """Per-question scores as the pipeline holds them: ``(n, MAX_OPTIONS)``, NaN past each
    row's options (a row of NaN-free values of length k is a k-option question)."""
    array = np.asarray(rows, dtype=np.float64)
    out = np.full((len(array), MAX_OPTIONS), np.nan)
    out[:, : array.shape[1]] = array
    return out


def synthetic(n: int, strength: float, seed: int, ragged: bool = False
              ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Answers, an informative source (noise plus ``strength`` on the answer), a noise source,
    each ``(n, MAX_OPTIONS)``: five options a question, or 2 to 6 with ``ragged``."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 7, size=n) if ragged else np.full(n, 5)
    gold = rng.integers(0, counts)
    absent = np.arange(MAX_OPTIONS)[None, :] >= counts[:, None]
    signal = rng.normal(size=(n, MAX_OPTIONS))
    signal[np.arange(n), gold] += strength
    noise = rng.normal(scale=3.0, size=(n, MAX_OPTIONS))
    signal[absent] = noise[absent] = np.nan
    return [LETTERS[g] for g in gold], signal, noise
