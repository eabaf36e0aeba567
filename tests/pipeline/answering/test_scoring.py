"""Scores with intervals, gold ranks, and the comparison of two scores."""

import numpy as np
import pytest

from pipeline.answering.scoring import compare, gold_ranks, score
from tests.pipeline.answering.blend.synthetic import padded


def test_gold_ranks_follow_the_scores_with_ties_to_the_earlier_letter() -> None:
    scores = padded([[0.1, 0.9, 0.5, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    assert gold_ranks(scores, ["C", "E"]).tolist() == [2, 5]


def test_score_gives_the_blend_and_each_source_with_intervals() -> None:
    blended = padded(np.eye(5)[[0, 1, 2, 3]])  # every question's first choice is its own letter
    wrong = padded(np.eye(5)[[4, 4, 4, 4]])
    result = score(["q1", "q2", "q3", "q4"], ["A", "B", "C", "D"], blended, {"wrong": wrong})
    assert result.estimates["blend"].value == 1.0
    # "wrong" puts E first, then A..D in letter order: the gold is 2nd for A, 3rd for B.
    assert result.estimates["wrong"].value == pytest.approx((1 / 2 + 1 / 3) / 4)
    low, high = result.estimates["wrong"].low, result.estimates["wrong"].high
    assert low <= result.estimates["wrong"].value <= high
    assert result.gold_ranks == {"q1": 1, "q2": 1, "q3": 1, "q4": 1}


def test_compare_lists_questions_crossing_rank_three() -> None:
    change = compare({"blend": 0.8, "a@search": 0.5}, {"blend": 0.7, "b@search": 0.6},
                     {"q1": 1, "q2": 4, "q3": 3}, {"q1": 5, "q2": 2, "q3": 2, "q4": 1})
    assert change.map_at_3 == {"blend": (0.8, 0.7), "a@search": (0.5, None),
                               "b@search": (None, 0.6)}
    assert change.left_top3 == [("q1", 1, 5)]
    assert change.entered_top3 == [("q2", 4, 2)]
    text = "\n".join(change.lines())
    assert "-0.1000" in text and "q1: rank 1 -> 5" in text and "new/gone" in text
