"""Retrieval assets: the lexical index, candidate passages and the context rankings."""

from collections.abc import Callable, Sequence
from typing import Any

import duckdb
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assets.checks import violations
from assets.corpus import wiki_chunks
from assets.incremental import Work, code_version, run_step, step_basis
from assets.questions import questions
from pipeline import contexts, question_work
from pipeline.answering import ranked_roles
from pipeline.candidates import VERSION_COLUMNS as CANDIDATE_COLUMNS
from pipeline.candidates import find_candidates, read_candidates
from pipeline.dense import DenseIndex
from pipeline.embeddings import embed_table_missing
from pipeline.models import ModelNotFoundError, ResolvedModel
from pipeline.passages import Passage
from pipeline.question_table import read_question_table
from pipeline.questions import Question
from pipeline.ranking import (
    RankedPassage,
    pack_context,
    question_text,
    rank_by_edit_distance,
    rank_by_search,
)
from pipeline.search.base import LexicalIndexError, sync_index
from pipeline.semantic import VectorCache, rank_all
from pipeline.tables import content_version, markdown_preview
from resources import ContextBudget, LexicalSearch, ModelStore, SentenceEmbedders, Warehouse

CODE_VERSION = code_version(__name__)


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


@asset(group_name="retrieval", deps=[wiki_chunks], code_version=CODE_VERSION)
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


def _resolve(embedders: SentenceEmbedders, role: str, models: ModelStore,
             context: AssetExecutionContext) -> ResolvedModel:
    try:
        return embedders.resolve(role, models, context.log.info)
    except ModelNotFoundError as exc:
        raise Failure(str(exc)) from exc


@asset(group_name="retrieval", deps=[wiki_chunks], code_version=CODE_VERSION)
def chunk_embeddings(context: AssetExecutionContext, warehouse: Warehouse,
                     embedders: SentenceEmbedders, models: ModelStore) -> MaterializeResult:
    """A vector of every chunk under the prompt embedder, for dense retrieval and the semantic
    ranking. Only chunk texts with no vector for that model yet are embedded."""
    model = _resolve(embedders, "prompt", models, context)
    key = embedders.key(model)
    with warehouse.get_connection() as db:

        def compute() -> Work:
            embedder = embedders.load(model)
            report = embed_table_missing(db, embedder, log=context.log.info)
            context.log.info(f"{embedder.key}: {report.computed} chunks embedded, "
                             f"{report.already_present} already had vectors")
            version = content_version(db, "(SELECT DISTINCT content_hash FROM wiki_chunks)",
                                      "content_hash")
            return Work(f"{embedder.key}|{version}", {
                "dimension": embedder.dimension,
                "chunks_embedded": report.computed,
                "chunks_already_embedded": report.already_present,
                "chunks_per_second": round(report.texts_per_second, 1)})

        def describe() -> dict[str, Any]:
            vectors = db.execute(
                "SELECT count(*) FROM text_embeddings WHERE model_key = ? AND content_hash IN "
                "(SELECT content_hash FROM wiki_chunks)", [key]).fetchone()[0]
            return {**model.metadata(), "model_key": key, "dagster/row_count": vectors}

        return run_step(context, db, None, compute, describe, {"model_key": key})


class CandidateConfig(Config):
    hits_per_query: int = Field(default=30, description="Chunks retrieved per query.")
    max_passages: int = Field(default=40, description="Lexical candidate passages kept per "
                              "question (dense ones come on top).")
    max_chunks_per_passage: int = Field(
        default=1, description="Longest run of neighbouring chunks merged into one passage. "
        "One keeps passages chunk-sized, so a short context holds several of them.")
    dense_k: int = Field(default=10, description="Chunks added per question by dense "
                         "retrieval with the prompt embedder (0: lexical only).")


@asset(group_name="retrieval", deps=[questions, lexical_index, chunk_embeddings, wiki_chunks],
       code_version=CODE_VERSION)
