"""How well the pipeline answers and retrieves: MAP@3, recall@k, gold-in-context, with CIs.

MAP@3 is the competition's metric: each question has one correct letter, a prediction ranks up
to three letters, and the question scores 1/k when the correct letter first appears at rank k
(k <= 3), else 0. Letters after the first correct one are ignored (the competition's rule that a
label, once scored, is no longer relevant), so each question counts once, and MAP@3 is the mean.

MAP@3 has one implementation here, :func:`precision_at_rank`, fed by either form of a ranking:
ranked letters (the submission's ``"A B C"``: :func:`average_precision_at_3`,
:func:`map_at_3_scores`) or an ``(n, MAX_OPTIONS)`` array of option scores
(:func:`average_precisions`, vectorised, for readers and blends), where the correct option's rank
counts ties against it only from earlier letters (A before B) and NaN (an option the question does
not have) as the lowest score, the order in which :func:`pipeline.answering.blend.predictions`
writes the letters, so the two forms agree.

A few hundred questions give a noisy mean, so scores come with a percentile bootstrap interval
over questions (a fixed seed makes reruns agree): two configurations whose intervals overlap
widely have not been told apart.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.questions.question import LETTERS, MAX_OPTIONS

TOP = 3


@dataclass(frozen=True)
class Estimate:
    """A mean over questions with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int
    confidence: float


def _letters(prediction: str | Sequence[str]) -> list[str]:
    """A ranked list of letters; a string is the submission format, ``"A B C"``."""
    return prediction.split() if isinstance(prediction, str) else list(prediction)


def precision_at_rank(ranks: int | Sequence[int] | np.ndarray) -> np.ndarray:
    """The metric's one rule: 1/k for a correct answer first ranked at k <= 3, else 0.

    ``ranks`` count from 1; 0 (or anything beyond 3) means the answer was not in the top three.
    """
    array = np.asarray(ranks, dtype=np.float64)
    return np.divide(1.0, array, out=np.zeros_like(array), where=(array >= 1) & (array <= TOP))


def _letter_rank(prediction: str | Sequence[str], answer: str) -> int:
    """Where ``answer`` first stands among the first three predicted letters (1-based), or 0."""
    letters = _letters(prediction)[:TOP]
    return letters.index(answer) + 1 if answer in letters else 0


def average_precision_at_3(prediction: str | Sequence[str], answer: str) -> float:
    """1/k if ``answer`` is at rank k of the first three predicted letters, else 0."""
    return float(precision_at_rank(_letter_rank(prediction, answer)))


def map_at_3_scores(predictions: Sequence[str | Sequence[str]],
                    answers: Sequence[str]) -> np.ndarray:
    """Each question's average precision at 3, in question order."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} answers")
    return precision_at_rank([_letter_rank(p, a) for p, a in zip(predictions, answers,
                                                                 strict=True)])


def answer_indices(answers: Sequence[str | None]) -> np.ndarray:
    """The answers as option indices (A is 0); every question needs a letter to fit or score."""
    bad = [a for a in answers if a not in LETTERS]
    if bad:
        raise ValueError(f"answers must be letters {', '.join(LETTERS)}; got {bad[:5]!r}")
    return np.array([LETTERS.index(a) for a in answers], dtype=np.int64)


def answer_ranks(scores: np.ndarray, answers: Sequence[str] | np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each question's correct option under ``(n, MAX_OPTIONS)`` scores.

    An option scoring the same as the correct one ranks ahead of it only if its letter comes
    earlier; NaN scores rank last. ``answers`` are letters, or option indices as an array.
    """
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != MAX_OPTIONS:
        raise ValueError(f"scores must have shape (n, {MAX_OPTIONS}), not {array.shape}")
    array = np.where(np.isnan(array), -np.inf, array)
    gold = (np.asarray(answers, dtype=np.int64) if isinstance(answers, np.ndarray)
            else answer_indices(answers))
    if len(gold) != len(array):
        raise ValueError(f"{len(array)} questions scored but {len(gold)} answers")
    correct = array[np.arange(len(array)), gold][:, None]
    earlier = np.arange(MAX_OPTIONS)[None, :] < gold[:, None]
    return 1 + ((array > correct) | ((array == correct) & earlier)).sum(axis=1)


