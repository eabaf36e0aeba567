"""A reader's logits cached per question: text, context, weights and settings, nothing else.

Every reader's work is kept at the grain users change things: a question whose prompt, options
and context are unchanged, read by the same code and weights (by sha256) with the same
settings, is never read again, whichever run, role, ranking or file it comes from. Growing the
cascade's share from 25 % to 50 % reads only the new quarter; a new test file reads only its
new questions; a context two rankings agree on is read once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np

from pipeline.questions.question import MAX_OPTIONS, Question
from pipeline.tables import option_column_ddl, option_columns, widen_option_columns

COLUMNS = f"reader_key, item_key, {option_columns()}, seconds, tokens, setup"
INSERT = (f"INSERT OR REPLACE INTO reading_cache ({COLUMNS}) "
          f"VALUES ({', '.join('?' * (MAX_OPTIONS + 5))})")
DDL = f"""CREATE TABLE IF NOT EXISTS reading_cache (
    reader_key VARCHAR, item_key VARCHAR, {option_column_ddl()},
    seconds DOUBLE, tokens INTEGER, setup JSON, PRIMARY KEY (reader_key, item_key))"""
# Warehouses from before the token count and the setup (runtime, device, precision).
MIGRATIONS = ("ALTER TABLE reading_cache ADD COLUMN IF NOT EXISTS tokens INTEGER",
              "ALTER TABLE reading_cache ADD COLUMN IF NOT EXISTS setup JSON")


def create(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(DDL)
    for migration in MIGRATIONS:
        db.execute(migration)
    widen_option_columns(db, "reading_cache")


def _row(logits: np.ndarray) -> list[float | None]:
    """A question's logits as the table's A to J: NULL past its options."""
    padded = np.full(MAX_OPTIONS, np.nan)
    padded[: len(logits)] = logits
    return [None if np.isnan(x) else float(x) for x in padded]


def reader_key(weights_sha256: str, settings: dict[str, Any]) -> str:
    """What a reader's logits depend on besides the question: its weights and its settings."""
    payload = json.dumps({"weights": weights_sha256, **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def item_key(question: Question, context: str) -> str:
    """A question's content and its context (not its id, role or file)."""
    payload = json.dumps([question.prompt, list(question.options), context])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def lookup(db: duckdb.DuckDBPyConnection, reader: str, items: Sequence[str]
           ) -> dict[str, np.ndarray]:
    """Cached logits of ``items`` (item keys) under ``reader`` (a reader key), each of
    ``MAX_OPTIONS`` values, NaN past the question's options."""
    create(db)
    if not items:
        return {}
    rows = db.execute(
        f"SELECT item_key, {option_columns()} FROM reading_cache WHERE reader_key = ? "
        "AND item_key IN (SELECT unnest(?))", [reader, list(items)]).fetchall()
    return {r[0]: np.array(r[1:], dtype=np.float64) for r in rows}


def store(db: duckdb.DuckDBPyConnection, reader: str, item: str, logits: np.ndarray,
          seconds: float, tokens: int | None = None, setup: dict[str, str] | None = None
          ) -> None:
    """Remember one question's logits, the seconds and the prompt tokens it took and the setup
    it was read with (runtime, device, precision; written at once, so an interrupted run keeps
    them)."""
    create(db)
    db.execute(INSERT, [reader, item, *_row(logits), float(seconds), tokens,
                        json.dumps(setup) if setup else None])


def costs(db: duckdb.DuckDBPyConnection, reader: str, items: Sequence[str]
          ) -> tuple[float | None, float | None]:
    """Median seconds and mean prompt tokens of the cached readings of ``items``, where
    recorded."""
    create(db)
    row = db.execute("SELECT median(seconds), avg(tokens) FROM reading_cache WHERE reader_key = ? "
                     "AND item_key IN (SELECT unnest(?))", [reader, list(items)]).fetchone()
    return row[0], row[1]


def store_many(db: duckdb.DuckDBPyConnection, reader: str, items: Sequence[str],
               logits: np.ndarray) -> None:
    """Remember the logits (n, MAX_OPTIONS) of many items at once (a cheap reader's batch)."""
    create(db)
    if not len(items):
        return
    db.executemany(INSERT, [[reader, item, *_row(row), None, None, None]
                    for item, row in zip(items, logits, strict=True)])
