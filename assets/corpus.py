"""Corpus assets: dump shards, articles and chunks in the DuckDB warehouse."""

from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
    asset_check,
)
from pydantic import Field

from assets.checks import violations
from assets.incremental import Work, code_version, run_step
from pipeline import articles, chunks
from pipeline.dumps import ShardError, discover_shards
from pipeline.manifest import read_manifest, write_manifest
from pipeline.paths import SAMPLE_DUMP
from pipeline.source_version import source_version
from pipeline.tables import content_version, markdown_preview
from resources import Warehouse

# Which shards and articles must be read again is decided by the code that reads them.
ARTICLES_CODE_VERSION = source_version("pipeline.articles")
CHUNKS_CODE_VERSION = source_version("pipeline.chunks")
CODE_VERSION = code_version(__name__)


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


class ChunkConfig(Config):
    max_chars: int = Field(default=512, description="Largest chunk, in characters.")
    overlap_sentences: int = Field(
        default=1, description="Trailing sentences of a chunk repeated at the start of the next.")


@asset(group_name="corpus", compute_kind="duckdb", code_version=CODE_VERSION)
def dump_files(context: AssetExecutionContext, config: DumpConfig,
               warehouse: Warehouse) -> MaterializeResult:
    """The dump shards at the configured location, with their sizes and fingerprints.

    Cheap by design (it stats files, reads none): its data version changes only when a shard is
    added, removed or modified, and that is what makes ``wiki_articles`` unsynced.
    """
    try:
        shards = discover_shards(config.location, config.hash_contents)
    except ValueError as exc:
        raise Failure(str(exc)) from exc
    if not shards:
        raise Failure(f"no dump shards (*.json.gz, *.json.bz2, *.json) at {config.location}")
    with warehouse.get_connection() as db:
        version = write_manifest(db, shards)
        listing = markdown_preview(db, "SELECT shard, bytes, fingerprint FROM dump_files")
    context.log.info(f"{len(shards)} shards at {config.location}")
    return MaterializeResult(
        data_version=DataVersion(version),
        metadata={
            "shards": len(shards),
            "compressed_mb": round(sum(s.bytes for s in shards) / 1e6, 2),
            "location": config.location,
            "listing": MetadataValue.md(listing),
        },
    )


ARTICLE_SCHEMA = TableSchema(columns=[
    TableColumn("page_id", "BIGINT"), TableColumn("title", "VARCHAR"),
    TableColumn("text", "VARCHAR"), TableColumn("opening_text", "VARCHAR"),
    TableColumn("categories", "VARCHAR[]"), TableColumn("redirects", "VARCHAR[]"),
    TableColumn("popularity_score", "DOUBLE"), TableColumn("timestamp", "TIMESTAMPTZ"),
    TableColumn("version", "BIGINT"), TableColumn("shard", "VARCHAR", "shard file it came from"),
    TableColumn("line", "BIGINT", "line of the document in its shard"),
    TableColumn("content_hash", "VARCHAR", "hash of title and text"),
])


@asset(group_name="corpus", compute_kind="duckdb", deps=[dump_files],
       code_version=CODE_VERSION)
def wiki_articles(context: AssetExecutionContext, config: ArticlesConfig,
                  warehouse: Warehouse) -> MaterializeResult:
    """Namespace-0 articles of every shard; where shards disagree, the higher version wins.

    Only new or changed shards are read; a removed shard's rows go. A corrupt shard fails the
    step with nothing changed (or, with ``skip_corrupt_shards``, is left out and reported).
    """
    with warehouse.get_connection() as db:

        def compute() -> Work:
            try:
                sync = articles.sync_articles(
                    db, read_manifest(db), ARTICLES_CODE_VERSION,
                    max_faults=config.max_faults_per_shard,
                    skip_corrupt_shards=config.skip_corrupt_shards,
                    batch_size=config.batch_size, log=context.log.info)
            except ShardError as exc:
                raise Failure(str(exc)) from exc
            seconds = max(sync.seconds, 1e-9)
            return Work(
                content_version(db, "wiki_articles", articles.VERSION_COLUMNS),
                {
                    "shards_read": sync.shards_read,
                    "shards_unchanged": sync.shards_unchanged,
                    "shards_removed": sync.shards_removed,
                    "shards_rejected": sync.shards_rejected,
                    "documents_parsed": sync.documents_parsed,
                    "uncompressed_mb": round(sync.uncompressed_bytes / 1e6, 2),
                    "documents_per_second": round(sync.documents_parsed / seconds, 1),
                    "faults": sync.faults(),
                    "fault_examples": MetadataValue.md(
                        "\n".join(f"- {e}" for e in sync.fault_examples()) or "none"),
                },
            )

        def describe() -> dict[str, Any]:
            superseded = db.execute("SELECT count(*) FROM superseded_articles").fetchone()[0]
            return {
                "dagster/row_count": db.execute(
                    "SELECT count(*) FROM wiki_articles").fetchone()[0],
                "superseded_versions": superseded,
                "dagster/column_schema": ARTICLE_SCHEMA,
                "preview": MetadataValue.md(markdown_preview(
                    db, "SELECT page_id, title, text, shard, version FROM wiki_articles "
                        "ORDER BY page_id LIMIT 5")),
            }

        return run_step(context, db, config, compute, describe)


