"""Rankings assets: each question's candidate passages ordered three ways, the best packed into
a context of the reader's token budget (:mod:`pipeline.rankings`)."""

from typing import Any

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset_check,
)
from pydantic import Field

from assets.checks import violations
from assets.incremental import run_step, step_basis, versioned_asset
from assets.questions import questions
from assets.retrieval import candidate_passages, chunk_embeddings
from pipeline.questions.roles import ranked_roles
from pipeline.rankings import context_table, ranking_step
from pipeline.rankings.orders import rank_by_edit_distance, rank_by_search
from pipeline.rankings.semantic import VectorCache, rank_all
from resources import WAREHOUSE_POOL, ContextBudget, ModelStore, SentenceEmbedders, Warehouse


def _rank(context: AssetExecutionContext, ranking: str, rank_all: ranking_step.RankAll,
          warehouse: Warehouse, budget: ContextBudget, models: ModelStore,
          config: Config | None = None, state: dict[str, Any] | None = None,
          metadata: dict[str, Any] | None = None) -> MaterializeResult:
    """The one body of the three ranking assets: only the ranking function differs. The token
    budget and tokenizer are part of every ranking's state: a new budget packs again."""
    state = {"tokenizer": budget.tokenizer, "tokens": budget.tokens, **(state or {})}
    basis = step_basis(context, config, state, per_question=("questions", "candidate_passages"))
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: ranking_step.build(
                db, ranking, rank_all, basis, lambda: budget.counter(models, context.log.info),
                budget.tokens, context.log.info),
            describe=lambda: {**ranking_step.describe(db, ranking), **(metadata or {}),
                              "token_budget": budget.tokens, "tokenizer": budget.tokenizer},
            state=state, stored=lambda: ranking_step.stored_version(db, ranking))


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="rankings", deps=[candidate_passages, questions], kinds={"duckdb"})
def ranking_search(context: AssetExecutionContext, warehouse: Warehouse,
                   context_budget: ContextBudget, models: ModelStore) -> MaterializeResult:
    """Candidates by their lexical search score (BM25 from the lexical index, tantivy or
    Elasticsearch alike; the recipe's notebooks call it "es"), packed into a context."""
    return _rank(context, "search", ranking_step.per_question(lambda _, ps: rank_by_search(ps)),
                 warehouse, context_budget, models)


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="rankings", deps=[candidate_passages, questions], kinds={"duckdb"})
def ranking_edit_distance(context: AssetExecutionContext, warehouse: Warehouse,
                          context_budget: ContextBudget, models: ModelStore
                          ) -> MaterializeResult:
    """Candidates by normalised word-level edit distance to the question (prompt + options),
    packed into a context. The multiple-choice reader trains on these contexts."""
    return _rank(context, "edit_distance", ranking_step.per_question(rank_by_edit_distance),
                 warehouse, context_budget, models)


class SemanticConfig(Config):
    rerank_top: int = Field(
        default=5, description="Passages, best by prompt similarity, that the option embedder "
        "re-scores; the heavier model sees only these.")
    prompt_weight: float = Field(default=0.5, description="Weight of prompt-passage against "
                                 "the mean option-passage similarity.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="rankings", deps=[candidate_passages, chunk_embeddings, questions],
                 kinds={"duckdb", "pytorch"})
def ranking_semantic(context: AssetExecutionContext, config: SemanticConfig,
                     warehouse: Warehouse, context_budget: ContextBudget, models: ModelStore,
                     embedders: SentenceEmbedders) -> MaterializeResult:
    """Candidates by cosine similarity: prompt-passage with the prompt embedder, options-passage
    with the option embedder on the best few (see :mod:`pipeline.rankings.semantic`)."""
    prompt_model = embedders.resolve("prompt", models, context.log.info)
    option_model = embedders.resolve("option", models, context.log.info)

    def rank(db, asked, candidates):
        prompt = VectorCache(db, embedders.load(prompt_model), context.log.info)
        option = VectorCache(db, embedders.load(option_model), context.log.info)
        ranked = rank_all(asked, candidates, prompt, option, rerank_top=config.rerank_top,
                          prompt_weight=config.prompt_weight)
        context.log.info(f"embedded {prompt.computed} texts with {prompt.embedder.key} and "
                         f"{option.computed} with {option.embedder.key}")
        return ranked

    used = {**{f"prompt_{k}": v for k, v in prompt_model.metadata().items()},
            **{f"option_{k}": v for k, v in option_model.metadata().items()}}
    return _rank(context, "semantic", rank, warehouse, context_budget, models, config,
                 {"prompt_key": embedders.key(prompt_model),
                  "option_key": embedders.key(option_model)}, used)


def _budget_check(ranking_asset: AssetsDefinition, ranking: str) -> AssetChecksDefinition:
    @asset_check(pool=WAREHOUSE_POOL,
                 asset=ranking_asset, name="contexts_within_budget",
                 description="Every question has a non-empty context within the token budget.")
    def check(warehouse: Warehouse, context_budget: ContextBudget) -> AssetCheckResult:
        rule = context_table.budget_check(ranking, ranked_roles(ranking), context_budget.tokens)
        return violations(warehouse, rule.query, rule.problem)
    return check


RANKINGS = {"search": ranking_search, "edit_distance": ranking_edit_distance,
            "semantic": ranking_semantic}
rankings_checks = [_budget_check(asset, name) for name, asset in RANKINGS.items()]
