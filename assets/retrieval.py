"""Retrieval assets: the lexical index, candidate passages and the context rankings."""

from collections.abc import Callable, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.corpus import wiki_chunks
from assets.incremental import Work, run_step
from assets.questions import questions
from pipeline import contexts
from pipeline.candidates import VERSION_COLUMNS as CANDIDATE_COLUMNS
from pipeline.candidates import find_candidates, read_candidates
from pipeline.models import ModelNotFoundError
from pipeline.passages import Passage
from pipeline.question_table import read_question_table
from pipeline.questions import Question
from pipeline.ranking import RankedPassage, pack_context, rank_by_edit_distance, rank_by_search
from pipeline.search.base import LexicalIndexError, sync_index
from pipeline.tables import content_version, markdown_preview
from resources import ContextBudget, LexicalSearch, ModelStore, Warehouse


class IndexConfig(Config):
    batch_size: int = Field(default=1000, description="Chunks sent to the index per batch.")
    rebuild: bool = Field(default=False, description="Build a new index and switch to it, "
                          "even if the current one could be updated in place.")


def _index_state(lexical_search: LexicalSearch) -> dict[str, Any]:
    """Where the index is and which generation it serves: a deleted or replaced index must be
    rebuilt even when nothing upstream changed."""
    try:
        with lexical_search.open() as index:
            key = index.key()
    except LexicalIndexError as exc:
        raise Failure(str(exc)) from exc
    return {"index": lexical_search.describe(), "index_key": key}


@asset(group_name="retrieval", deps=[wiki_chunks], code_version="1")
def lexical_index(context: AssetExecutionContext, config: IndexConfig, warehouse: Warehouse,
                  lexical_search: LexicalSearch) -> MaterializeResult:
    """BM25 index of every chunk: embedded tantivy by default, or an Elasticsearch cluster.

    Only new or changed chunks are sent; chunks that left the corpus are deleted.
    """
    with warehouse.get_connection() as db:

        def compute() -> Work:
            try:
                with lexical_search.open() as index:
                    sync = sync_index(db, index, batch_size=config.batch_size,
                                      rebuild=config.rebuild)
            except LexicalIndexError as exc:
                raise Failure(str(exc)) from exc
            context.log.info(f"{lexical_search.describe()}: {sync.indexed} indexed, "
                             f"{sync.deleted} deleted, {sync.unchanged} unchanged"
                             + (f" (full build: {sync.reason})" if sync.rebuilt else ""))
            return Work(_index_version(db, sync.index_key), {
                "rebuilt": sync.rebuilt, "rebuild_reason": sync.reason or "none",
                "chunks_indexed": sync.indexed, "chunks_deleted": sync.deleted,
                "chunks_unchanged": sync.unchanged,
                "documents_per_second": round(sync.indexed / max(sync.seconds, 1e-9), 1)})

        def describe() -> dict[str, Any]:
            key = db.execute("SELECT index_key FROM lexical_indexes ORDER BY synced_at DESC "
                             "LIMIT 1").fetchone()
            documents = db.execute("SELECT count(*) FROM indexed_chunks WHERE index_key = ?",
                                   [key[0] if key else None]).fetchone()[0]
            return {"index": lexical_search.describe(), "index_key": key[0] if key else "none",
                    "dagster/row_count": documents}

        return run_step(context, db, config, compute, describe,
                        lambda: _index_state(lexical_search))


def _index_version(db, index_key: str) -> str:
    quoted = index_key.replace("'", "''")
    records = content_version(
        db, f"(SELECT * FROM indexed_chunks WHERE index_key = '{quoted}')",
        "chunk_id, content_hash")
    return f"{index_key}|{records}"


class CandidateConfig(Config):
    hits_per_query: int = Field(default=10, description="Chunks retrieved per query.")
    max_passages: int = Field(default=20, description="Candidate passages kept per question.")
    max_chunks_per_passage: int = Field(
        default=3, description="Longest run of neighbouring chunks merged into one passage, "
        "so that one article cannot fill a whole context.")