CHUNK_SCHEMA = TableSchema(columns=[
    TableColumn("chunk_id", "VARCHAR", "{page_id}-{ordinal}: stable while the article is"),
    TableColumn("page_id", "BIGINT"), TableColumn("title", "VARCHAR"),
    TableColumn("ordinal", "INTEGER"), TableColumn("text", "VARCHAR"),
    TableColumn("char_start", "INTEGER", "offset of the chunk in the article text"),
    TableColumn("char_end", "INTEGER"), TableColumn("content_hash", "VARCHAR"),
])


@asset(group_name="corpus", compute_kind="duckdb", deps=[wiki_articles],
       code_version=CODE_VERSION)
def wiki_chunks(context: AssetExecutionContext, config: ChunkConfig,
                warehouse: Warehouse) -> MaterializeResult:
    """Sentence-aligned chunks of every article, ready for indexing and embedding."""
    with warehouse.get_connection() as db:

        def compute() -> Work:
            sync = chunks.sync_chunks(db, config.max_chars, config.overlap_sentences,
                                      CHUNKS_CODE_VERSION)
            context.log.info(f"chunked {sync.articles_chunked} articles into "
                             f"{sync.chunks_written} chunks in {sync.seconds:.1f}s")
            seconds = max(sync.seconds, 1e-9)
            return Work(
                content_version(db, "wiki_chunks", chunks.VERSION_COLUMNS),
                {
                    "articles_chunked": sync.articles_chunked,
                    "articles_removed": sync.articles_removed,
                    "chunks_written": sync.chunks_written,
                    "chunks_deleted": sync.chunks_deleted,
                    "chunks_per_second": round(sync.chunks_written / seconds, 1),
                },
            )

        def describe() -> dict[str, Any]:
            rows, mean, longest = db.execute(
                "SELECT count(*), round(avg(length(text)), 1), max(length(text)) "
                "FROM wiki_chunks").fetchone()
            return {
                "dagster/row_count": rows,
                "mean_chars": mean,
                "max_chars": longest,
                "dagster/column_schema": CHUNK_SCHEMA,
                "preview": MetadataValue.md(markdown_preview(
                    db, "SELECT chunk_id, title, text FROM wiki_chunks "
                        "ORDER BY page_id, ordinal LIMIT 5")),
            }

        return run_step(context, db, config, compute, describe)


@asset_check(asset=wiki_chunks, description="No two chunks share a chunk_id.")
def chunk_ids_unique(warehouse: Warehouse) -> AssetCheckResult:
    return violations(warehouse, "SELECT chunk_id, count(*) AS n FROM wiki_chunks "
                       "GROUP BY chunk_id HAVING n > 1", "duplicate chunk ids")


@asset_check(asset=wiki_chunks, description="Every chunk has non-blank text.")
def no_empty_chunks(warehouse: Warehouse) -> AssetCheckResult:
    return violations(warehouse, "SELECT chunk_id FROM wiki_chunks WHERE trim(text) = ''",
                       "empty chunks")


@asset_check(asset=wiki_chunks, description="Every chunk's page_id is an article.")
def chunks_have_articles(warehouse: Warehouse) -> AssetCheckResult:
    return violations(warehouse, "SELECT chunk_id, page_id FROM wiki_chunks ANTI JOIN "
                       "wiki_articles USING (page_id)", "chunks of missing articles")


@asset_check(asset=wiki_chunks,
             description="No chunk is longer than the max_chars it was chunked with.")
def chunk_sizes_within_bound(warehouse: Warehouse) -> AssetCheckResult:
    return violations(
        warehouse,
        "SELECT c.chunk_id, length(c.text) AS chars, split_part(a.chunker, ':', 2) AS bound "
        "FROM wiki_chunks c JOIN chunked_articles a USING (page_id) "
        "WHERE length(c.text) > CAST(split_part(a.chunker, ':', 2) AS INTEGER)",
        "chunks over the size bound")


corpus_checks = [chunk_ids_unique, no_empty_chunks, chunks_have_articles,
                 chunk_sizes_within_bound]