def candidate_passages(context: AssetExecutionContext, config: CandidateConfig,
                       warehouse: Warehouse, lexical_search: LexicalSearch,
                       embedders: SentenceEmbedders, models: ModelStore) -> MaterializeResult:
    """Per question: lexical hits of every prompt and option sentence (the 4th-place recipe),
    plus the chunks nearest the whole question, merged into passages of neighbouring chunks.
    Kept per question: only questions new or changed since the last run are retrieved."""
    dense_state = {"dense_model": embedders.key(_resolve(embedders, "prompt", models, context))
                   if config.dense_k else None}
    with warehouse.get_connection() as db:

        def compute() -> Work:
            asked = read_question_table(db)
            basis = step_basis(context, config, dense_state)
            wanted = {(role, q.id): question_work.question_key(basis, role, q)
                      for role, q in asked}
            todo = set(question_work.prune(db, ["candidate_passages"], wanted))
            asked = [(role, q) for role, q in asked if (role, q.id) in todo]
            dense_search = None
            if config.dense_k and asked:
                embedder = embedders.load(_resolve(embedders, "prompt", models, context))
                dense = DenseIndex(db, embedder.key)
                texts = VectorCache(db, embedder, context.log.info)

                def dense_search(batch):
                    return dense.search(texts.texts([question_text(q) for q in batch]),
                                        config.dense_k)
            try:
                with lexical_search.open() as index:
                    stats = find_candidates(
                        db, index.search_many, asked, hits_per_query=config.hits_per_query,
                        max_passages=config.max_passages,
                        max_chunks_per_passage=config.max_chunks_per_passage,
                        dense_search=dense_search, item_keys=wanted)
            except LexicalIndexError as exc:
                raise Failure(str(exc)) from exc
            context.log.info(f"{stats.queries} queries for {stats.questions} questions gave "
                             f"{stats.passages} passages in {stats.seconds:.1f}s; "
                             f"{len(wanted) - len(todo)} questions kept their candidates")
            return Work(_candidates_version(db), {
                "questions_retrieved": stats.questions,
                "questions_reused": len(wanted) - len(todo), "queries": stats.queries,
                "queries_per_second": round(stats.queries / max(stats.seconds, 1e-9), 1)})

        def describe() -> dict[str, Any]:
            rows, per_question = db.execute(
                "SELECT count(*), round(count(*) / count(DISTINCT (role, question_id)), 1) "
                "FROM candidate_passages").fetchone()
            gold, _ = contexts.gold_in_candidates(db)
            return {"dagster/row_count": rows, "passages_per_question": per_question,
                    "gold_in_candidates": round(gold, 4) if gold is not None else "n/a",
                    "preview": MetadataValue.md(markdown_preview(
                        db, "SELECT question_id, search_rank, title, text FROM "
                            "candidate_passages ORDER BY role, question_id, search_rank "
                            "LIMIT 5"))}

        return run_step(context, db, config, compute, describe, dense_state,
                        stored=lambda: _candidates_version(db))


def _candidates_version(db: duckdb.DuckDBPyConnection) -> str:
    return content_version(db, "candidate_passages", CANDIDATE_COLUMNS)


Ranker = Callable[[Question, Sequence[Passage]], list[RankedPassage]]
Key = tuple[str, str]
RankAll = Callable[[duckdb.DuckDBPyConnection, list[tuple[str, Question]],
                    dict[Key, list[Passage]]], dict[Key, list[RankedPassage]]]


def per_question(rank: Ranker) -> RankAll:
    """A ranking that looks at one question at a time."""
    def rank_all(_db, asked, candidates):
        return {(role, q.id): rank(q, candidates.get((role, q.id), [])) for role, q in asked}
    return rank_all


