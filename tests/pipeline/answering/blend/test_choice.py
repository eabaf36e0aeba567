"""Choosing the blend by out-of-fold MAP@3 on the fit questions alone."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.answering.blend.choice import choose_blend
from pipeline.metrics import average_precisions
from tests.pipeline.answering.blend.synthetic import CHANCE_MAP3, synthetic


def test_choose_blend_picks_by_out_of_fold_map_on_the_fit_questions() -> None:
    answers, signal, noise = synthetic(300, 2.0, seed=11)
    with threadpool_limits(1):
        choice = choose_blend({"signal": signal, "noise": noise}, answers, folds=5, seed=0)
    assert set(choice.cv_map) == {"logit", "weights", "ranker", "equal"}
    assert choice.cv_map[choice.method] == max(choice.cv_map.values())
    assert choice.method != "equal" and choice.cv_map[choice.method] > choice.cv_map["equal"]
    if choice.method != "ranker":
        assert choice.weights["signal"] > choice.weights["noise"]
    # Out-of-fold log-probabilities: one row per fit question, calibrated (rows sum to 1).
    assert choice.oof_log_probabilities.shape == (300, 10)
    np.testing.assert_allclose(np.nansum(np.exp(choice.oof_log_probabilities), axis=1), 1.0)
    assert average_precisions(choice.oof_log_probabilities, answers).mean() == pytest.approx(
        choice.cv_map[choice.method])
    # New questions from the same distribution score like the out-of-fold estimate.
    new_answers, new_signal, new_noise = synthetic(300, 2.0, seed=12)
    scored = average_precisions(choice.fitted.scores({"signal": new_signal, "noise": new_noise}),
                                new_answers).mean()
    assert scored > CHANCE_MAP3 + 0.3


def test_choose_blend_without_enough_fit_questions_is_the_equal_blend() -> None:
    empty = np.zeros((0, 10))
    choice = choose_blend({"signal": empty, "noise": empty}, [])
    assert choice.method == "equal" and choice.fitted.ranker is None
    assert choice.weights == {"signal": 0.5, "noise": 0.5}
    assert choice.cv_map == {}


def test_choose_blend_on_questions_of_two_to_six_options() -> None:
    """Every method fits and scores a ragged set: no score for an option a question does not
    have, and the informative source still wins."""
    answers, signal, noise = synthetic(300, 2.0, seed=21, ragged=True)
    with threadpool_limits(1):
        choice = choose_blend({"signal": signal, "noise": noise}, answers, folds=5, seed=0)
    assert set(choice.cv_map) == {"logit", "weights", "ranker", "equal"}
    assert np.array_equal(np.isnan(choice.oof_log_probabilities), np.isnan(signal))
    new_answers, new_signal, new_noise = synthetic(300, 2.0, seed=22, ragged=True)
    scores = choice.fitted.scores({"signal": new_signal, "noise": new_noise})
    assert np.array_equal(np.isnan(scores), np.isnan(new_signal))
    chance = average_precisions(new_noise, new_answers).mean()
    assert average_precisions(scores, new_answers).mean() > chance + 0.3
