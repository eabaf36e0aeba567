"""Stored rankings and packed contexts, one set of rows per ranking, and their quality.

``context_rankings`` holds each question's ordered passages under a ranking; ``packed_contexts``
the context built from them within the reader's token budget. Each ranking asset replaces only
its own rows, and only those of the questions it ranked (each row carries its question's item
key: :mod:`pipeline.questions.work_keys`), so changing one ranking leaves the others untouched and a
new question costs one ranking's work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from pipeline.metrics import estimate, gold_in_context, recall_hits
from pipeline.rankings.orders import RankedPassage
from pipeline.rankings.packing import PackedContext
from pipeline.renames import RENAMED_RANKINGS
from pipeline.tables import Check, append, transaction

RANKINGS_DDL = """ranking VARCHAR, role VARCHAR, question_id VARCHAR, rank INTEGER,
    passage_id VARCHAR, title VARCHAR, score DOUBLE, item_key VARCHAR"""
CONTEXTS_DDL = """ranking VARCHAR, role VARCHAR, question_id VARCHAR, context VARCHAR,
    passage_ids VARCHAR[], titles VARCHAR[], tokens INTEGER, truncated BOOLEAN,
    item_key VARCHAR"""
RANKINGS_SCHEMA = pa.schema([
    ("ranking", pa.string()), ("role", pa.string()), ("question_id", pa.string()),
    ("rank", pa.int32()), ("passage_id", pa.string()), ("title", pa.string()),
    ("score", pa.float64()), ("item_key", pa.string())])
CONTEXTS_SCHEMA = pa.schema([
    ("ranking", pa.string()), ("role", pa.string()), ("question_id", pa.string()),
    ("context", pa.string()), ("passage_ids", pa.list_(pa.string())),
    ("titles", pa.list_(pa.string())), ("tokens", pa.int32()), ("truncated", pa.bool_()),
    ("item_key", pa.string())])
RECALL_AT = (1, 5, 20)

Result = tuple[str, str, list[RankedPassage], PackedContext]


def create(db: duckdb.DuckDBPyConnection) -> None:
    """The two tables, with rankings stored under an old name renamed."""
    db.execute(f"CREATE TABLE IF NOT EXISTS context_rankings ({RANKINGS_DDL})")
    db.execute(f"CREATE TABLE IF NOT EXISTS packed_contexts ({CONTEXTS_DDL})")
    for table in ("context_rankings", "packed_contexts"):
        for old, new in RENAMED_RANKINGS:
            db.execute(f"UPDATE {table} SET ranking = ? WHERE ranking = ?", [new, old])


def write_ranking(db: duckdb.DuckDBPyConnection, ranking: str, results: Sequence[Result],
                  item_keys: Mapping[tuple[str, str], str] | None = None) -> None:
    """Store ``results`` of (role, question_id, ranked, context) under ``ranking``, replacing
    those questions' rows; other questions' rows stay (see :mod:`pipeline.questions.work_keys`).
    ``item_keys`` gives the item key each question's rows carry."""
    keys = item_keys or {}
    ranked_rows: dict[str, list] = {name: [] for name in RANKINGS_SCHEMA.names}
    context_rows: dict[str, list] = {name: [] for name in CONTEXTS_SCHEMA.names}
    for role, question_id, ranked, context in results:
        for rank, item in enumerate(ranked):
            for name, value in (("ranking", ranking), ("role", role),
                                ("question_id", question_id), ("rank", rank),
                                ("passage_id", item.passage.passage_id),
                                ("title", item.passage.title), ("score", item.score),
                                ("item_key", keys.get((role, question_id)))):
                ranked_rows[name].append(value)
        for name, value in (("ranking", ranking), ("role", role), ("question_id", question_id),
                            ("context", context.text),
                            ("passage_ids", list(context.passage_ids)),
                            ("titles", list(context.titles)), ("tokens", context.tokens),
                            ("truncated", context.truncated),
                            ("item_key", keys.get((role, question_id)))):
            context_rows[name].append(value)
    create(db)
    written = pa.table({"role": [r[0] for r in results], "question_id": [r[1] for r in results]},
                       schema=pa.schema([("role", pa.string()), ("question_id", pa.string())]))
    db.register("_written", written)
    try:
        with transaction(db):
            for table in ("context_rankings", "packed_contexts"):
                db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS item_key VARCHAR")
                db.execute(f"DELETE FROM {table} t WHERE ranking = ? AND EXISTS (SELECT 1 FROM "
                           "_written w WHERE w.role = t.role AND w.question_id = t.question_id)",
                           [ranking])
            append(db, "context_rankings", ranked_rows, RANKINGS_SCHEMA)
            append(db, "packed_contexts", context_rows, CONTEXTS_SCHEMA)
    finally:
        db.unregister("_written")


