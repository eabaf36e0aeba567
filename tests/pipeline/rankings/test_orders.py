"""The three passage rankings."""

from __future__ import annotations

import Levenshtein
import numpy as np
import pytest

from pipeline.questions.question import Question
from pipeline.rankings.orders import (
    cosine_similarities,
    edit_similarity,
    question_text,
    rank_by_edit_distance,
    rank_by_search,
    rank_semantic,
    semantic_scores,
)
from pipeline.retrieval.passages import Passage

QUESTION = Question(
    "q", "Which gas do green plants absorb during photosynthesis?",
    ("Oxygen", "Carbon dioxide", "Nitrogen", "Helium", "Argon"), "B", "test", 0)
FILLER = ("The history of the region includes many wars, kings, castles and long winters. "
          "Farmers grew wheat and barley near the rivers for centuries. ")


def passage(pid: str, text: str, score: float = 1.0, hits: int = 1) -> Passage:
    return Passage(pid, 1, f"Title {pid}", (pid,), 0, len(text), text, score, hits)


def words_count(text: str) -> int:
    return len(text.split())


def test_search_ranking_orders_by_score_then_hits_then_id() -> None:
    passages = [passage("a", "x", 1.0, 1), passage("b", "x", 3.0, 1),
                passage("c", "x", 1.0, 4), passage("d", "x", 1.0, 1)]
    ranked = rank_by_search(passages)
    assert [r.passage.passage_id for r in ranked] == ["b", "c", "a", "d"]
    assert [r.score for r in ranked] == [3.0, 1.0, 1.0, 1.0]


def test_question_text_is_prompt_then_options() -> None:
    assert question_text(QUESTION).splitlines() == [QUESTION.prompt, *QUESTION.options]


def test_edit_similarity_bounds() -> None:
    text = question_text(QUESTION)
    assert edit_similarity(text, text) == 1.0
    assert edit_similarity(text, "Castles and kings of medieval winters.") == 0.0
    assert edit_similarity("", text) == 0.0


def test_edit_similarity_counts_missing_question_words() -> None:
    # Content words: gas green plants absorb oxygen carbon dioxide (7).
    question = "Which gas do green plants absorb? Oxygen. Carbon dioxide."
    passage_text = "Green plants absorb carbon dioxide from the air."
    # In order, the passage holds green plants absorb carbon dioxide: 5 of 7 words.
    assert edit_similarity(question, passage_text) == pytest.approx(5 / 7)


def test_long_passages_are_not_penalised_for_their_length() -> None:
    text = question_text(QUESTION)
    core = ("Green plants absorb carbon dioxide during photosynthesis and release oxygen; "
            "nitrogen, helium and argon are not taken up as a gas.")
    short = core
    long = FILLER * 6 + core + " " + FILLER * 6
    assert edit_similarity(text, long) == pytest.approx(edit_similarity(text, short))
    # A plain Levenshtein ratio would have ranked the long passage far below.
    assert Levenshtein.ratio(text, long) < Levenshtein.ratio(text, short) / 2
    # ...while the question words scattered across a long text do not count as a match.
    scattered = " ".join(f"{FILLER} {w}." for w in core.split())
    assert edit_similarity(text, scattered) < edit_similarity(text, short)


def test_edit_distance_ranking_puts_the_source_passage_first() -> None:
    passages = [
        passage("castles", FILLER * 2, score=9.0),
        passage("source", "During photosynthesis green plants absorb carbon dioxide gas.", 1.0),
        passage("nitrogen", "Nitrogen gas makes up most of the air.", 2.0),
    ]
    ranked = rank_by_edit_distance(QUESTION, passages)
    assert [r.passage.passage_id for r in ranked] == ["source", "nitrogen", "castles"]
    assert ranked[-1].score == 0.0


def test_cosine_similarities() -> None:
    sims = cosine_similarities(np.array([1.0, 0.0]),
                               np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0],
                                         [0.0, 0.0]]))
    assert sims == pytest.approx([1.0, 0.0, -1.0, 2 ** -0.5, 0.0])


def test_semantic_scores_mix_prompt_and_mean_option_similarity() -> None:
    prompt = np.array([1.0, 0.0])
    options = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    passage_prompt = np.array([[1.0, 0.0], [0.0, 1.0]])
    passage_option = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    scores = semantic_scores(prompt, options, passage_prompt, passage_option)
    # Passage 0: prompt sim 1, option sims (1, 0) -> mean 0.5; 0.5 * 1 + 0.5 * 0.5.
    assert scores == pytest.approx([0.75, 0.0])
    weighted = semantic_scores(prompt, options, passage_prompt, passage_option, 0.2)
    assert weighted == pytest.approx([0.2 * 1 + 0.8 * 0.5, 0.0])
    with pytest.raises(ValueError):
        semantic_scores(prompt, options, passage_prompt, passage_option[:1])
    with pytest.raises(ValueError):
        semantic_scores(prompt, options, passage_prompt, passage_option, 1.5)


def test_semantic_ranking_uses_each_embedders_vectors() -> None:
    passages = [passage("a", "x", 5.0), passage("b", "y", 1.0), passage("c", "z", 1.0)]
    prompt = np.array([0.0, 1.0])
    options = np.eye(5, 4)  # five options in a 4-d space of the second embedder
    passage_prompt = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    passage_option = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    ranked = rank_semantic(passages, prompt, options, passage_prompt, passage_option)
    assert [r.passage.passage_id for r in ranked] == ["b", "c", "a"]
    assert ranked[0].score == pytest.approx(0.5 * 1.0 + 0.5 * (4 * 0.5 / 5))
    assert rank_semantic([], prompt, options, np.zeros((0, 2)), np.zeros((0, 4))) == []
    with pytest.raises(ValueError, match="3 passages but 2"):
        rank_semantic(passages, prompt, options, passage_prompt[:2], passage_option[:2])
