"""Blended scores and the predictions they rank: weights over sources, ties by letter."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.blend.normalisation import normalise
from pipeline.answering.blend.scores import apply, equal_weights, predictions
from pipeline.questions.csv_format import LETTERS


def test_predictions_are_three_distinct_letters_best_first_ties_by_letter() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7, 0.0],
                       [1.0, 1.0, 1.0, 1.0, 1.0],
                       [0.0, 0.0, 2.0, 2.0, 1.0],
                       [np.nan, 0.0, -1.0, 0.5, 0.5]])
    assert predictions(scores) == ["B D C", "A B C", "C D E", "D E B"]
    rng = np.random.default_rng(3)
    many = rng.integers(0, 3, size=(200, 5)).astype(float)  # many ties
    for text in predictions(many):
        letters = text.split()
        assert len(letters) == 3 == len(set(letters))
        assert set(letters) <= set(LETTERS)


def test_apply_weights_sources_and_rejects_mismatches() -> None:
    a = np.array([[3.0, 0.0, 0.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0, 0.0, 3.0]])
    blended = apply({"a": 0.75, "b": 0.25}, {"a": a, "b": b})
    np.testing.assert_allclose(blended, 0.75 * normalise(a) + 0.25 * normalise(b))
    assert predictions(blended)[0].startswith("A")
    assert equal_weights({"a": a, "b": b}) == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="weights for"):
        apply({"a": 1.0}, {"a": a, "b": b})
    with pytest.raises(ValueError, match="non-negative"):
        apply({"a": 1.0, "b": -0.5}, {"a": a, "b": b})
    with pytest.raises(ValueError, match="different numbers"):
        apply({"a": 1.0, "b": 1.0}, {"a": a, "b": np.vstack([b, b])})
