"""Per-(reader, ranking) logits in the warehouse, and the labelled arrays read back from them.

``reader_logits`` holds one logit per option (columns A to J, NULL past a question's options)
per question for every (reader, ranking) source. Each logits asset replaces only its own
source's rows, so adding a reader or changing one ranking touches no other source's logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.answering.readers import option_mask
from pipeline.questions.question import LETTERS, MAX_OPTIONS
from pipeline.renames import RENAMED_RANKINGS, RENAMED_READERS
from pipeline.tables import (
    append,
    option_column_ddl,
    option_columns,
    transaction,
    widen_option_columns,
)

DDL = f"""CREATE TABLE IF NOT EXISTS reader_logits (
    reader VARCHAR, ranking VARCHAR, role VARCHAR, question_id VARCHAR, {option_column_ddl()})"""
SCHEMA = pa.schema([("reader", pa.string()), ("ranking", pa.string()), ("role", pa.string()),
                    ("question_id", pa.string()),
                    *((letter, pa.float64()) for letter in LETTERS)])
VERSION_COLUMNS = f"reader, ranking, role, question_id, {option_columns()}"


def create(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(DDL)
    widen_option_columns(db, "reader_logits")
    for old, new in RENAMED_READERS:
        db.execute("UPDATE reader_logits SET reader = ? WHERE reader = ?", [new, old])
    for old, new in RENAMED_RANKINGS:
        db.execute("UPDATE reader_logits SET ranking = ? WHERE ranking = ?", [new, old])


def source_name(reader: str, ranking: str) -> str:
    """How a (reader, ranking) source is named in blend weights and score tables."""
    return f"{reader}@{ranking}"


def write_logits(db: duckdb.DuckDBPyConnection, reader: str, ranking: str,
                 keys: Sequence[tuple[str, str]], logits: np.ndarray) -> None:
    """Replace the source's rows with ``logits`` (n, MAX_OPTIONS; NaN past a question's
    options, stored as NULL) of the (role, question_id) ``keys``."""
    if logits.shape != (len(keys), MAX_OPTIONS):
        raise ValueError(f"{len(keys)} questions but logits of shape {logits.shape}")
    columns: dict[str, list] = {"reader": [reader] * len(keys),
                                "ranking": [ranking] * len(keys),
                                "role": [role for role, _ in keys],
                                "question_id": [qid for _, qid in keys]}
    for j, letter in enumerate(LETTERS):
        columns[letter] = [None if np.isnan(x) else x for x in logits[:, j].tolist()]
    create(db)
    with transaction(db):
        db.execute("DELETE FROM reader_logits WHERE reader = ? AND ranking = ?",
                   [reader, ranking])
        append(db, "reader_logits", columns, SCHEMA)


@dataclass(frozen=True)
class LabelledLogits:
    """Every source's logits over one role's questions, aligned, with the answers if known."""

    question_ids: list[str]
    answers: list[str | None]
    sources: dict[str, np.ndarray]


def read_role(db: duckdb.DuckDBPyConnection, role: str, sources: Sequence[str]
              ) -> LabelledLogits:
    """The logits of ``sources`` (``reader@ranking`` names) for every question of ``role``.

    Questions are in the questions table's order; columns past a question's options are NaN.
    A source missing some question (or some option of one) is a stale or half-written source,
    and raises: a blend must never silently drop a question.
    """
    create(db)
    questions = db.execute("SELECT id, answer, options FROM questions WHERE role = ? "
                           "ORDER BY row, id", [role]).fetchall()
    ids = [q[0] for q in questions]
    present = option_mask(np.array([q[2] for q in questions], dtype=np.int64))
    position = {qid: i for i, qid in enumerate(ids)}
    arrays: dict[str, np.ndarray] = {}
    for source in sources:
        reader, ranking = source.split("@")
        rows = db.execute(
            f"SELECT question_id, {option_columns()} FROM reader_logits "
            "WHERE reader = ? AND ranking = ? AND role = ?", [reader, ranking, role]).fetchall()
        array = np.full((len(ids), MAX_OPTIONS), np.nan)
        for row in rows:
            if row[0] in position:
                array[position[row[0]]] = np.array(row[1:], dtype=np.float64)
        array[~present] = np.nan
        missing = [qid for qid, i in position.items() if np.isnan(array[i][present[i]]).any()]
        if missing:
            raise LookupError(f"{source} has no logits for {len(missing)} {role} questions "
                              f"(e.g. {missing[:3]}); materialise its logits asset again")
        arrays[source] = array
    return LabelledLogits(ids, [q[1] for q in questions], arrays)


def signal_name(reader: str, signal: str) -> str:
    """How a reader's per-option signal is stored beside its logits (``lexical.coverage``)."""
    return f"{reader}.{signal}"


def signal_sources(db: duckdb.DuckDBPyConnection) -> list[str]:
    """Every stored per-option signal, as ``reader.signal@ranking`` source names."""
    create(db)
    rows = db.execute("SELECT DISTINCT reader, ranking FROM reader_logits "
                      "WHERE contains(reader, '.') ORDER BY reader, ranking").fetchall()
    return [source_name(reader, ranking) for reader, ranking in rows]


def retrieval_features(db: duckdb.DuckDBPyConnection, role: str,
                       question_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Per ranking, the best passage's score and its lead over the second, as ``(n, MAX_OPTIONS)``
    arrays (the same value for every option): how sure retrieval was that the context is right,
    which tells a learned ranker how far to trust the readers of that context."""
    rows = db.execute("""
        SELECT ranking, question_id,
               max(score) FILTER (WHERE rank = 0), max(score) FILTER (WHERE rank = 1)
        FROM context_rankings WHERE role = ? GROUP BY ranking, question_id""",
                      [role]).fetchall()
    position = {qid: i for i, qid in enumerate(question_ids)}
    features: dict[str, np.ndarray] = {}
    for ranking, qid, first, second in rows:
        if qid not in position:
            continue
        shape = (len(position), MAX_OPTIONS)
        top = features.setdefault(f"retrieval.top@{ranking}", np.zeros(shape))
        gap = features.setdefault(f"retrieval.gap@{ranking}", np.zeros(shape))
        top[position[qid]] = first or 0.0
        gap[position[qid]] = (first or 0.0) - (second if second is not None else first or 0.0)
    return dict(sorted(features.items()))
