"""Blending: normalisation, fitted weights against the equal blend, predictions, the ranker."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.blend import (
    apply,
    average_precisions,
    blend_map_at_3,
    calibrated,
    choose_blend,
    equal_weights,
    fit_ranker,
    fit_temperature,
    fit_weights,
    normalise,
    option_features,
    predictions,
)
from pipeline.metrics import map_at_3
from pipeline.questions import LETTERS

CHANCE_MAP3 = (1 + 1 / 2 + 1 / 3) / 5  # a random order of five options


def synthetic(n: int, strength: float, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Answers, an informative source (noise plus ``strength`` on the answer), a noise source."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 5, size=n)
    signal = rng.normal(size=(n, 5))
    signal[np.arange(n), gold] += strength
    noise = rng.normal(scale=3.0, size=(n, 5))
    return [LETTERS[g] for g in gold], signal, noise


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


def test_vectorised_map3_matches_the_metric_on_the_predictions() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(300, 5)).astype(float)
    answers = [LETTERS[i] for i in rng.integers(0, 5, size=300)]
    assert average_precisions(scores, answers).mean() == pytest.approx(
        map_at_3(predictions(scores), answers))


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


@pytest.mark.parametrize("normalisation", ["softmax", "zscore"])
def test_fit_weights_finds_the_informative_source_and_beats_the_equal_blend(
        normalisation: str) -> None:
    answers, signal, noise = synthetic(400, strength=1.5, seed=0)
    sources = {"noise": noise, "signal": signal}
    weights = fit_weights(sources, answers, normalisation=normalisation)  # type: ignore[arg-type]
    assert set(weights) == {"noise", "signal"}
    assert all(w >= 0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["signal"] > 0.8
    fitted = blend_map_at_3(weights, sources, answers, normalisation)  # type: ignore[arg-type]
    equal = blend_map_at_3(equal_weights(sources), sources, answers,
                           normalisation)  # type: ignore[arg-type]
    assert fitted >= equal
    assert fitted > blend_map_at_3({"noise": 1.0, "signal": 0.0}, sources, answers) + 0.2
    # the weights carry over to new questions from the same process
    new_answers, new_signal, new_noise = synthetic(400, strength=1.5, seed=1)
    new = {"noise": new_noise, "signal": new_signal}
    assert (blend_map_at_3(weights, new, new_answers, normalisation)  # type: ignore[arg-type]
            >= blend_map_at_3(equal_weights(new), new, new_answers,
                              normalisation) - 0.01)  # type: ignore[arg-type]
    # a fixed seed gives the same weights
    assert fit_weights(sources, answers, normalisation=normalisation) == weights  # type: ignore[arg-type]


def test_fit_weights_edge_cases() -> None:
    answers, signal, _ = synthetic(20, strength=1.0, seed=2)
    assert fit_weights({"only": signal}, answers) == {"only": 1.0}
    with pytest.raises(ValueError, match="answers"):
        fit_weights({"a": signal, "b": signal}, answers[:-1])
    with pytest.raises(ValueError, match="letters"):
        fit_weights({"a": signal, "b": signal}, [None] * 20)  # type: ignore[list-item]


def test_option_features_rows_are_question_major() -> None:
    logits = np.array([[0.0, 2.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0, 0.0]])
    extra = {"len": np.arange(10.0).reshape(2, 5)}
    features, names = option_features({"s": logits}, extra)
    assert features.shape == (10, len(names))
    assert names == ["s:softmax", "s:rank", "s:gap", "len:raw", "len:zscore"]
    np.testing.assert_array_equal(features[:5, 1], [2, 0, 1, 3, 4])  # ties by letter
    np.testing.assert_array_equal(features[5:, 1], [0, 1, 2, 3, 4])
    assert features[1, 2] == 0.0 and features[0, 2] > 0
    np.testing.assert_array_equal(features[:, 3], np.arange(10.0))


def test_learned_ranker_beats_chance_out_of_fold_and_on_new_questions() -> None:
    answers, signal, noise = synthetic(300, strength=1.2, seed=4)
    rng = np.random.default_rng(4)
    hint = rng.normal(size=(300, 5))  # an extra signal: the answer is often the largest
    hint[np.arange(300), [LETTERS.index(a) for a in answers]] += 1.0
    with threadpool_limits(1):
        fit = fit_ranker({"signal": signal, "noise": noise}, answers, {"hint": hint},
                         folds=4, seed=0, params={"max_iter": 60})
        assert fit.oof_scores.shape == (300, 5)
        assert sorted(set(fit.folds.tolist())) == [0, 1, 2, 3]
        assert fit.oof_map_at_3 > CHANCE_MAP3 + 0.2
        assert fit.oof_map_at_3 == pytest.approx(map_at_3(predictions(fit.oof_scores), answers))

        new_answers, new_signal, new_noise = synthetic(300, strength=1.2, seed=9)
        new_hint = np.random.default_rng(9).normal(size=(300, 5))
        new_hint[np.arange(300), [LETTERS.index(a) for a in new_answers]] += 1.0
        scores = fit.model.score({"signal": new_signal, "noise": new_noise}, {"hint": new_hint})
        assert scores.shape == (300, 5)
        assert map_at_3(predictions(scores), new_answers) > CHANCE_MAP3 + 0.2
        with pytest.raises(ValueError, match="fitted on sources"):
            fit.model.score({"signal": new_signal}, {"hint": new_hint})


def test_out_of_fold_scores_never_see_their_own_answers() -> None:
    """On noise the model refitted on all questions memorises them; out-of-fold stays at chance."""
    rng = np.random.default_rng(11)
    answers = [LETTERS[i] for i in rng.integers(0, 5, size=200)]
    sources = {"a": rng.normal(size=(200, 5)), "b": rng.normal(size=(200, 5))}
    with threadpool_limits(1):
        fit = fit_ranker(sources, answers, folds=4, seed=0,
                         params={"max_iter": 100, "min_samples_leaf": 2,
                                 "l2_regularization": 0.0})
        in_sample = map_at_3(predictions(fit.model.score(sources)), answers)
    assert fit.oof_map_at_3 < CHANCE_MAP3 + 0.1
    assert in_sample > fit.oof_map_at_3 + 0.2


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
    assert choice.oof_log_probabilities.shape == (300, 5)
    np.testing.assert_allclose(np.exp(choice.oof_log_probabilities).sum(axis=1), 1.0)
    assert average_precisions(choice.oof_log_probabilities, answers).mean() == pytest.approx(
        choice.cv_map[choice.method])
    # New questions from the same distribution score like the out-of-fold estimate.
    new_answers, new_signal, new_noise = synthetic(300, 2.0, seed=12)
    scored = average_precisions(choice.fitted.scores({"signal": new_signal, "noise": new_noise}),
                                new_answers).mean()
    assert scored > CHANCE_MAP3 + 0.3


def test_the_calibrated_temperature_matches_the_confidence_to_the_hit_rate() -> None:
    answers, signal, _ = synthetic(2000, 1.5, seed=5)
    temperature = fit_temperature(signal * 10.0, answers)  # far too confident as given
    assert temperature > 5.0
    probabilities = np.exp(calibrated(signal * 10.0, temperature))
    top = probabilities.max(axis=1)
    hits = probabilities.argmax(axis=1) == [LETTERS.index(x) for x in answers]
    assert abs(top.mean() - hits.mean()) < 0.03


def test_choose_blend_without_enough_fit_questions_is_the_equal_blend() -> None:
    empty = np.zeros((0, 5))
    choice = choose_blend({"signal": empty, "noise": empty}, [])
    assert choice.method == "equal" and choice.fitted.ranker is None
    assert choice.weights == {"signal": 0.5, "noise": 0.5}
    assert choice.cv_map == {}