def read_contexts(db: duckdb.DuckDBPyConnection, ranking: str) -> dict[tuple[str, str], str]:
    """Packed context text of every (role, question_id) under ``ranking``."""
    rows = db.execute("SELECT role, question_id, context FROM packed_contexts WHERE ranking = ?",
                      [ranking]).fetchall()
    return {(role, qid): context for role, qid, context in rows}


def retrieval_quality(db: duckdb.DuckDBPyConnection, ranking: str) -> dict[str, float | int]:
    """Recall@1/5/20 of the gold passage and its share in the packed context, with intervals.

    Over the validation questions whose set names a gold passage (stem_1k's ``Passage stem-1k
    NNNN`` pages); empty when there are none.
    """
    rows = db.execute("""
        SELECT q.id, q.gold_title, c.titles,
               list(r.title ORDER BY r.rank) FILTER (WHERE r.title IS NOT NULL) AS ranked
        FROM questions q
        JOIN packed_contexts c ON c.role = q.role AND c.question_id = q.id AND c.ranking = ?
        LEFT JOIN context_rankings r
            ON r.role = q.role AND r.question_id = q.id AND r.ranking = c.ranking
        WHERE q.role = 'validation' AND q.gold_title IS NOT NULL
        GROUP BY q.id, q.gold_title, c.titles""", [ranking]).fetchall()
    if not rows:
        return {}
    golds = [r[1] for r in rows]
    rankings = [r[3] or [] for r in rows]
    quality: dict[str, float | int] = {"gold_questions": len(rows)}
    for k in RECALL_AT:
        quality[f"recall_at_{k}"] = round(estimate(recall_hits(rankings, golds, k)).value, 4)
    in_context = estimate(gold_in_context([r[2] or [] for r in rows], golds))
    quality["gold_in_context"] = round(in_context.value, 4)
    quality["gold_in_context_low"] = round(in_context.low, 4)
    quality["gold_in_context_high"] = round(in_context.high, 4)
    return quality


def gold_in_candidates(db: duckdb.DuckDBPyConnection) -> tuple[float | None, int]:
    """Share of the validation questions with a gold passage that have it among their
    candidates, and how many such questions there are (None when there are none)."""
    share, questions = db.execute("""
        SELECT avg(CASE WHEN EXISTS (SELECT 1 FROM candidate_passages c
            WHERE c.role = q.role AND c.question_id = q.id AND c.title = q.gold_title)
            THEN 1.0 ELSE 0.0 END), count(*)
        FROM questions q WHERE q.role = 'validation' AND q.gold_title IS NOT NULL
        """).fetchone()
    return share, questions


def gold_in_context_by_set(db: duckdb.DuckDBPyConnection, ranking: str
                           ) -> list[tuple[str, str, int, float]]:
    """Per role and question set, among the questions whose set records its source passage:
    how many there are and the share whose packed context under ``ranking`` holds it.

    This is what tells whether a role's questions can be answered from their contexts at all:
    a reader trained, or a blend fitted, on questions whose contexts miss their source learns
    noise.
    """
    return db.execute("""
        SELECT q.role, q.source, count(*),
               avg(CASE WHEN list_contains(c.titles, q.gold_title) THEN 1.0 ELSE 0.0 END)
        FROM questions q
        JOIN packed_contexts c ON c.role = q.role AND c.question_id = q.id AND c.ranking = ?
        WHERE q.gold_title IS NOT NULL
        GROUP BY q.role, q.source ORDER BY q.role, q.source""", [ranking]).fetchall()


def budget_check(ranking: str, roles: tuple[str, ...] | None, budget: int) -> Check:
    """Every question ``ranking`` ranks (``roles``; None: all) has a non-empty context within
    ``budget`` tokens."""
    ranked = "TRUE" if roles is None else f"q.role IN {tuple(roles)}"
    return Check("contexts_within_budget",
                 "Every question has a non-empty context within the token budget.", f"""
        SELECT q.role, q.id, c.tokens FROM questions q LEFT JOIN packed_contexts c
            ON c.role = q.role AND c.question_id = q.id AND c.ranking = '{ranking}'
        WHERE {ranked} AND (c.context IS NULL OR c.context = '' OR c.tokens > {budget})""",
                 "missing, empty or over-budget contexts")
