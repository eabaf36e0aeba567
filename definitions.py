"""The one ``Definitions`` object: every asset, check, job and resource of the project.

Load it with ``dagster dev -w workspace.yaml`` or ``dagster job execute -m definitions
-j corpus_job``.
"""

from __future__ import annotations

import os

import yaml
from dagster import (
    AssetSelection,
    Definitions,
    EnvVar,
    define_asset_job,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

import resources
from assets import answering, corpus, questions, rankings, retrieval
from pipeline.paths import PROJECT_ROOT, work_dir


def cluster() -> dict[str, object]:
    """The Elasticsearch cluster's settings and credentials, from the environment (``EnvVar``
    for the secrets, so no secret is in any config, log or metadata)."""
    secrets = {field: EnvVar(name) for field, name in (
        ("api_key", "ELASTICSEARCH_API_KEY"), ("username", "ELASTICSEARCH_USERNAME"),
        ("password", "ELASTICSEARCH_PASSWORD")) if name in os.environ}
    return {"backend": "elasticsearch",
            "url": os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200"),
            "ca_certs": os.environ.get("ELASTICSEARCH_CA_CERTS"), **secrets}


def lexical_search() -> resources.LexicalSearch:
    """The embedded index unless ``SEARCH_BACKEND=elasticsearch``."""
    if os.environ.get("SEARCH_BACKEND", "embedded") != "elasticsearch":
        return resources.LexicalSearch()
    return resources.LexicalSearch(
        index=os.environ.get("ELASTICSEARCH_INDEX", "wiki_chunks"), **cluster())


def vector_search() -> resources.VectorSearch:
    """Exact search in the warehouse unless ``VECTOR_BACKEND=elasticsearch`` (kNN over a
    dense_vector field of the same cluster)."""
    if os.environ.get("VECTOR_BACKEND", "duckdb") != "elasticsearch":
        return resources.VectorSearch()
    return resources.VectorSearch(**cluster())


corpus_job = define_asset_job(
    "corpus_job",
    selection=AssetSelection.groups("corpus"),
    description="Dump shards into the DuckDB article and chunk tables, reading only what changed.",
)

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

# One module per asset group, in the order of the stages.
ASSET_MODULES = [corpus, questions, retrieval, rankings, answering]

defs = Definitions(
    assets=load_assets_from_modules(ASSET_MODULES),
    asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
    jobs=[corpus_job, answer_job],
    executor=executor,
    resources={
        "warehouse": resources.Warehouse(database=str(work_dir() / "warehouse.duckdb")),
        "lexical_search": lexical_search(),
        "vector_search": vector_search(),
        "models": resources.ModelStore(),
        "context_budget": resources.ContextBudget(),
        "embedders": resources.SentenceEmbedders(),
        "readers": resources.ReaderSettings(),
        "heavy_reader": resources.HeavyReader(),
    },
)
