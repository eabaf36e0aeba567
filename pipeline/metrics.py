"""How well the pipeline answers and retrieves: MAP@3, recall@k, gold-in-context, with CIs.

MAP@3 is the competition's metric: each question has one correct letter, a prediction ranks up
to three letters, and the question scores 1/k when the correct letter first appears at rank k
(k <= 3), else 0. Letters after the first correct one are ignored (the competition's rule that a
label, once scored, is no longer relevant), so each question counts once, and MAP@3 is the mean.

A few hundred questions give a noisy mean, so scores come with a percentile bootstrap interval
over questions (a fixed seed makes reruns agree): two configurations whose intervals overlap
widely have not been told apart.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

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


def average_precision_at_3(prediction: str | Sequence[str], answer: str) -> float:
    """1/k if ``answer`` is at rank k of the first three predicted letters, else 0."""
    for rank, letter in enumerate(_letters(prediction)[:TOP], start=1):
        if letter == answer:
            return 1.0 / rank
    return 0.0


def map_at_3_scores(predictions: Sequence[str | Sequence[str]],
                    answers: Sequence[str]) -> np.ndarray:
    """Each question's average precision at 3, in question order."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions for {len(answers)} answers")
    return np.array([average_precision_at_3(p, a) for p, a in zip(predictions, answers,
                                                                  strict=True)])


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
    :func:`pipeline.questions.gold_title`). Pass the result to :func:`estimate` for an interval.
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
    :attr:`pipeline.ranking.PackedContext.titles`); a passage cut by the token budget counts,
    since it is in the context. The mean is the share of questions; pass it to
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
