"""The retrieval stage's three steps: keep the lexical index in line with the chunks, embed
the chunks, and find each question's candidate passages; each says what it did and describes
what it left, for whoever runs it (the Dagster assets in ``assets/retrieval.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import duckdb
import numpy as np

from pipeline.questions import work_keys
from pipeline.questions.question import Question
from pipeline.questions.question_table import read_question_table
from pipeline.rankings import context_table
from pipeline.rankings.orders import question_text
from pipeline.rankings.semantic import VectorCache
from pipeline.retrieval import embeddings
from pipeline.retrieval.candidates import VERSION_COLUMNS as CANDIDATE_COLUMNS
from pipeline.retrieval.candidates import find_candidates
from pipeline.retrieval.dense import DenseIndex
from pipeline.retrieval.embeddings import Embedder, embed_table_missing
from pipeline.retrieval.search.base import LexicalIndex, LexicalIndexError
from pipeline.retrieval.search.elastic_vectors import ElasticsearchVectors, sync_vectors
from pipeline.retrieval.search.sync import sync_index
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import content_version, markdown_preview, row_count

OpenIndex = Callable[[], AbstractContextManager[LexicalIndex]]


class VectorIndex(Protocol):
    """Dense search over chunk vectors: exact in the warehouse (:class:`DenseIndex`) or kNN in
    Elasticsearch (:class:`ElasticsearchVectors`), with cosine similarities either way."""

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]: ...


def index_state(open_index: OpenIndex) -> dict[str, Any]:
    """Which generation the index serves: a deleted or replaced index must be rebuilt even when
    nothing upstream changed. Not where it is (its key names the generation, unique to one
    build): a moved working area keeps its index."""
    try:
        with open_index() as index:
            return {"index_key": index.key()}
    except LexicalIndexError as exc:
        raise StepError(str(exc)) from exc


def build_index(db: duckdb.DuckDBPyConnection, open_index: OpenIndex, where: str,
                batch_size: int, rebuild: bool, log: Callable[[str], None] = print) -> Work:
    """Send new or changed chunks to the index and delete those that left the corpus."""
    try:
        with open_index() as index:
            sync = sync_index(db, index, batch_size=batch_size, rebuild=rebuild)
    except LexicalIndexError as exc:
        raise StepError(str(exc)) from exc
    log(f"{where}: {sync.indexed} indexed, {sync.deleted} deleted, {sync.unchanged} unchanged"
        + (f" (full build: {sync.reason})" if sync.rebuilt else ""))
    quoted = sync.index_key.replace("'", "''")
    records = content_version(db, f"(SELECT * FROM indexed_chunks WHERE index_key = '{quoted}')",
                              "chunk_id, content_hash")
    return Work(f"{sync.index_key}|{records}", {
        "rebuilt": sync.rebuilt, "rebuild_reason": sync.reason or "none",
        "chunks_indexed": sync.indexed, "chunks_deleted": sync.deleted,
        "chunks_unchanged": sync.unchanged,
        "documents_per_second": round(sync.indexed / max(sync.seconds, 1e-9), 1)})


def describe_index(db: duckdb.DuckDBPyConnection, where: str) -> dict[str, Any]:
    key = db.execute("SELECT index_key FROM lexical_indexes ORDER BY synced_at DESC LIMIT 1"
                     ).fetchone()
    documents = db.execute("SELECT count(*) FROM indexed_chunks WHERE index_key = ?",
                           [key[0] if key else None]).fetchone()[0]
    return {"index": where, "index_key": key[0] if key else "none", "row_count": documents}


def embed_chunks(db: duckdb.DuckDBPyConnection, embedder: Embedder,
                 log: Callable[[str], None] = print,
                 vectors: ElasticsearchVectors | None = None) -> Work:
    """A vector of every chunk text that has none under ``embedder`` yet; with ``vectors``,
    the cluster's vector index brought in line too (new and changed chunks written, gone ones
    deleted)."""
    report = embed_table_missing(db, embedder, log=log)
    log(f"{embedder.key}: {report.computed} chunks embedded, {report.already_present} already "
        "had vectors")
    version = content_version(db, "(SELECT DISTINCT content_hash FROM wiki_chunks)",
                              "content_hash")
    synced: dict[str, Any] = {}
    if vectors is not None:
        with vectors:
            synced = {"vector_index": vectors.name, **sync_vectors(db, vectors, embedder.key)}
        log(f"{vectors.name}: {synced['vectors_written']} vectors written, "
            f"{synced['vectors_deleted']} deleted")
    return Work(f"{embedder.key}|{version}" + (f"|{vectors.name}" if vectors else ""), {
        "dimension": embedder.dimension, "chunks_embedded": report.computed,
        "chunks_already_embedded": report.already_present,
        "chunks_per_second": round(report.texts_per_second, 1), **synced})


def vector_state(vectors: ElasticsearchVectors | None) -> dict[str, Any]:
    """Which vector index serves dense retrieval and how many vectors it holds: an index
    deleted on the cluster is written again although nothing upstream changed."""
    if vectors is None:
        return {"vectors": "warehouse"}
    with vectors:
        return {"vectors": vectors.name, "held": vectors.count() if vectors.exists() else None}


def skip_whole_corpus(db: duckdb.DuckDBPyConnection, model_key: str) -> Work:
    """The large-corpus configuration: no vector of the whole corpus. The semantic ranking
    embeds only each question's candidates (through the embedding cache), at about a second
    per 40 chunks on a CPU instead of tens of days for full Wikipedia."""
    version = content_version(db, "(SELECT DISTINCT content_hash FROM wiki_chunks)",
                              "content_hash")
    return Work(f"{model_key}|candidates only|{version}",
                {"whole_corpus": False, "chunks_embedded": 0})


def chunks_without_vectors(db: duckdb.DuckDBPyConnection, model_key: str) -> int:
    """Distinct chunk texts with no vector under ``model_key``."""
    embeddings.ensure_schema(db)
    return db.execute("SELECT count(*) FROM (SELECT DISTINCT content_hash FROM wiki_chunks) c "
                      "ANTI JOIN text_embeddings e ON e.content_hash = c.content_hash "
                      "AND e.model_key = ?", [model_key]).fetchone()[0]


def describe_embeddings(db: duckdb.DuckDBPyConnection, model_key: str) -> dict[str, Any]:
    embeddings.ensure_schema(db)
    vectors = db.execute("SELECT count(*) FROM text_embeddings WHERE model_key = ? AND "
                         "content_hash IN (SELECT content_hash FROM wiki_chunks)",
                         [model_key]).fetchone()[0]
    return {"model_key": model_key, "row_count": vectors}


def retrieve(db: duckdb.DuckDBPyConnection, open_index: OpenIndex, basis: str, *,
             hits_per_query: int, max_passages: int, max_chunks_per_passage: int,
             dense_k: int, dense_embedder: Callable[[], Embedder] | None,
             vector_index: Callable[[str], VectorIndex] | None = None,
             log: Callable[[str], None] = print) -> Work:
    """Candidate passages of the questions whose rows ``basis`` (what every question's rows
    depend on alike) no longer matches; the others keep theirs."""
    asked = read_question_table(db)
    wanted = {(role, q.id): work_keys.question_key(basis, role, q) for role, q in asked}
    todo = set(work_keys.prune(db, ["candidate_passages"], wanted))
    asked = [(role, q) for role, q in asked if (role, q.id) in todo]
    dense_search = None
    if dense_k and asked and dense_embedder is not None:
        embedder = dense_embedder()
        if missing := chunks_without_vectors(db, embedder.key):
            # An exact search over part of the corpus would miss chunks without saying so.
            raise StepError(
                f"dense retrieval (candidate_passages.dense_k: {dense_k}) searches every "
                f"chunk's vector, and {missing} chunk texts have none under {embedder.key}: "
                "set chunk_embeddings.whole_corpus: true, or dense_k: 0 (the large-corpus "
                "configuration, config/large_corpus.yaml)")
        dense = DenseIndex(db, embedder.key) if vector_index is None else vector_index(
            embedder.key)
        texts = VectorCache(db, embedder, log)

        def dense_search(batch: Sequence[Question]) -> list[list[tuple[str, float]]]:
            return dense.search(texts.texts([question_text(q) for q in batch]), dense_k)
    try:
        with open_index() as index:
            stats = find_candidates(
                db, index.search_many, asked, hits_per_query=hits_per_query,
                max_passages=max_passages, max_chunks_per_passage=max_chunks_per_passage,
                dense_search=dense_search, item_keys=wanted)
    except LexicalIndexError as exc:
        raise StepError(str(exc)) from exc
    reused = len(wanted) - len(todo)
    log(f"{stats.queries} queries for {stats.questions} questions gave {stats.passages} "
        f"passages in {stats.seconds:.1f}s; {reused} questions kept their candidates")
    return Work(candidates_version(db), {
        "questions_retrieved": stats.questions, "questions_reused": reused,
        "queries": stats.queries,
        "queries_per_second": round(stats.queries / max(stats.seconds, 1e-9), 1)})


def candidates_version(db: duckdb.DuckDBPyConnection) -> str:
    return content_version(db, "candidate_passages", CANDIDATE_COLUMNS)


def describe_candidates(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    rows = row_count(db, "candidate_passages")
    per_question = db.execute("SELECT round(count(*) / count(DISTINCT (role, question_id)), 1) "
                              "FROM candidate_passages").fetchone()[0]
    gold, _ = context_table.gold_in_candidates(db)
    return {"row_count": rows, "passages_per_question": per_question,
            "gold_in_candidates": round(gold, 4) if gold is not None else "n/a",
            "preview": Markdown(markdown_preview(
                db, "SELECT question_id, search_rank, title, text FROM candidate_passages "
                    "ORDER BY role, question_id, search_rank LIMIT 5"))}
