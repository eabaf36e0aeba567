"""What the readers read: questions paired with the packed context of one ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from pipeline.contexts import read_contexts
from pipeline.question_table import read_question_table
from pipeline.questions import Question

# The roles whose questions every reader scores: the submission's, the score's and the blend's.
SCORED_ROLES = ("test", "validation", "blend")
# The ranking whose contexts the multiple-choice reader is trained on. Only this ranking ranks
# the train questions: the cheapest one, since the semantic ranking's option embedder costs
# about a second a question on a CPU, and the reader learns to read from the edit-distance
# contexts as well (they hold the gold passage for about 0.8 of the questions).
TRAIN_RANKING = "edit_distance"


def ranked_roles(ranking: str) -> tuple[str, ...] | None:
    """The roles a ranking ranks: every role (None) for the training ranking, else the scored
    ones."""
    return None if ranking == TRAIN_RANKING else SCORED_ROLES


@dataclass(frozen=True)
class ReadingList:
    """(role, question_id) keys, their questions and their contexts, in the same order."""

    keys: list[tuple[str, str]]
    questions: list[Question]
    contexts: list[str]

    def pairs(self) -> list[tuple[Question, str]]:
        return list(zip(self.questions, self.contexts, strict=True))


def reading_list(db: duckdb.DuckDBPyConnection, ranking: str,
                 roles: Sequence[str] = SCORED_ROLES) -> ReadingList:
    """Every question of ``roles`` with its context under ``ranking``.

    A question without a context means the ranking is older than the questions table: that is
    an error to fix by materialising the ranking, never a question to skip silently.
    """
    contexts = read_contexts(db, ranking)
    keys, questions, texts, missing = [], [], [], []
    for role, question in read_question_table(db):
        if role not in roles:
            continue
        key = (role, question.id)
        if key not in contexts:
            missing.append(key)
            continue
        keys.append(key)
        questions.append(question)
        texts.append(contexts[key])
    if missing:
        raise LookupError(f"the {ranking} ranking has no context for {len(missing)} questions "
                          f"(e.g. {missing[:3]}); materialise ranking_{ranking} again")
    return ReadingList(keys, questions, texts)
