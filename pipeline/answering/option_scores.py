"""Per-question option scores that the answering steps hand on to the next.

``blended_scores`` holds the cheap blend's calibrated log-probabilities (the blend questions'
out of fold); ``answer_scores`` the cascade's final ones, with whether the heavy reader read the
question. The submission and the score read the final table.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np

from pipeline.questions.csv_format import LETTERS
from pipeline.tables import transaction

TABLES = ("blended_scores", "answer_scores")
COLUMNS = f"role, question_id, {', '.join(LETTERS)}, escalated"
Row = tuple[str, str, np.ndarray, bool]


def _ddl(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"unknown scores table {table!r}")
    return (f"CREATE TABLE IF NOT EXISTS {table} (role VARCHAR, question_id VARCHAR, "
            f"{', '.join(f'{x} DOUBLE' for x in LETTERS)}, escalated BOOLEAN)")


def write_scores(db: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Row]) -> None:
    """Replace ``table`` with ``rows`` of (role, question_id, five scores, escalated)."""
    db.execute(_ddl(table))
    with transaction(db):
        db.execute(f"DELETE FROM {table}")
        db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [[role, qid, *map(float, scores), bool(escalated)]
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
        f"SELECT q.id, {', '.join('s.' + x for x in LETTERS)}, s.escalated FROM questions q "
        f"JOIN {table} s ON s.role = q.role AND s.question_id = q.id "
        "WHERE q.role = ? ORDER BY q.row, q.id", [role]).fetchall()
    scores = np.array([r[1:6] for r in rows], dtype=np.float64).reshape(-1, len(LETTERS))
    return [r[0] for r in rows], scores, np.array([bool(r[6]) for r in rows])
