"""MAP@3 (on letters and on score arrays), bootstrap intervals, recall@k, gold-in-context."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.answering.blend import predictions
from pipeline.metrics import (
    answer_indices,
    answer_ranks,
    average_precision_at_3,
    average_precisions,
    bootstrap_ci,
    estimate,
    gold_in_context,
    gold_in_context_share,
    hit_at_k,
    map_at_3,
    map_at_3_estimate,
    map_at_3_scores,
    precision_at_rank,
    recall_at_k,
    recall_hits,
    top1_hits,
)
from pipeline.questions.question import LETTERS
from tests.pipeline.answering.blend.synthetic import padded


def test_average_precision_at_3_by_rank() -> None:
    assert average_precision_at_3(["A", "B", "C"], "A") == 1.0
    assert average_precision_at_3(["B", "A", "C"], "A") == 0.5
    assert average_precision_at_3(["B", "C", "A"], "A") == pytest.approx(1 / 3)
    assert average_precision_at_3(["B", "C", "D", "A", "E"], "A") == 0.0
    assert average_precision_at_3([], "A") == 0.0


def test_a_question_counts_once_and_wrong_repeats_still_take_ranks() -> None:
    assert average_precision_at_3(["A", "A", "A"], "A") == 1.0
    assert average_precision_at_3(["B", "A", "A"], "A") == 0.5
    assert average_precision_at_3(["B", "B", "A"], "A") == pytest.approx(1 / 3)


def test_submission_strings_are_ranked_letters() -> None:
    assert average_precision_at_3("D A C", "A") == 0.5
    assert average_precision_at_3("E D C B A", "A") == 0.0


def test_map_at_3_hand_computed() -> None:
    predictions = [["A", "B", "C"], "B A C", ["C", "D", "E"], ["D", "E", "B"], ["E", "A", "B"]]
    answers = ["A", "A", "E", "A", "B"]
    assert map_at_3_scores(predictions, answers) == pytest.approx([1, 0.5, 1 / 3, 0, 1 / 3])
    assert map_at_3(predictions, answers) == pytest.approx((1 + 0.5 + 1 / 3 + 0 + 1 / 3) / 5)
    with pytest.raises(ValueError):
        map_at_3(predictions, answers[:4])
    with pytest.raises(ValueError):
        map_at_3([], [])


def test_precision_at_rank_is_the_one_rule() -> None:
    assert precision_at_rank([1, 2, 3, 4, 5, 0]) == pytest.approx([1, 0.5, 1 / 3, 0, 0, 0])
    assert precision_at_rank(2) == 0.5


def test_average_precisions_of_scores_hand_computed_ties_by_letter_nan_last() -> None:
    scores = padded([[0.1, 0.9, 0.5, 0.7, 0.0],      # B D C A E
                     [1.0, 1.0, 1.0, 1.0, 1.0],      # all tied: A B C D E
                     [0.0, 0.0, 2.0, 2.0, 1.0],      # C D E A B
                     [np.nan, 0.0, -1.0, 0.5, 0.5]])  # D E B C A
    answers = ["C", "B", "D", "A"]
    assert answer_ranks(scores, answers).tolist() == [3, 2, 2, 5]
    assert average_precisions(scores, answers) == pytest.approx([1 / 3, 0.5, 0.5, 0.0])
    indices = answer_indices(answers)
    assert indices.tolist() == [2, 1, 3, 0]
    assert average_precisions(scores, indices) == pytest.approx([1 / 3, 0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="answers"):
        average_precisions(scores, answers[:3])
    with pytest.raises(ValueError, match="letters"):
        average_precisions(scores, ["A", "B", "K", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="shape"):
        average_precisions(scores[:, :5], answers)


def test_a_missing_option_ranks_below_every_option_a_question_has() -> None:
    """A three-option question's answer C ranked third is worth 1/3, never beaten by the
    options it does not have; a top-1 hit is counted as accuracy."""
    scores = padded([[0.5, 0.9, 0.1], [0.1, 0.2, 0.9]])
    assert answer_ranks(scores, ["C", "C"]).tolist() == [3, 1]
    assert average_precisions(scores, ["C", "C"]) == pytest.approx([1 / 3, 1.0])
    assert top1_hits(scores, ["B", "B"]).tolist() == [True, False]


def test_vectorised_map3_matches_the_metric_on_the_predictions() -> None:
    rng = np.random.default_rng(5)
    counts = rng.integers(2, 8, size=300)
    scores = np.where(np.arange(10) < counts[:, None],
                      rng.integers(0, 4, size=(300, 10)).astype(float), np.nan)
    answers = [LETTERS[rng.integers(0, n)] for n in counts]
    np.testing.assert_array_equal(average_precisions(scores, answers),
                                  map_at_3_scores(predictions(scores), answers))


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_more_questions() -> None:
    rng = np.random.default_rng(42)
    small = rng.choice([0.0, 1 / 3, 0.5, 1.0], size=50)
    large = np.tile(small, 16)  # same mean, 16 times the questions
    est_small, est_large = estimate(small), estimate(large)
    assert est_small.value == pytest.approx(est_large.value)
    for est in (est_small, est_large):
        assert est.low < est.value < est.high
    width_small = est_small.high - est_small.low
    width_large = est_large.high - est_large.low
    # The width of a mean's interval falls with the square root of n: about 4x here.
    assert 3.0 < width_small / width_large < 5.5
    assert est_small.n == 50 and est_small.confidence == 0.95


def test_bootstrap_is_reproducible_and_exact_for_constant_scores() -> None:
    values = [0.0, 1.0, 0.5, 1.0, 0.0, 1 / 3]
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci([0.5] * 20) == pytest.approx((0.5, 0.5))
    narrow = bootstrap_ci(values, confidence=0.5)
    wide = bootstrap_ci(values, confidence=0.99)
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci(values, confidence=1.0)


def test_map_at_3_estimate() -> None:
    predictions = [["A", "B", "C"]] * 30 + [["B", "C", "A"]] * 30
    answers = ["A"] * 60
    est = map_at_3_estimate(predictions, answers)
    assert est.value == pytest.approx((1 + 1 / 3) / 2)
    assert est.low < est.value < est.high
    assert est.low > 1 / 3 and est.high < 1


def test_recall_at_k() -> None:
    rankings = [["x", "gold", "y"], ["gold"], ["a", "b", "c", "gold"], []]
    golds = ["gold"] * 4
    assert hit_at_k(rankings[0], "gold", 1) is False
    assert hit_at_k(rankings[0], "gold", 2) is True
    assert recall_hits(rankings, golds, 2).tolist() == [True, True, False, False]
    assert recall_at_k(rankings, golds, 1) == 0.25
    assert recall_at_k(rankings, golds, 3) == 0.5
    assert recall_at_k(rankings, golds, 10) == 0.75
    with pytest.raises(ValueError):
        recall_at_k(rankings, golds, 0)
    with pytest.raises(ValueError):
        recall_at_k(rankings, [None, "gold", "gold", "gold"], 3)
    with pytest.raises(ValueError):
        recall_at_k([], [], 3)


def test_gold_in_context_share() -> None:
    contexts = [("Passage stem-1k 0001", "Other"), ("Other",), (), ("Passage stem-1k 0004",)]
    golds = ["Passage stem-1k 0001", "Passage stem-1k 0002", "Passage stem-1k 0003",
             "Passage stem-1k 0004"]
    assert gold_in_context(contexts, golds).tolist() == [True, False, False, True]
    assert gold_in_context_share(contexts, golds) == 0.5
    with pytest.raises(ValueError):
        gold_in_context_share(contexts, golds[:3])
