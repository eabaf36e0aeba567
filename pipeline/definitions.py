"""The one ``Definitions`` object: every asset, check, job and resource of the project.

Load it with ``dagster dev -w workspace.yaml`` or ``dagster job execute -m pipeline.definitions
-j corpus_job``.
"""

from __future__ import annotations

import os

import yaml
from dagster import AssetSelection, Definitions, EnvVar, define_asset_job, in_process_executor

from assets.answering import answering_assets
from assets.corpus import corpus_checks, dump_files, wiki_articles, wiki_chunks
from assets.questions import questions
from assets.retrieval import (
    candidate_passages,
    chunk_embeddings,
    lexical_index,
    ranking_edit_distance,
    ranking_es,
    ranking_semantic,
    retrieval_checks,
)
from pipeline.paths import PROJECT_ROOT, work_dir
from resources import (
    ContextBudget,
    LexicalSearch,
    ModelStore,
    ReaderSettings,
    SentenceEmbedders,
    Warehouse,
)


def lexical_search() -> LexicalSearch:
    """The embedded index unless ``SEARCH_BACKEND=elasticsearch``; cluster settings and
    credentials come from the environment (``EnvVar``), so no secret is in any config."""
    if os.environ.get("SEARCH_BACKEND", "embedded") != "elasticsearch":
        return LexicalSearch()
    secrets = {field: EnvVar(name) for field, name in (
        ("api_key", "ELASTICSEARCH_API_KEY"), ("username", "ELASTICSEARCH_USERNAME"),
        ("password", "ELASTICSEARCH_PASSWORD")) if name in os.environ}
    return LexicalSearch(
        backend="elasticsearch", url=os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200"),
        index=os.environ.get("ELASTICSEARCH_INDEX", "wiki_chunks"),
        ca_certs=os.environ.get("ELASTICSEARCH_CA_CERTS"), **secrets)


corpus_job = define_asset_job(
    "corpus_job",
    selection=AssetSelection.groups("corpus"),
    description="Dump shards into the DuckDB article and chunk tables, reading only what changed.",
)

answering, answering_checks = answering_assets()

answer_job = define_asset_job(
    "answer_job",
    selection=AssetSelection.all(),
    description="The whole pipeline: dumps to submission.csv and the score.",
    config=yaml.safe_load((PROJECT_ROOT / "config" / "answer_job.yaml").read_text()),
)

# Every step reads or writes the one DuckDB file, and DuckDB lets one process at a time open it
# for writing, so steps run one after another; on one 2-core machine the embedding and reading
# steps use both cores anyway. They run in the run's own process: a process per step would
# import torch and Dagster and load each model again for every one of some thirty steps (about
# two minutes of a no-change re-run). Multi-machine users swap in a distributed executor here.
executor = in_process_executor

defs = Definitions(
    assets=[dump_files, wiki_articles, wiki_chunks, questions, lexical_index, chunk_embeddings,
            candidate_passages, ranking_es, ranking_edit_distance, ranking_semantic,
            *answering],
    asset_checks=[*corpus_checks, *retrieval_checks, *answering_checks],
    jobs=[corpus_job, answer_job],
    executor=executor,
    resources={
        "warehouse": Warehouse(database=str(work_dir() / "warehouse.duckdb")),
        "lexical_search": lexical_search(),
        "models": ModelStore(),
        "context_budget": ContextBudget(),
        "embedders": SentenceEmbedders(),
        "readers": ReaderSettings(),
    },
)