def materialize_ranking(context: AssetExecutionContext, ranking: str, rank_all: RankAll,
                        warehouse: Warehouse, budget: ContextBudget, models: ModelStore,
                        config: Config | None = None, state: dict[str, Any] | None = None,
                        metadata: dict[str, Any] | None = None) -> MaterializeResult:
    """Rank the candidates of every question new or changed since the last run, pack their
    contexts, store both, and report."""
    with warehouse.get_connection() as db:

        step_state = {"tokenizer": budget.tokenizer, "tokens": budget.tokens, **(state or {})}
        scope = f"ranking = '{ranking}'"

        def compute() -> Work:
            roles = ranked_roles(ranking)
            asked = [(role, q) for role, q in read_question_table(db)
                     if roles is None or role in roles]
            basis = step_basis(context, config, step_state,
                               per_question=("questions", "candidate_passages"))
            upstream = question_work.item_keys(db, "candidate_passages")
            wanted = {(role, q.id): question_work.derived_key(
                basis, upstream.get((role, q.id)) or question_work.question_key(basis, role, q))
                for role, q in asked}
            todo = set(question_work.prune(db, ["packed_contexts", "context_rankings"], wanted,
                                           scope))
            asked = [(role, q) for role, q in asked if (role, q.id) in todo]
            if asked:
                try:
                    count = budget.counter(models, context.log.info)
                except ModelNotFoundError as exc:
                    raise Failure(str(exc)) from exc
                ranked = rank_all(db, asked, read_candidates(db))
                contexts.write_ranking(
                    db, ranking, [(role, q.id, ranked[(role, q.id)],
                                   pack_context(ranked[(role, q.id)], count, budget.tokens))
                                  for role, q in asked], wanted)
            context.log.info(f"ranked {len(asked)} questions; {len(wanted) - len(asked)} kept "
                             "their ranking")
            return Work(_ranking_version(db, ranking), {
                "questions_ranked": len(asked), "questions_reused": len(wanted) - len(asked)})

        def describe() -> dict[str, Any]:
            tokens = db.execute("SELECT round(avg(tokens), 1) FROM packed_contexts "
                                "WHERE ranking = ?", [ranking]).fetchone()[0]
            by_set = contexts.gold_in_context_by_set(db, ranking)
            table = ["| role | question set | questions with a source passage | gold in "
                     "context |", "|---|---|---|---|"] + [
                f"| {role} | {source} | {n} | {share:.3f} |" for role, source, n, share in by_set]
            return {**contexts.retrieval_quality(db, ranking), **(metadata or {}),
                    **{f"gold_in_context_{role}_{source}": round(share, 4)
                       for role, source, _, share in by_set},
                    "gold_in_context_by_role_and_set": MetadataValue.md("\n".join(table)),
                    "mean_context_tokens": tokens, "token_budget": budget.tokens,
                    "tokenizer": budget.tokenizer,
                    "preview": MetadataValue.md(markdown_preview(
                        db, f"SELECT question_id, titles, context FROM packed_contexts "
                            f"WHERE ranking = '{ranking}' ORDER BY role, question_id LIMIT 3",
                        width=200))}

        return run_step(context, db, config, compute, describe, step_state,
                        stored=lambda: _ranking_version(db, ranking))


def _ranking_version(db: duckdb.DuckDBPyConnection, ranking: str) -> str:
    return content_version(db, f"(SELECT * FROM packed_contexts WHERE ranking = '{ranking}')",
                           "role, question_id, context")


@asset(group_name="rankings", deps=[candidate_passages, questions], code_version=CODE_VERSION)
def ranking_es(context: AssetExecutionContext, warehouse: Warehouse,
               context_budget: ContextBudget, models: ModelStore) -> MaterializeResult:
    """Candidates by search score: the lexical index's own order."""
    return materialize_ranking(context, "es", per_question(lambda _, ps: rank_by_search(ps)),
                               warehouse, context_budget, models)


@asset(group_name="rankings", deps=[candidate_passages, questions], code_version=CODE_VERSION)
def ranking_edit_distance(context: AssetExecutionContext, warehouse: Warehouse,
                          context_budget: ContextBudget, models: ModelStore
                          ) -> MaterializeResult:
    """Candidates by normalised word-level edit distance to the question (prompt + options)."""
    return materialize_ranking(context, "edit_distance", per_question(rank_by_edit_distance),
                               warehouse, context_budget, models)


