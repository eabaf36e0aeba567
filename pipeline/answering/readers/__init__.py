"""Readers: score a question's five options against its packed context.

A reader turns (question, context) into five logits, higher meaning more likely correct. The
logits of different readers are on different scales (a similarity, a weighted word overlap, a
language model's log-probability), so they are only comparable within one question and one
reader; :mod:`pipeline.answering.blend` normalises them per question before weighting readers
together.

The readers here need no training (:mod:`pipeline.answering.readers.lexical`,
:mod:`pipeline.answering.readers.similarity`), so they can score every question set without any
risk of having seen its answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.questions.csv_format import LETTERS, Question

OPTIONS = len(LETTERS)


@runtime_checkable
class Reader(Protocol):
    """What the pipeline needs of a reader: a name (for asset keys and blend weights) and scores.

    ``score_many`` has a default (one question at a time) that a class subclassing
    :class:`Reader` inherits; readers that gain from batching (embedding every question's texts
    in one call, say) override it.
    """

    name: str

    def score(self, question: Question, context: str) -> np.ndarray:
        """Five float logits, one per option A to E; higher means more likely correct."""
        ...

    def score_many(self, items: Iterable[tuple[Question, str]]) -> np.ndarray:
        """An ``(n, 5)`` array: the logits of each (question, context) pair, in order."""
        return score_each(self, items)


def score_each(reader: Reader, items: Iterable[tuple[Question, str]]) -> np.ndarray:
    """Score (question, context) pairs one by one; always ``(n, 5)``, even for no pairs."""
    rows = [check_logits(reader.score(question, context)) for question, context in items]
    if not rows:
        return np.zeros((0, OPTIONS), dtype=np.float64)
    return np.vstack(rows)


def check_logits(logits: np.ndarray) -> np.ndarray:
    """``logits`` as five finite float64s; a reader that breaks this is a bug, so it raises."""
    array = np.asarray(logits, dtype=np.float64)
    if array.shape != (OPTIONS,):
        raise ValueError(f"a reader must give {OPTIONS} logits, not shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"a reader gave non-finite logits: {array}")
    return array
