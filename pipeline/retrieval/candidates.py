"""Candidate passages per question: the 4th-place retrieval, stored in ``candidate_passages``.

Each question's prompt and options are split into sentences, each sentence becomes a query of
its de-duplicated, stop-word-filtered words (:mod:`pipeline.retrieval.queries`), every query goes
to the lexical index, and the hits of all of a question's queries are merged into passages of
neighbouring chunks (:mod:`pipeline.retrieval.passages`).

Dense retrieval, when given, adds the chunks nearest to the whole question under a sentence
embedder. They join the lexical hits before merging, with no search score of their own: the
search order stays BM25's, the ``max_passages`` lexical passages come first, and the passages
only dense retrieval found follow them. Questions whose wording shares few rare words with their
source passage are the ones it rescues.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.questions.question import Question
from pipeline.retrieval.passages import Passage, chunk_rows, collect_passages
from pipeline.retrieval.queries import build_queries
from pipeline.tables import Check, append, transaction

DDL = """role VARCHAR, question_id VARCHAR, search_rank INTEGER, passage_id VARCHAR,
    page_id BIGINT, title VARCHAR, chunk_ids VARCHAR[], char_start INTEGER, char_end INTEGER,
    text VARCHAR, score DOUBLE, query_hits INTEGER, item_key VARCHAR"""
SCHEMA = pa.schema([
    ("role", pa.string()), ("question_id", pa.string()), ("search_rank", pa.int32()),
    ("passage_id", pa.string()), ("page_id", pa.int64()), ("title", pa.string()),
    ("chunk_ids", pa.list_(pa.string())), ("char_start", pa.int32()), ("char_end", pa.int32()),
    ("text", pa.string()), ("score", pa.float64()), ("query_hits", pa.int32()),
    ("item_key", pa.string()),
])
VERSION_COLUMNS = "role, question_id, search_rank, passage_id, text, score"

SearchMany = Callable[[Sequence[str], int], list[list[tuple[str, float]]]]
DenseSearch = Callable[[Sequence[Question]], Sequence[list[tuple[str, float]]]]
DENSE_KEY = "dense"


@dataclass
class CandidateStats:
    questions: int = 0
    queries: int = 0
    passages: int = 0
    seconds: float = 0.0


def find_candidates(db: duckdb.DuckDBPyConnection, search_many: SearchMany,
                    questions: Sequence[tuple[str, Question]], *, hits_per_query: int = 10,
                    max_passages: int = 20, max_chunks_per_passage: int | None = 4,
                    dense_search: DenseSearch | None = None,
                    batch_questions: int = 64,
                    item_keys: Mapping[tuple[str, str], str] | None = None) -> CandidateStats:
    """Retrieve the candidate passages of the given (role, question)s and store them, replacing
    those questions' rows (other questions' rows stay: see :mod:`pipeline.questions.work_keys`).

    Questions go to the index in batches (one ``search_many`` call each, and one
    ``dense_search`` call if given), and only the hit chunks are read back from ``wiki_chunks``.
    ``item_keys`` gives the item key each question's rows carry.
    """
    started = time.perf_counter()
    stats = CandidateStats()
    db.execute(f"CREATE TABLE IF NOT EXISTS candidate_passages ({DDL})")
    db.execute("ALTER TABLE candidate_passages ADD COLUMN IF NOT EXISTS item_key VARCHAR")
    db.execute(f"CREATE OR REPLACE TABLE staging_candidates ({DDL})")
    db.execute("CREATE OR REPLACE TABLE staging_questions (role VARCHAR, id VARCHAR)")
    try:
        if questions:
            db.executemany("INSERT INTO staging_questions VALUES (?, ?)",
                           [[role, question.id] for role, question in questions])
        for start in range(0, len(questions), batch_questions):
            batch = questions[start:start + batch_questions]
            queries = [build_queries(question) for _, question in batch]
            flat = [query for per_question in queries for query in per_question]
            results = search_many([query.text for query in flat], hits_per_query)
            hits = dict(zip((query.key for query in flat), results, strict=True))
            dense = (list(dense_search([q for _, q in batch])) if dense_search
                     else [[] for _ in batch])
            rows = _chunk_rows(db, {chunk_id for found in [*results, *dense]
                                    for chunk_id, _ in found})
            columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
            for (role, question), question_queries, nearest in zip(batch, queries, dense,
                                                                    strict=True):
                passages = _passages({q.key: hits[q.key] for q in question_queries}, nearest,
                                     rows, max_passages, max_chunks_per_passage)
                _add(columns, role, question.id, passages,
                     (item_keys or {}).get((role, question.id)))
            append(db, "staging_candidates", columns, SCHEMA)
            stats.questions += len(batch)
            stats.queries += len(flat)
            stats.passages += len(columns["passage_id"])
        with transaction(db):
            db.execute("DELETE FROM candidate_passages c WHERE EXISTS (SELECT 1 FROM "
                       "staging_questions s WHERE s.role = c.role AND s.id = c.question_id)")
            db.execute("INSERT INTO candidate_passages BY NAME SELECT * FROM "
                       "staging_candidates ORDER BY role, question_id, search_rank")
    finally:
        db.execute("DROP TABLE IF EXISTS staging_candidates")
        db.execute("DROP TABLE IF EXISTS staging_questions")
    stats.seconds = time.perf_counter() - started
    return stats


def _passages(lexical: dict[str, list[tuple[str, float]]], dense: list[tuple[str, float]],
              rows: dict, max_passages: int, max_chunks: int | None) -> list[Passage]:
    """The best ``max_passages`` lexical passages, then the other passages dense retrieval hit."""
    dense_ids = {chunk_id for chunk_id, _ in dense}
    merged = collect_passages({**lexical, DENSE_KEY: [(c, 0.0) for c in dense_ids]}, rows,
                              max_passages=None, max_chunks_per_passage=max_chunks)
    found = [p for p in merged if p.score > 0][:max_passages]
    kept = {p.passage_id for p in found}
    extra = [p for p in merged
             if p.passage_id not in kept and dense_ids.intersection(p.chunk_ids)]
    return found + extra


def _chunk_rows(db: duckdb.DuckDBPyConnection, chunk_ids: set[str]) -> dict:
    if not chunk_ids:
        return {}
    cursor = db.execute(
        "SELECT chunk_id, page_id, title, ordinal, text, char_start, char_end FROM wiki_chunks "
        "WHERE chunk_id IN (SELECT unnest(?))", [sorted(chunk_ids)])
    names = [d[0] for d in cursor.description]
    return chunk_rows(dict(zip(names, row, strict=True)) for row in cursor.fetchall())


def _add(columns: dict[str, list[Any]], role: str, question_id: str,
         passages: Sequence[Passage], item_key: str | None) -> None:
    for rank, p in enumerate(passages):
        for name, value in (("role", role), ("question_id", question_id), ("search_rank", rank),
                            ("passage_id", p.passage_id), ("page_id", p.page_id),
                            ("title", p.title), ("chunk_ids", list(p.chunk_ids)),
                            ("char_start", p.char_start), ("char_end", p.char_end),
                            ("text", p.text), ("score", p.score),
                            ("query_hits", p.query_hits), ("item_key", item_key)):
            columns[name].append(value)


def read_candidates(db: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[Passage]]:
    """Every question's candidates in search order, keyed by (role, question_id)."""
    rows = db.execute(
        "SELECT role, question_id, passage_id, page_id, title, chunk_ids, char_start, char_end, "
        "text, score, query_hits FROM candidate_passages ORDER BY role, question_id, search_rank"
    ).fetchall()
    out: dict[tuple[str, str], list[Passage]] = {}
    for r in rows:
        out.setdefault((r[0], r[1]), []).append(Passage(
            passage_id=r[2], page_id=r[3], title=r[4], chunk_ids=tuple(r[5]), char_start=r[6],
            char_end=r[7], text=r[8], score=r[9], query_hits=r[10]))
    return out


CHECKS = (
    Check("every_question_has_candidates", "Every question has candidate passages.",
          "SELECT q.role, q.id FROM questions q ANTI JOIN candidate_passages c "
          "ON c.role = q.role AND c.question_id = q.id", "questions without candidates",
          blocking=False),  # such a question is read with an empty context, not a broken one
)
