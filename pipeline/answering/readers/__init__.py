"""Readers: score each option a question has against its packed context.

A reader turns (question, context) into one logit per option the question has (2 to 10),
higher meaning more likely correct; a batch of questions is an ``(n, MAX_OPTIONS)`` array whose
columns past each question's last option are NaN (see :func:`pad`): the options a question does
not have are masked, never scored. The logits of different readers are on different scales (a
similarity, a weighted word overlap, a language model's log-probability), so they are only
comparable within one question and one reader; :mod:`pipeline.answering.blend` normalises them
per question before weighting readers together.

The readers here need no training (:mod:`pipeline.answering.readers.lexical`,
:mod:`pipeline.answering.readers.similarity`), so they can score every question set without any
risk of having seen its answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.questions.question import MAX_OPTIONS, Question


@runtime_checkable
class Reader(Protocol):
    """What the pipeline needs of a reader: a name (for asset keys and blend weights) and scores.

    ``score_many`` has a default (one question at a time) that a class subclassing
    :class:`Reader` inherits; readers that gain from batching (embedding every question's texts
    in one call, say) override it.
    """

    name: str

    def score(self, question: Question, context: str) -> np.ndarray:
        """One float logit per option the question has, in order; higher means more likely
        correct."""
        ...

    def score_many(self, items: Iterable[tuple[Question, str]]) -> np.ndarray:
        """An ``(n, MAX_OPTIONS)`` array, NaN past each question's options (see :func:`pad`)."""
        return score_each(self, items)


def score_each(reader: Reader, items: Iterable[tuple[Question, str]]) -> np.ndarray:
    """Score (question, context) pairs one by one; always ``(n, MAX_OPTIONS)``, even for none."""
    return pad([check_logits(reader.score(question, context), len(question.options))
                for question, context in items])


def pad(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Per-question logits of varying length as one ``(n, MAX_OPTIONS)`` float64 array, NaN
    where a question has no option."""
    array = np.full((len(rows), MAX_OPTIONS), np.nan)
    for i, row in enumerate(rows):
        array[i, : len(row)] = row
    return array


def option_counts(questions: Iterable[Question]) -> np.ndarray:
    """How many options each question has, as an int array."""
    return np.array([len(q.options) for q in questions], dtype=np.int64)


def option_mask(counts: np.ndarray) -> np.ndarray:
    """``(n, MAX_OPTIONS)`` booleans: True where question ``i`` has option ``j``."""
    return np.arange(MAX_OPTIONS)[None, :] < np.asarray(counts)[:, None]


def check_logits(logits: np.ndarray, options: int) -> np.ndarray:
    """``logits`` as ``options`` finite float64s; a reader that breaks this is a bug, so it
    raises."""
    array = np.asarray(logits, dtype=np.float64)
    if array.shape != (options,):
        raise ValueError(f"a reader must give {options} logits, not shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"a reader gave non-finite logits: {array}")
    return array
