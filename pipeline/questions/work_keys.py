"""Work kept per question: which rows of a per-question table are still valid, which to compute.

Retrieval and the rankings cost seconds per question and their tables hold rows per (role,
question_id). Each such row carries an ``item_key``: a hash of everything that question's rows
were computed from, namely the question's own content and its upstream rows (through their
item keys) plus the step's *basis*, whatever the step's output depends on for every question
alike (code version, config, the index, the models). A step keeps the rows whose item key is
still the one it would compute, deletes the others and computes only the questions left
without rows. So a new test file costs its own questions, an edited question costs one, and a
changed index or model recomputes every question, as it must.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.questions.question import Question
from pipeline.tables import transaction

Key = tuple[str, str]


def basis_key(**parts: Any) -> str:
    """What a step's rows depend on for every question alike, as one hash."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def question_key(basis: str, role: str, question: Question) -> str:
    """A question's item key at the head of the chain: its content (and role, id) under
    ``basis``."""
    payload = json.dumps([basis, role, question.id, question.prompt, list(question.options)])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def derived_key(basis: str, upstream: str) -> str:
    """A question's item key in a step computed from an upstream step's rows of it."""
    return hashlib.sha256(f"{basis}|{upstream}".encode()).hexdigest()[:24]


def item_keys(db: duckdb.DuckDBPyConnection, table: str, scope: str = "TRUE"
              ) -> dict[Key, str]:
    """The item key each question's rows in ``table`` (within ``scope``) carry."""
    rows = db.execute(f"SELECT role, question_id, any_value(item_key) FROM {table} "
                      f"WHERE {scope} GROUP BY role, question_id").fetchall()
    return {(role, qid): key for role, qid, key in rows if key is not None}


def prune(db: duckdb.DuckDBPyConnection, tables: Sequence[str], wanted: Mapping[Key, str],
          scope: str = "TRUE") -> list[Key]:
    """Delete the rows of ``tables`` (within ``scope``) whose question is not wanted or whose
    item key is not the wanted one; return the wanted questions the first table holds no rows
    of, in ``wanted``'s order: the ones to compute.

    Tables created before item keys existed gain the column (NULL: every row recomputed); a
    table not created yet holds nothing.
    """
    existing = {name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()"
                                               ).fetchall()}
    if tables[0] not in existing:
        for table in tables[1:]:
            if table in existing:
                db.execute(f"DELETE FROM {table} WHERE {scope}")
        return list(wanted)
    frame = pa.table({"role": [k[0] for k in wanted], "question_id": [k[1] for k in wanted],
                      "item_key": list(wanted.values())},
                     schema=pa.schema([("role", pa.string()), ("question_id", pa.string()),
                                       ("item_key", pa.string())]))
    db.register("_wanted", frame)
    try:
        with transaction(db):
            for table in tables:
                db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS item_key VARCHAR")
                db.execute(f"DELETE FROM {table} t WHERE {scope} AND NOT EXISTS (SELECT 1 "
                           "FROM _wanted w WHERE w.role = t.role AND w.question_id = "
                           "t.question_id AND w.item_key = t.item_key)")
        held = set(item_keys(db, tables[0], scope))
    finally:
        db.unregister("_wanted")
    return [key for key in wanted if key not in held]
