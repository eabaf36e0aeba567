"""Synthetic labelled questions shared by the blend tests: one informative source, one noise."""

from __future__ import annotations

import numpy as np

from pipeline.questions.csv_format import LETTERS

CHANCE_MAP3 = (1 + 1 / 2 + 1 / 3) / 5  # a random order of five options


def synthetic(n: int, strength: float, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Answers, an informative source (noise plus ``strength`` on the answer), a noise source."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 5, size=n)
    signal = rng.normal(size=(n, 5))
    signal[np.arange(n), gold] += strength
    noise = rng.normal(scale=3.0, size=(n, 5))
    return [LETTERS[g] for g in gold], signal, noise
