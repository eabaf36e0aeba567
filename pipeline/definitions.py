"""The one ``Definitions`` object: every asset, check, job and resource of the project.

Load it with ``dagster dev -w workspace.yaml`` or ``dagster job execute -m pipeline.definitions
-j corpus_job``.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from assets.corpus import corpus_checks, dump_files, wiki_articles, wiki_chunks
from assets.questions import questions
from pipeline.paths import work_dir
from resources import Warehouse

corpus_job = define_asset_job(
    "corpus_job",
    selection=AssetSelection.groups("corpus"),
    description="Dump shards into the DuckDB article and chunk tables, reading only what changed.",
)

defs = Definitions(
    assets=[dump_files, wiki_articles, wiki_chunks, questions],
    asset_checks=corpus_checks,
    jobs=[corpus_job],
    resources={"warehouse": Warehouse(database=str(work_dir() / "warehouse.duckdb"))},
)
