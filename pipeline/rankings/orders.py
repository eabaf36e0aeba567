"""Three orders of a question's candidate passages.

The recipe orders candidates three ways, because orders that fail differently give contexts
worth ensembling (or fusing) where any one of them alone misses the source passage.

1. Search: the passages' search scores (:mod:`pipeline.retrieval.passages`).
2. Edit distance: how little of the question (prompt and options) is missing from the passage,
   counted in words. See :func:`edit_similarity` for the normalisation.
3. Semantic: cosine similarity of prompt and passage under a first embedder, and of the options
   and passage under a second. See :func:`semantic_scores` for the combination.

Every ranking breaks ties by search score, then query hits, then passage id, so the orders are
deterministic. Embedding is not done here: the semantic ranking takes the vectors. Packing the
best into a context is :mod:`pipeline.rankings.packing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import Levenshtein
import numpy as np

from pipeline.questions.question import Question
from pipeline.retrieval.passages import Passage
from pipeline.retrieval.queries import words


@dataclass(frozen=True)
class RankedPassage:
    passage: Passage
    score: float


def _ranked(passages: Iterable[Passage], scores: Iterable[float]) -> list[RankedPassage]:
    ranked = [RankedPassage(p, float(s)) for p, s in zip(passages, scores, strict=True)]
    ranked.sort(key=lambda r: (-r.score, -r.passage.score, -r.passage.query_hits,
                               r.passage.passage_id))
    return ranked


def rank_by_search(passages: Sequence[Passage]) -> list[RankedPassage]:
    """Passages by search score."""
    return _ranked(passages, (p.score for p in passages))


def question_text(question: Question) -> str:
    """What the edit-distance ranking compares passages with: the prompt, then the options."""
    return "\n".join((question.prompt, *question.options))


def edit_similarity(question: str, passage: str, window_factor: int = 2) -> float:
    """1 minus the normalised edit distance of ``question`` to the best part of ``passage``.

    Both texts become their content words (:func:`pipeline.retrieval.queries.words`: lowercase, no
    punctuation or stop words), so the distance counts words, not spelling. The distance is
    the number of the question's words that must be deleted before the rest appears in order
    in the passage (an insert/delete Levenshtein distance in which the passage's extra words
    are free), divided by the question's word count: 0 when the passage holds every question
    word in order, 1 when it holds none.

    A plain Levenshtein ratio would charge a passage for every word it has beyond the
    question's, so long passages would lose for their length. Making extra words free errs the
    other way (a long passage has more words to match by chance), so the passage is measured in
    windows of ``window_factor`` times the question's length, and its best window counts:
    every passage is judged on the same amount of text.
    """
    q = words(question)
    p = words(passage)
    if not q or not p:
        return 0.0
    width = window_factor * len(q)
    starts = list(range(0, max(len(p) - width, 0) + 1, len(q)))
    if starts[-1] + width < len(p):
        starts.append(len(p) - width)
    best = 0
    for start in starts:
        window = p[start:start + width]
        indel = Levenshtein.distance(q, window, weights=(1, 1, 2))
        common = (len(q) + len(window) - indel) // 2
        best = max(best, common)
    return best / len(q)


def rank_by_edit_distance(question: Question, passages: Sequence[Passage],
                          window_factor: int = 2) -> list[RankedPassage]:
    """Passages by :func:`edit_similarity` to the question's prompt and options."""
    text = question_text(question)
    return _ranked(passages, (edit_similarity(text, p.text, window_factor) for p in passages))


def cosine_similarities(vector: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``vector`` with each row of ``matrix`` (0 for a zero vector)."""
    vector = np.asarray(vector, dtype=np.float64)
    matrix = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    dots = matrix @ vector
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def semantic_scores(prompt_vector: np.ndarray, option_vectors: np.ndarray,
                    passage_prompt_vectors: np.ndarray, passage_option_vectors: np.ndarray,
                    prompt_weight: float = 0.5) -> np.ndarray:
    """Semantic score of each passage: weighted mean of its prompt and option similarities.

    ``prompt_vector`` and ``passage_prompt_vectors`` (one row per passage) come from the first
    embedder; ``option_vectors`` (one row per option) and ``passage_option_vectors`` from the
    second. The option similarity is the mean over the options, not the maximum: all the
    options are written about the source passage, so it is close to each of them, whereas a
    maximum lets a passage that matches one off-topic distractor rank high.
    """
    if not 0.0 <= prompt_weight <= 1.0:
        raise ValueError("prompt_weight must lie in [0, 1]")
    passage_prompt_vectors = np.atleast_2d(passage_prompt_vectors)
    passage_option_vectors = np.atleast_2d(passage_option_vectors)
    option_vectors = np.atleast_2d(option_vectors)
    if len(passage_prompt_vectors) != len(passage_option_vectors):
        raise ValueError("need the same passages under both embedders: "
                         f"{len(passage_prompt_vectors)} != {len(passage_option_vectors)} rows")
    prompt_sim = cosine_similarities(prompt_vector, passage_prompt_vectors)
    option_sim = np.mean([cosine_similarities(o, passage_option_vectors)
                          for o in option_vectors], axis=0)
    return prompt_weight * prompt_sim + (1.0 - prompt_weight) * option_sim


def rank_semantic(passages: Sequence[Passage], prompt_vector: np.ndarray,
                  option_vectors: np.ndarray, passage_prompt_vectors: np.ndarray,
                  passage_option_vectors: np.ndarray,
                  prompt_weight: float = 0.5) -> list[RankedPassage]:
    """Passages by :func:`semantic_scores`; vector rows are in the order of ``passages``."""
    if not passages:
        return []
    rows = len(np.atleast_2d(passage_prompt_vectors))
    if rows != len(passages):
        raise ValueError(f"{len(passages)} passages but {rows} passage vectors")
    scores = semantic_scores(prompt_vector, option_vectors, passage_prompt_vectors,
                             passage_option_vectors, prompt_weight)
    return _ranked(passages, scores)
