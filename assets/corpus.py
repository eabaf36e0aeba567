"""Corpus assets: dump shards, articles and chunks in the DuckDB warehouse."""

from dagster import (
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
)
from pydantic import Field

from assets.checks import table_checks
from assets.incremental import as_metadata, report_failure, run_step, versioned_asset
from pipeline.corpus import article_table, chunk_table, dump_table
from pipeline.paths import SAMPLE_DUMP, work_dir
from resources import WAREHOUSE_POOL, Warehouse


class DumpConfig(Config):
    location: str = Field(
        default=str(SAMPLE_DUMP),
        description="A folder of CirrusSearch shards (*.json.gz, *.json.bz2, *.json), one shard "
        "file, or a glob pattern. Defaults to the sample dump shipped in data/wiki.",
    )
    hash_contents: bool = Field(
        default=False, description="Fingerprint each shard by the sha256 of its bytes (every "
        "run reads them all) instead of its size and modification time: for dumps edited in "
        "place by tools that keep both.")


class ArticlesConfig(Config):
    max_faults_per_shard: int = Field(
        default=100, description="Skippable faulty documents allowed per shard before the shard "
        "is rejected as corrupt.")
    skip_corrupt_shards: bool = Field(
        default=False, description="Leave a corrupt shard out (keeping its earlier rows) and "
        "materialise the rest, instead of failing the step with nothing changed.")
    batch_size: int = Field(default=5000, description="Documents written to DuckDB per batch.")
    parse_workers: int = Field(
        default=1, ge=1, description="Processes parsing shards at once (DuckDB has one "
        "writer; parsing is what parallelises). More than one pays off on a many-shard dump.")


class ChunkConfig(Config):
    max_chars: int = Field(default=512, description="Largest chunk, in characters.")
    overlap_sentences: int = Field(
        default=1, description="Trailing sentences of a chunk repeated at the start of the next.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="corpus", kinds={"duckdb"})
def dump_files(context: AssetExecutionContext, config: DumpConfig,
               warehouse: Warehouse) -> MaterializeResult:
    """The dump shards at the configured location, with their sizes and fingerprints.

    Cheap by design (it stats files, reads none), so it always runs: its data version changes
    only when a shard is added, removed or modified, and that is what makes `wiki_articles`
    unsynced.
    """
    with warehouse.get_connection() as db:
        work = report_failure(lambda: dump_table.build(db, config.location,
                                                       config.hash_contents, context.log.info))
    return MaterializeResult(data_version=DataVersion(work.data_version),
                             metadata=as_metadata(work.metadata))


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="corpus", kinds={"duckdb"}, deps=[dump_files])
def wiki_articles(context: AssetExecutionContext, config: ArticlesConfig,
                  warehouse: Warehouse) -> MaterializeResult:
    """Namespace-0 articles of every shard; where shards disagree, the higher version wins.

    Only new or changed shards are read, each committed as soon as it is parsed, so a retry
    reads only the shards still missing; a removed shard's rows go. A corrupt shard keeps its
    earlier rows and fails the step once the others are in (with `skip_corrupt_shards` it is
    only reported); the `shards` table says which shards are in, rejected or not read.
    """
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: article_table.build(
                db, max_faults=config.max_faults_per_shard,
                skip_corrupt_shards=config.skip_corrupt_shards, batch_size=config.batch_size,
                workers=config.parse_workers, staging_dir=work_dir() / "staging",
                log=context.log.info),
            describe=lambda: article_table.describe(db))


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="corpus", kinds={"duckdb"}, deps=[wiki_articles])
def wiki_chunks(context: AssetExecutionContext, config: ChunkConfig,
                warehouse: Warehouse) -> MaterializeResult:
    """Sentence-aligned chunks of every article (at most `max_chars` characters, sentences
    overlapping), ready for indexing and embedding; only changed articles are chunked again."""
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: chunk_table.build(db, config.max_chars, config.overlap_sentences,
                                              context.log.info),
            describe=lambda: chunk_table.describe(db))


corpus_checks = [*table_checks(wiki_articles, article_table.CHECKS),
                 *table_checks(wiki_chunks, chunk_table.CHECKS)]
