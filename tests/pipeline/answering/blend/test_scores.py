"""Blended scores and the predictions they rank: weights over sources, ties by letter."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.blend.normalisation import normalise
from pipeline.answering.blend.scores import apply, equal_weights, predictions
from pipeline.questions.question import LETTERS
from tests.pipeline.answering.blend.synthetic import padded


def test_predictions_are_three_distinct_letters_best_first_ties_by_letter() -> None:
    scores = padded([[0.1, 0.9, 0.5, 0.7, 0.0],
                     [1.0, 1.0, 1.0, 1.0, 1.0],
                     [0.0, 0.0, 2.0, 2.0, 1.0]])
    assert predictions(scores) == ["B D C", "A B C", "C D E"]
    rng = np.random.default_rng(3)
    many = padded(rng.integers(0, 3, size=(200, 5)).astype(float))  # many ties
    for text in predictions(many):
        letters = text.split()
        assert len(letters) == 3 == len(set(letters))
        assert set(letters) <= set(LETTERS[:5])


def test_predictions_name_only_the_options_a_question_has() -> None:
    """A two-option question gets two letters, a four-option one never E, however its scores
    compare with another question's."""
    scores = padded([[0.2, 0.1, -5.0, -6.0, -7.0]])
    scores = np.vstack([scores, padded([[0.2, 0.9]]), padded([[-3.0, -2.0, -9.0, -1.0]])])
    assert predictions(scores) == ["A B C", "B A", "D B A"]


def test_apply_weights_sources_and_rejects_mismatches() -> None:
    a = padded([[3.0, 0.0, 0.0, 0.0, 0.0]])
    b = padded([[0.0, 0.0, 0.0, 0.0, 3.0]])
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
