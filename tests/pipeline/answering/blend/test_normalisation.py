"""Per-question normalisation: softmax probabilities and z-scores, shift- and scale-free."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.blend.normalisation import checked_sources, normalise
from tests.pipeline.answering.blend.synthetic import padded


def test_normalise_softmax_and_zscore() -> None:
    logits = padded([[1.0, 2.0, 3.0, 0.0, -1.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    probs = normalise(logits, "softmax")
    np.testing.assert_allclose(np.nansum(probs, axis=1), 1.0)
    assert list(np.argsort(-probs[0][:5])) == list(np.argsort(-logits[0][:5]))
    np.testing.assert_allclose(probs[1][:5], 0.2)
    assert np.isnan(probs[:, 5:]).all()
    np.testing.assert_allclose(normalise(logits + 100.0, "softmax"), probs)  # shift-free
    z = normalise(logits, "zscore")
    assert z[0][:5].mean() == pytest.approx(0.0) and z[0][:5].std() == pytest.approx(1.0)
    assert np.all(z[1][:5] == 0) and np.isnan(z[:, 5:]).all()
    np.testing.assert_allclose(normalise(logits * 7.0, "zscore"), z)  # scale-free
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(logits, "rank")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        normalise(np.zeros((2, 5)))


def test_normalisation_is_over_each_questions_own_options() -> None:
    """A three-option question's softmax is over its three options: the same numbers as the
    softmax of those three alone, and nothing for the options it does not have."""
    three = padded([[1.0, 2.0, 0.5]])
    five = padded([[1.0, 2.0, 0.5, 9.0, 9.0]])
    probs = normalise(three)
    alone = np.exp([1.0, 2.0, 0.5])
    np.testing.assert_allclose(probs[0, :3], alone / alone.sum())
    assert np.isnan(probs[0, 3:]).all()
    assert normalise(five)[0, 1] < probs[0, 1]


def test_sources_must_be_finite_and_cover_the_same_questions() -> None:
    one = padded(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="no sources"):
        checked_sources({})
    with pytest.raises(ValueError, match="fewer than 2 options"):
        checked_sources({"a": padded([[1.0]])})
    with pytest.raises(ValueError, match="infinite values or a gap"):
        checked_sources({"a": padded([[1.0, np.nan, 2.0]])})
    with pytest.raises(ValueError, match="infinite values or a gap"):
        checked_sources({"a": padded([[1.0, np.inf, 2.0]])})
    with pytest.raises(ValueError, match="different numbers of questions"):
        checked_sources({"a": one, "b": np.vstack([one, one])})
    with pytest.raises(ValueError, match="different numbers of options"):
        checked_sources({"a": one, "b": padded(np.zeros((1, 4)))})
