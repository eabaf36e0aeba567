"""MAP@3-searched blend weights: they find the informative source and beat the equal blend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from pipeline.answering.blend.normalisation import Normalisation
from pipeline.answering.blend.scores import apply, equal_weights
from pipeline.answering.blend.weights import fit_weights
from pipeline.metrics import average_precisions
from tests.pipeline.answering.blend.synthetic import synthetic


def blend_map(weights: Mapping[str, float], sources: Mapping[str, np.ndarray],
              answers: Sequence[str], normalisation: Normalisation = "softmax") -> float:
    """MAP@3 of the blend of ``weights`` on these questions."""
    return float(average_precisions(apply(weights, sources, normalisation), answers).mean())


@pytest.mark.parametrize("normalisation", ["softmax", "zscore"])
def test_fit_weights_finds_the_informative_source_and_beats_the_equal_blend(
        normalisation: Normalisation) -> None:
    answers, signal, noise = synthetic(400, strength=1.5, seed=0)
    sources = {"noise": noise, "signal": signal}
    weights = fit_weights(sources, answers, normalisation=normalisation)
    assert set(weights) == {"noise", "signal"}
    assert all(w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["signal"] > 0.8
    fitted = blend_map(weights, sources, answers, normalisation)
    equal = blend_map(equal_weights(sources), sources, answers, normalisation)
    assert fitted >= equal
    assert fitted > blend_map({"noise": 1.0, "signal": 0.0}, sources, answers) + 0.2
    # the weights carry over to new questions from the same process
    new_answers, new_signal, new_noise = synthetic(400, strength=1.5, seed=1)
    new = {"noise": new_noise, "signal": new_signal}
    assert (blend_map(weights, new, new_answers, normalisation)
            >= blend_map(equal_weights(new), new, new_answers, normalisation) - 0.01)
    # a fixed seed gives the same weights
    assert fit_weights(sources, answers, normalisation=normalisation) == weights


def test_fit_weights_edge_cases() -> None:
    answers, signal, _ = synthetic(20, strength=1.0, seed=2)
    assert fit_weights({"only": signal}, answers) == {"only": 1.0}
    with pytest.raises(ValueError, match="answers"):
        fit_weights({"a": signal, "b": signal}, answers[:-1])
    with pytest.raises(ValueError, match="letters"):
        fit_weights({"a": signal, "b": signal}, [None] * 20)  # type: ignore[list-item]
