"""Per-question normalisation: softmax probabilities and z-scores, shift- and scale-free."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.blend.normalisation import checked_sources, normalise


def test_normalise_softmax_and_zscore() -> None:
    logits = np.array([[1.0, 2.0, 3.0, 0.0, -1.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    probs = normalise(logits, "softmax")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert list(np.argsort(-probs[0])) == list(np.argsort(-logits[0]))
    np.testing.assert_allclose(probs[1], 0.2)
    np.testing.assert_allclose(normalise(logits + 100.0, "softmax"), probs)  # shift-free
    z = normalise(logits, "zscore")
    assert z[0].mean() == pytest.approx(0.0) and z[0].std() == pytest.approx(1.0)
    assert np.all(z[1] == 0)
    np.testing.assert_allclose(normalise(logits * 7.0, "zscore"), z)  # scale-free
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(logits, "rank")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        normalise(np.zeros((2, 4)))


def test_sources_must_be_finite_and_cover_the_same_questions() -> None:
    one = np.zeros((1, 5))
    with pytest.raises(ValueError, match="no sources"):
        checked_sources({})
    with pytest.raises(ValueError, match="non-finite"):
        checked_sources({"a": np.full((1, 5), np.nan)})
    with pytest.raises(ValueError, match="different numbers"):
        checked_sources({"a": one, "b": np.vstack([one, one])})