def average_precisions(scores: np.ndarray, answers: Sequence[str] | np.ndarray) -> np.ndarray:
    """Each question's average precision at 3 under ``(n, MAX_OPTIONS)`` scores (vectorised).

    The same numbers as :func:`map_at_3_scores` of the letters the scores rank best first.
    """
    return precision_at_rank(answer_ranks(scores, answers))


def top1_hits(scores: np.ndarray, answers: Sequence[str] | np.ndarray) -> np.ndarray:
    """Per question, whether its correct option scores best (accuracy, ties as in
    :func:`answer_ranks`)."""
    return answer_ranks(scores, answers) == 1


def map_at_3(predictions: Sequence[str | Sequence[str]], answers: Sequence[str]) -> float:
    """The competition's MAP@3 (0 for no questions would hide a bug, so that raises)."""
    scores = map_at_3_scores(predictions, answers)
    if not len(scores):
        raise ValueError("MAP@3 of no questions")
    return float(scores.mean())


def bootstrap_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-question ``values``.

    Questions are resampled with replacement ``resamples`` times with a fixed ``seed``.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or not len(data):
        raise ValueError("need a non-empty 1-D sequence of per-question values")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def estimate(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
             resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean of per-question ``values`` (scores, or hits as booleans) with its interval."""
    data = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(data, confidence, resamples, seed)
    return Estimate(float(data.mean()), low, high, len(data), confidence)


def map_at_3_estimate(predictions: Sequence[str | Sequence[str]], answers: Sequence[str],
                      confidence: float = 0.95, resamples: int = 2000,
                      seed: int = 0) -> Estimate:
    """MAP@3 with its bootstrap interval."""
    return estimate(map_at_3_scores(predictions, answers), confidence, resamples, seed)


def hit_at_k(ranked: Sequence[Hashable], gold: Hashable, k: int) -> bool:
    """Whether ``gold`` is among the first ``k`` items of ``ranked``."""
    if k < 1:
        raise ValueError("k must be positive")
    return gold in ranked[:k]


def recall_hits(rankings: Sequence[Sequence[Hashable]], golds: Sequence[Hashable],
                k: int) -> np.ndarray:
    """Per question, whether its gold item (one per question) is in the top ``k`` of its list.

    Items are whatever identifies the gold (for the stem_1k passages: page titles, see
    :func:`pipeline.questions.csv_format.gold_title`). Pass the result to :func:`estimate` for
    an interval.
    """
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings for {len(golds)} gold items")
    if any(g is None for g in golds):
        raise ValueError("every question needs a gold item (filter out those without)")
    return np.array([hit_at_k(r, g, k) for r, g in zip(rankings, golds, strict=True)],
                    dtype=bool)


def recall_at_k(rankings: Sequence[Sequence[Hashable]], golds: Sequence[Hashable],
                k: int) -> float:
    """Share of questions whose gold item is in the top ``k`` of their ranking.

    With one relevant item per question, recall@k is this hit rate.
    """
    hits = recall_hits(rankings, golds, k)
    if not len(hits):
        raise ValueError("recall of no questions")
    return float(hits.mean())


def gold_in_context(context_members: Sequence[Collection[Hashable]],
                    golds: Sequence[Hashable]) -> np.ndarray:
    """Per question, whether its packed context holds (part of) the gold passage.

    ``context_members`` lists, per question, what identifies the passages of its context (e.g.
    :attr:`pipeline.rankings.packing.PackedContext.titles`); a passage cut by the token budget
    counts, since it is in the context. The mean is the share of questions; pass it to
    :func:`estimate` for an interval.
    """
    if len(context_members) != len(golds):
        raise ValueError(f"{len(context_members)} contexts for {len(golds)} gold items")
    if any(g is None for g in golds):
        raise ValueError("every question needs a gold item (filter out those without)")
    return np.array([g in members for members, g in zip(context_members, golds, strict=True)],
                    dtype=bool)


def gold_in_context_share(context_members: Sequence[Collection[Hashable]],
                          golds: Sequence[Hashable]) -> float:
    """Share of questions whose packed context contains the gold passage."""
    hits = gold_in_context(context_members, golds)
    if not len(hits):
        raise ValueError("share of no questions")
    return float(hits.mean())
