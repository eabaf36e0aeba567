"""The ``questions`` table: the question sets a run answers, each tagged with its role.

Roles: ``test`` (answered for the submission), ``validation`` (labelled, scored, never trained
on), ``blend`` (labelled, scored by the readers to fit their blend, never trained on) and
``train`` (labelled, the multiple-choice reader's fine-tuning set) and ``teacher`` (labelled or
not, for the distillation's teacher to label). Question ids are unique within a role, not
across roles.

Options sit in columns ``A`` to ``J``, NULL past the question's ``options`` (its count); ``kind``
says what kind of exam a question comes from (its file's format and its number of options, see
:func:`kind_of`), which tells the cascade whether the blend was fitted on questions like it.
``passage`` is the set's own gold passage where its format has one (SciQ's ``support``): no
reader sees it unless the run asks for it (``passage_shown``, from ``questions.show_passages``),
and then it leads the question's context in every ranking (:mod:`pipeline.answering.reading_list`).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from pipeline.questions.csv_format import gold_title
from pipeline.questions.question import MAX_OPTIONS, Question
from pipeline.tables import option_column_ddl, option_columns, transaction

DDL = f"""CREATE OR REPLACE TABLE questions (
    role VARCHAR, id VARCHAR, source VARCHAR, row INTEGER, prompt VARCHAR,
    {option_column_ddl("VARCHAR")}, options INTEGER, answer VARCHAR, gold_title VARCHAR,
    kind VARCHAR, passage VARCHAR, passage_shown BOOLEAN)"""
VERSION_COLUMNS = (f"role, id, source, row, prompt, {option_columns()}, answer, kind, passage, "
                   "passage_shown")


def kind_of(question: Question, file_format: str) -> str:
    """What kind of exam a question is: its file's format and its number of options
    (``kaggle_csv/5`` for the competition's questions, ``arc/4`` for OpenBookQA's)."""
    return f"{file_format}/{len(question.options)}"


def write_questions(db: duckdb.DuckDBPyConnection,
                    sets: Iterable[tuple[str, list[Question]]],
                    kinds: dict[str, str] | None = None, show_passages: bool = False) -> None:
    """Replace the table with ``sets`` of (role, questions), in one transaction; ``kinds``
    gives each question set's (source's) kind stem (its file format), default ``kaggle_csv``;
    ``show_passages`` lets the readers see the passages the sets carry."""
    kinds = kinds or {}
    with transaction(db):
        db.execute(DDL)
        for role, questions in sets:
            if not questions:
                continue
            db.executemany(
                f"INSERT INTO questions VALUES ({', '.join('?' * (MAX_OPTIONS + 11))})",
                [[role, q.id, q.source, q.row, q.prompt,
                  *q.options, *[None] * (MAX_OPTIONS - len(q.options)), len(q.options),
                  q.answer, gold_title(q), kind_of(q, kinds.get(q.source, "kaggle_csv")),
                  q.passage, show_passages and q.passage is not None] for q in questions])


def read_question_table(db: duckdb.DuckDBPyConnection, role: str | None = None
                        ) -> list[tuple[str, Question]]:
    """(role, question) pairs, optionally of one role, in file order: by row, with ties
    between the pool's files broken by file and id, so the same data is always read (and
    trained on) in the same order."""
    rows = db.execute(
        f"SELECT role, id, prompt, options, answer, source, row, passage, {option_columns()} "
        "FROM questions WHERE ? IS NULL OR role = ? ORDER BY role, row, source, id",
        [role, role]).fetchall()
    return [(r[0], Question(id=r[1], prompt=r[2], options=tuple(r[8:8 + r[3]]), answer=r[4],
                            source=r[5], row=r[6], passage=r[7])) for r in rows]