class SemanticConfig(Config):
    rerank_top: int = Field(
        default=5, description="Passages, best by prompt similarity, that the option embedder "
        "re-scores; the heavier model sees only these.")
    prompt_weight: float = Field(default=0.5, description="Weight of prompt-passage against "
                                 "the mean option-passage similarity.")


@asset(group_name="rankings", deps=[candidate_passages, chunk_embeddings, questions],
       code_version=CODE_VERSION)
def ranking_semantic(context: AssetExecutionContext, config: SemanticConfig,
                     warehouse: Warehouse, context_budget: ContextBudget, models: ModelStore,
                     embedders: SentenceEmbedders) -> MaterializeResult:
    """Candidates by cosine similarity: prompt-passage with the prompt embedder, options-passage
    with the option embedder on the best few (see :mod:`pipeline.semantic`)."""
    prompt_model = _resolve(embedders, "prompt", models, context)
    option_model = _resolve(embedders, "option", models, context)

    def rank(db, asked, candidates):
        prompt = VectorCache(db, embedders.load(prompt_model), context.log.info)
        option = VectorCache(db, embedders.load(option_model), context.log.info)
        ranked = rank_all(asked, candidates, prompt, option, rerank_top=config.rerank_top,
                          prompt_weight=config.prompt_weight)
        context.log.info(f"embedded {prompt.computed} texts with {prompt.embedder.key} and "
                         f"{option.computed} with {option.embedder.key}")
        return ranked

    models_used = {f"prompt_{k}": v for k, v in prompt_model.metadata().items()}
    models_used |= {f"option_{k}": v for k, v in option_model.metadata().items()}
    return materialize_ranking(
        context, "semantic", rank, warehouse, context_budget, models, config,
        {"prompt_key": embedders.key(prompt_model), "option_key": embedders.key(option_model)},
        models_used)


@asset_check(asset=lexical_index, description="The index holds exactly the chunks of wiki_chunks.")
def index_matches_chunks(warehouse: Warehouse) -> AssetCheckResult:
    return violations(warehouse, """
        WITH latest AS (SELECT index_key FROM lexical_indexes ORDER BY synced_at DESC LIMIT 1),
             held AS (SELECT chunk_id, content_hash FROM indexed_chunks
                      WHERE index_key = (SELECT index_key FROM latest))
        (SELECT chunk_id, content_hash FROM wiki_chunks EXCEPT SELECT * FROM held)
        UNION ALL (SELECT * FROM held EXCEPT SELECT chunk_id, content_hash FROM wiki_chunks)""",
        "chunks missing from the index, stale, or indexed but gone")


@asset_check(asset=candidate_passages, description="Every question has candidate passages.")
def every_question_has_candidates(warehouse: Warehouse) -> AssetCheckResult:
    return violations(warehouse, "SELECT q.role, q.id FROM questions q ANTI JOIN "
                       "candidate_passages c ON c.role = q.role AND c.question_id = q.id",
                       "questions without candidates")


def _context_check(ranking_asset, ranking: str):
    @asset_check(asset=ranking_asset, name="contexts_within_budget",
                 description="Every question has a non-empty context within the token budget.")
    def check(warehouse: Warehouse, context_budget: ContextBudget) -> AssetCheckResult:
        roles = ranked_roles(ranking)
        ranked = "TRUE" if roles is None else f"q.role IN {tuple(roles)}"
        return violations(warehouse, f"""
            SELECT q.role, q.id, c.tokens FROM questions q LEFT JOIN packed_contexts c
                ON c.role = q.role AND c.question_id = q.id AND c.ranking = '{ranking}'
            WHERE {ranked} AND (c.context IS NULL OR c.context = ''
                                OR c.tokens > {context_budget.tokens})""",
            "missing, empty or over-budget contexts")
    return check


retrieval_checks = [
    index_matches_chunks, every_question_has_candidates,
    _context_check(ranking_es, "es"), _context_check(ranking_edit_distance, "edit_distance"),
    _context_check(ranking_semantic, "semantic"),
]
