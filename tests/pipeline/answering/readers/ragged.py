"""The check every reader's batch of questions of different option counts must pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pipeline.questions.question import MAX_OPTIONS, Question


def assert_rows_as_alone(batch: np.ndarray, items: Sequence[tuple[Question, str]],
                         score: Callable[[Question, str], np.ndarray], atol: float) -> None:
    """``batch`` is ``(n, MAX_OPTIONS)``; each row is finite over exactly its question's options,
    NaN after, and equal (within ``atol``) to scoring that question alone, which gives one
    value per option."""
    assert batch.shape == (len(items), MAX_OPTIONS)
    for row, (question, context) in zip(batch, items, strict=True):
        k = len(question.options)
        assert np.isfinite(row[:k]).all() and np.isnan(row[k:]).all(), (question.id, row)
        alone = score(question, context)
        assert alone.shape == (k,)
        np.testing.assert_allclose(row[:k], alone, atol=atol)
