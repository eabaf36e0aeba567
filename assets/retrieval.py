"""Retrieval assets: the lexical index, the chunk embeddings and each question's candidate
passages (:mod:`pipeline.retrieval`)."""

from dagster import (
    AssetExecutionContext,
    Config,
    MaterializeResult,
)
from pydantic import Field

from assets.checks import table_checks
from assets.corpus import wiki_chunks
from assets.incremental import run_step, step_basis, versioned_asset
from assets.questions import questions
from pipeline.retrieval import candidates, retrieval_steps
from pipeline.retrieval.search import sync
from resources import (
    WAREHOUSE_POOL,
    LexicalSearch,
    ModelStore,
    SentenceEmbedders,
    VectorSearch,
    Warehouse,
)


class IndexConfig(Config):
    batch_size: int = Field(default=1000, description="Chunks sent to the index per batch.")
    rebuild: bool = Field(default=False, description="Build a new index and switch to it, "
                          "even if the current one could be updated in place.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="retrieval", deps=[wiki_chunks], kinds={"tantivy", "elasticsearch"})
def lexical_index(context: AssetExecutionContext, config: IndexConfig, warehouse: Warehouse,
                  lexical_search: LexicalSearch) -> MaterializeResult:
    """BM25 index of every chunk: embedded tantivy by default (nothing to start), or an
    Elasticsearch cluster (`SEARCH_BACKEND=elasticsearch`). Only new or changed chunks are
    sent; chunks that left the corpus are deleted; a deleted index is rebuilt."""
    where = lexical_search.describe()
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: retrieval_steps.build_index(
                db, lexical_search.open, where, config.batch_size, config.rebuild,
                context.log.info),
            describe=lambda: retrieval_steps.describe_index(db, where),
            state=lambda: retrieval_steps.index_state(lexical_search.open))


class EmbeddingsConfig(Config):
    whole_corpus: bool = Field(
        default=True, description="Embed every chunk (dense retrieval needs it). False is the "
        "large-corpus configuration: only the candidates of each question are embedded, by the "
        "semantic ranking; set candidate_passages.dense_k to 0 with it.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="retrieval", deps=[wiki_chunks], kinds={"duckdb", "pytorch"})
def chunk_embeddings(context: AssetExecutionContext, config: EmbeddingsConfig,
                     warehouse: Warehouse, embedders: SentenceEmbedders, models: ModelStore,
                     vector_search: VectorSearch) -> MaterializeResult:
    """A vector of every chunk under the prompt embedder, for dense retrieval and the semantic
    ranking; only chunk texts with no vector for that model yet are embedded. With
    `VectorSearch(backend="elasticsearch")` they are written to a cluster's kNN index too. Off
    for a large corpus (`whole_corpus: false`): the semantic ranking embeds candidates alone."""
    model = embedders.resolve("prompt", models, context.log.info)
    key = embedders.key(model)

    def vectors():  # the cluster's vector index, when dense retrieval searches one
        on_cluster = vector_search.backend == "elasticsearch" and config.whole_corpus
        return vector_search.elasticsearch(key) if on_cluster else None

    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: retrieval_steps.embed_chunks(db, embedders.load(model),
                                                         context.log.info, vectors())
            if config.whole_corpus else retrieval_steps.skip_whole_corpus(db, key),
            describe=lambda: {**model.metadata(),
                              **retrieval_steps.describe_embeddings(db, key)},
            state=lambda: {"model_key": key, **retrieval_steps.vector_state(vectors())})


class CandidateConfig(Config):
    hits_per_query: int = Field(default=30, description="Chunks retrieved per query.")
    max_passages: int = Field(default=40, description="Lexical candidate passages kept per "
                              "question (dense ones come on top).")
    max_chunks_per_passage: int = Field(
        default=1, description="Longest run of neighbouring chunks merged into one passage. "
        "One keeps passages chunk-sized, so a short context holds several of them.")
    dense_k: int = Field(default=10, description="Chunks added per question by dense "
                         "retrieval with the prompt embedder (0: lexical only).")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="retrieval", kinds={"duckdb"},
                 deps=[questions, lexical_index, chunk_embeddings, wiki_chunks])
def candidate_passages(context: AssetExecutionContext, config: CandidateConfig,
                       warehouse: Warehouse, lexical_search: LexicalSearch,
                       embedders: SentenceEmbedders, models: ModelStore,
                       vector_search: VectorSearch) -> MaterializeResult:
    """Per question: lexical hits of every prompt and option sentence (the 4th-place recipe),
    plus the chunks nearest the whole question, merged into passages of neighbouring chunks.
    Kept per question: only questions new or changed since the last run are retrieved."""
    model = embedders.resolve("prompt", models, context.log.info) if config.dense_k else None
    state = {"dense_model": embedders.key(model) if model else None,
             "dense_search": vector_search.describe() if model else None}
    basis = step_basis(context, config, state)
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: retrieval_steps.retrieve(
                db, lexical_search.open, basis, hits_per_query=config.hits_per_query,
                max_passages=config.max_passages,
                max_chunks_per_passage=config.max_chunks_per_passage, dense_k=config.dense_k,
                dense_embedder=(lambda: embedders.load(model)) if model else None,
                vector_index=vector_search.elasticsearch
                if vector_search.backend == "elasticsearch" else None, log=context.log.info),
            describe=lambda: retrieval_steps.describe_candidates(db), state=state,
            stored=lambda: retrieval_steps.candidates_version(db))


retrieval_checks = [*table_checks(lexical_index, sync.CHECKS),
                    *table_checks(candidate_passages, candidates.CHECKS)]
