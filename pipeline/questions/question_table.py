"""The ``questions`` table: the question sets a run answers, each tagged with its role.

Roles: ``test`` (answered for the submission), ``validation`` (labelled, scored, never trained
on), ``blend`` (labelled, scored by the readers to fit their blend, never trained on) and
``train`` (labelled, the multiple-choice reader's fine-tuning set) and ``teacher`` (labelled or
not, for the distillation's teacher to label). Question ids are unique within a role, not
across roles.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from pipeline.questions.csv_format import LETTERS, Question, gold_title
from pipeline.tables import transaction

DDL = """CREATE OR REPLACE TABLE questions (
    role VARCHAR, id VARCHAR, source VARCHAR, row INTEGER, prompt VARCHAR,
    A VARCHAR, B VARCHAR, C VARCHAR, D VARCHAR, E VARCHAR, answer VARCHAR, gold_title VARCHAR)"""
VERSION_COLUMNS = "role, id, source, row, prompt, A, B, C, D, E, answer"


def write_questions(db: duckdb.DuckDBPyConnection,
                    sets: Iterable[tuple[str, list[Question]]]) -> None:
    """Replace the table with ``sets`` of (role, questions), in one transaction."""
    with transaction(db):
        db.execute(DDL)
        for role, questions in sets:
            for q in questions:
                db.execute("INSERT INTO questions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [role, q.id, q.source, q.row, q.prompt, *q.options, q.answer,
                            gold_title(q)])


def read_question_table(db: duckdb.DuckDBPyConnection, role: str | None = None
                        ) -> list[tuple[str, Question]]:
    """(role, question) pairs, optionally of one role, in file order: by row, with ties
    between the pool's files broken by file and id, so the same data is always read (and
    trained on) in the same order."""
    rows = db.execute(
        f"SELECT role, id, prompt, {', '.join(LETTERS)}, answer, source, row FROM questions "
        "WHERE ? IS NULL OR role = ? ORDER BY role, row, source, id", [role, role]).fetchall()
    return [(r[0], Question(id=r[1], prompt=r[2], options=tuple(r[3:8]), answer=r[8],
                            source=r[9], row=r[10])) for r in rows]