@asset(group_name="retrieval", deps=[questions, lexical_index, wiki_chunks], code_version="1")
def candidate_passages(context: AssetExecutionContext, config: CandidateConfig,
                       warehouse: Warehouse, lexical_search: LexicalSearch) -> MaterializeResult:
    """Per question: lexical hits of every prompt and option sentence, merged into passages of
    neighbouring chunks (the 4th-place recipe)."""
    with warehouse.get_connection() as db:

        def compute() -> Work:
            asked = read_question_table(db)
            try:
                with lexical_search.open() as index:
                    stats = find_candidates(
                        db, index.search_many, asked, hits_per_query=config.hits_per_query,
                        max_passages=config.max_passages,
                        max_chunks_per_passage=config.max_chunks_per_passage)
            except LexicalIndexError as exc:
                raise Failure(str(exc)) from exc
            context.log.info(f"{stats.queries} queries for {stats.questions} questions gave "
                             f"{stats.passages} passages in {stats.seconds:.1f}s")
            return Work(content_version(db, "candidate_passages", CANDIDATE_COLUMNS), {
                "questions": stats.questions, "queries": stats.queries,
                "queries_per_second": round(stats.queries / max(stats.seconds, 1e-9), 1)})

        def describe() -> dict[str, Any]:
            rows, per_question = db.execute(
                "SELECT count(*), round(count(*) / count(DISTINCT (role, question_id)), 1) "
                "FROM candidate_passages").fetchone()
            gold = db.execute("""
                SELECT avg(CASE WHEN EXISTS (SELECT 1 FROM candidate_passages c
                    WHERE c.role = q.role AND c.question_id = q.id AND c.title = q.gold_title)
                    THEN 1.0 ELSE 0.0 END)
                FROM questions q WHERE q.role = 'validation' AND q.gold_title IS NOT NULL
                """).fetchone()[0]
            return {"dagster/row_count": rows, "passages_per_question": per_question,
                    "gold_in_candidates": round(gold, 4) if gold is not None else "n/a",
                    "preview": MetadataValue.md(markdown_preview(
                        db, "SELECT question_id, search_rank, title, text FROM "
                            "candidate_passages ORDER BY role, question_id, search_rank "
                            "LIMIT 5"))}

        return run_step(context, db, config, compute, describe)


Ranker = Callable[[Question, Sequence[Passage]], list[RankedPassage]]


def materialize_ranking(context: AssetExecutionContext, ranking: str, rank: Ranker,
                        warehouse: Warehouse, budget: ContextBudget, models: ModelStore,
                        state: dict[str, Any] | None = None) -> MaterializeResult:
    """Rank every question's candidates with ``rank``, pack contexts, store both, report."""
    with warehouse.get_connection() as db:

        def compute() -> Work:
            try:
                count = budget.counter(models, context.log.info)
            except ModelNotFoundError as exc:
                raise Failure(str(exc)) from exc
            candidates = read_candidates(db)
            results = []
            for role, question in read_question_table(db):
                ranked = rank(question, candidates.get((role, question.id), []))
                results.append((role, question.id, ranked,
                                pack_context(ranked, count, budget.tokens)))
            contexts.write_ranking(db, ranking, results)
            return Work(content_version(
                db, f"(SELECT * FROM packed_contexts WHERE ranking = '{ranking}')",
                "role, question_id, context"), {"questions": len(results)})

        def describe() -> dict[str, Any]:
            tokens = db.execute("SELECT round(avg(tokens), 1) FROM packed_contexts "
                                "WHERE ranking = ?", [ranking]).fetchone()[0]
            return {**contexts.retrieval_quality(db, ranking),
                    "mean_context_tokens": tokens, "token_budget": budget.tokens,
                    "tokenizer": budget.tokenizer,
                    "preview": MetadataValue.md(markdown_preview(
                        db, f"SELECT question_id, titles, context FROM packed_contexts "
                            f"WHERE ranking = '{ranking}' ORDER BY role, question_id LIMIT 3",
                        width=200))}

        return run_step(context, db, None, compute, describe,
                        {"tokenizer": budget.tokenizer, "tokens": budget.tokens,
                         **(state or {})})


@asset(group_name="rankings", deps=[candidate_passages, questions], code_version="1")
def ranking_es(context: AssetExecutionContext, warehouse: Warehouse,
               context_budget: ContextBudget, models: ModelStore) -> MaterializeResult:
    """Candidates by search score: the lexical index's own order."""
    return materialize_ranking(context, "es", lambda _, passages: rank_by_search(passages),
                               warehouse, context_budget, models)


@asset(group_name="rankings", deps=[candidate_passages, questions], code_version="1")
def ranking_edit_distance(context: AssetExecutionContext, warehouse: Warehouse,
                          context_budget: ContextBudget, models: ModelStore
                          ) -> MaterializeResult:
    """Candidates by normalised word-level edit distance to the question (prompt + options)."""
    return materialize_ranking(context, "edit_distance", rank_by_edit_distance, warehouse,
                               context_budget, models)
