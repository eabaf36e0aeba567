"""What the readers read: questions paired with the packed context of one ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from pipeline.questions.question import Question
from pipeline.questions.question_table import read_question_table
from pipeline.questions.roles import SCORED_ROLES
from pipeline.rankings.context_table import read_contexts


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
    an error to fix by materialising the ranking, never a question to skip silently. A question
    whose set's own passage the run shows (``questions.show_passages``) reads it first.
    """
    contexts = read_contexts(db, ranking)
    shown = {(role, qid) for role, qid in db.execute(
        "SELECT role, id FROM questions WHERE passage_shown").fetchall()}
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
        texts.append(f"{question.passage}\n{contexts[key]}" if key in shown else contexts[key])
    if missing:
        raise LookupError(f"the {ranking} ranking has no context for {len(missing)} questions "
                          f"(e.g. {missing[:3]}); materialise ranking_{ranking} again")
    return ReadingList(keys, questions, texts)
