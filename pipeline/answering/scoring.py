"""The score of a run on the validation questions, and what changed between two scores.

A score is MAP@3 of the blend with a bootstrap interval, MAP@3 of every (reader, ranking)
source, and the rank of each question's correct answer under the blend. The last is what lets
a regression be explained question by question: :func:`compare` lists the questions whose
correct answer left the top three (or entered it) between two scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.metrics import TOP, Estimate, answer_ranks, average_precisions, estimate


@dataclass(frozen=True)
class Score:
    """MAP@3 estimates by name (``blend`` and every source) and gold ranks by question id."""

    estimates: dict[str, Estimate]
    gold_ranks: dict[str, int]


def gold_ranks(scores: np.ndarray, answers: Sequence[str]) -> np.ndarray:
    """Rank (1 = best) of each question's correct option, ties going to the earlier letter."""
    return answer_ranks(scores, answers)


def score(question_ids: Sequence[str], answers: Sequence[str], blended: np.ndarray,
          sources: Mapping[str, np.ndarray], seed: int = 0) -> Score:
    """MAP@3 with a 95% bootstrap interval for the blend and each source, and gold ranks."""
    if not len(question_ids):
        raise ValueError("no validation questions to score")
    estimates = {"blend": estimate(average_precisions(blended, answers), seed=seed)}
    for name, logits in sources.items():
        estimates[name] = estimate(average_precisions(logits, answers), seed=seed)
    ranks = gold_ranks(blended, answers)
    return Score(estimates, {qid: int(r) for qid, r in zip(question_ids, ranks, strict=True)})


@dataclass(frozen=True)
class ScoreChange:
    """Two scores side by side: MAP@3 per name, and questions that moved across rank 3."""

    map_at_3: dict[str, tuple[float | None, float | None]]
    left_top3: list[tuple[str, int, int]]
    entered_top3: list[tuple[str, int, int]]

    def lines(self) -> list[str]:
        out = ["MAP@3 (before -> after):"]
        for name, (old, new) in self.map_at_3.items():
            delta = f"{new - old:+.4f}" if old is not None and new is not None else "new/gone"
            out.append(f"  {name:40s} {_fmt(old)} -> {_fmt(new)}  {delta}")
        for title, moved in (("left the top three", self.left_top3),
                             ("entered the top three", self.entered_top3)):
            out.append(f"validation questions whose correct answer {title}: {len(moved)}")
            out += [f"  {qid}: rank {old} -> {new}" for qid, old, new in moved]
        return out


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:.4f}"


def compare(before_map: Mapping[str, float], after_map: Mapping[str, float],
            before_ranks: Mapping[str, int], after_ranks: Mapping[str, int]) -> ScoreChange:
    """What changed between two scores (by name; questions present in both)."""
    names = list(dict.fromkeys([*before_map, *after_map]))
    changes = {name: (before_map.get(name), after_map.get(name)) for name in names}
    common = [qid for qid in after_ranks if qid in before_ranks]
    left = [(q, before_ranks[q], after_ranks[q]) for q in common
            if before_ranks[q] <= TOP < after_ranks[q]]
    entered = [(q, before_ranks[q], after_ranks[q]) for q in common
               if after_ranks[q] <= TOP < before_ranks[q]]
    return ScoreChange(changes, left, entered)
