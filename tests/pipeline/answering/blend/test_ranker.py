"""The learned ranker: option rows, out-of-fold scores that never see their own answers."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.answering.blend.ranker import fit_ranker, option_features
from pipeline.answering.blend.scores import predictions
from pipeline.metrics import map_at_3
from pipeline.questions.question import LETTERS
from tests.pipeline.answering.blend.synthetic import CHANCE_MAP3, padded, synthetic


def test_option_features_rows_are_question_major() -> None:
    logits = padded([[0.0, 2.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0, 0.0]])
    extra = {"len": padded(np.arange(10.0).reshape(2, 5))}
    features, names, mask = option_features({"s": logits}, extra)
    assert features.shape == (10, len(names)) and mask.sum() == 10
    assert names == ["s:softmax", "s:rank", "s:gap", "len:raw", "len:zscore"]
    np.testing.assert_array_equal(features[:5, 1], [2, 0, 1, 3, 4])  # ties by letter
    np.testing.assert_array_equal(features[5:, 1], [0, 1, 2, 3, 4])
    assert features[1, 2] == 0.0 and features[0, 2] > 0
    np.testing.assert_array_equal(features[:, 3], np.arange(10.0))


def test_learned_ranker_beats_chance_out_of_fold_and_on_new_questions() -> None:
    answers, signal, noise = synthetic(300, strength=1.2, seed=4)
    rng = np.random.default_rng(4)
    hint = padded(rng.normal(size=(300, 5)))  # an extra signal: the answer is often the largest
    hint[np.arange(300), [LETTERS.index(a) for a in answers]] += 1.0
    with threadpool_limits(1):
        fit = fit_ranker({"signal": signal, "noise": noise}, answers, {"hint": hint},
                         folds=4, seed=0, params={"max_iter": 60})
        assert fit.oof_scores.shape == (300, 10)
        assert sorted(set(fit.folds.tolist())) == [0, 1, 2, 3]
        assert fit.oof_map_at_3 > CHANCE_MAP3 + 0.2
        assert fit.oof_map_at_3 == pytest.approx(map_at_3(predictions(fit.oof_scores), answers))

        new_answers, new_signal, new_noise = synthetic(300, strength=1.2, seed=9)
        new_hint = padded(np.random.default_rng(9).normal(size=(300, 5)))
        new_hint[np.arange(300), [LETTERS.index(a) for a in new_answers]] += 1.0
        scores = fit.model.score({"signal": new_signal, "noise": new_noise}, {"hint": new_hint})
        assert scores.shape == (300, 10)
        assert map_at_3(predictions(scores), new_answers) > CHANCE_MAP3 + 0.2
        with pytest.raises(ValueError, match="fitted on sources"):
            fit.model.score({"signal": new_signal}, {"hint": new_hint})


def test_out_of_fold_scores_never_see_their_own_answers() -> None:
    """On noise the model refitted on all questions memorises them; out-of-fold stays at chance."""
    rng = np.random.default_rng(11)
    answers = [LETTERS[i] for i in rng.integers(0, 5, size=200)]
    sources = {"a": padded(rng.normal(size=(200, 5))), "b": padded(rng.normal(size=(200, 5)))}
    with threadpool_limits(1):
        fit = fit_ranker(sources, answers, folds=4, seed=0,
                         params={"max_iter": 100, "min_samples_leaf": 2,
                                 "l2_regularization": 0.0})
        in_sample = map_at_3(predictions(fit.model.score(sources)), answers)
    assert fit.oof_map_at_3 < CHANCE_MAP3 + 0.1
    assert in_sample > fit.oof_map_at_3 + 0.2
