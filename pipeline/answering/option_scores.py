"""Per-question option scores that the answering steps hand on to the next.

``blended_scores`` holds the cheap blend's calibrated log-probabilities (the blend questions'
out of fold); ``answer_scores`` the cascade's final ones, with whether the heavy reader read the
question. The submission and the score read the final table.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np

from pipeline.questions.question import MAX_OPTIONS
from pipeline.tables import (
    option_column_ddl,
    option_columns,
    transaction,
    widen_option_columns,
)

TABLES = ("blended_scores", "answer_scores")
COLUMNS = f"role, question_id, {option_columns()}, escalated"
Row = tuple[str, str, np.ndarray, bool]


def _ddl(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown scores table {table!r}")
    return (f"CREATE TABLE IF NOT EXISTS {table} (role VARCHAR, question_id VARCHAR, "
            f"{option_column_ddl()}, escalated BOOLEAN)")


def write_scores(db: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Row]) -> None:
    """Replace ``table`` with ``rows`` of (role, question_id, MAX_OPTIONS scores (NaN, stored
    as NULL, past the question's options), escalated)."""
    db.execute(_ddl(table))
    widen_option_columns(db, table)
    with transaction(db):
        db.execute(f"DELETE FROM {table}")
        db.executemany(f"INSERT INTO {table} ({COLUMNS}) VALUES "
                       f"({', '.join('?' * (MAX_OPTIONS + 3))})",
                       [[role, qid, *(None if np.isnan(x) else float(x) for x in scores),
                         bool(escalated)]
                        for role, qid, scores, escalated in rows])


def read_scores(db: duckdb.DuckDBPyConnection, table: str, role: str
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Question ids of ``role`` in file order, their scores and whether each was escalated."""
    _ddl(table)  # checks the name
    if not db.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                      [table]).fetchone()[0]:
        raise LookupError(f"the warehouse has no {table} yet: materialise "
                          f"{'blend_weights' if table == 'blended_scores' else 'cascade'}")
    rows = db.execute(
        f"SELECT q.id, {option_columns('s.')}, s.escalated FROM questions q "
        f"JOIN {table} s ON s.role = q.role AND s.question_id = q.id "
        "WHERE q.role = ? ORDER BY q.row, q.id", [role]).fetchall()
    scores = np.array([r[1:-1] for r in rows], dtype=np.float64).reshape(-1, MAX_OPTIONS)
    return [r[0] for r in rows], scores, np.array([bool(r[-1]) for r in rows])
