"""The article tables: dump shards synchronised into DuckDB, one shard at a time.

Tables:

- ``wiki_articles``: one row per page, the winning version across shards (higher ``version``,
  then later ``timestamp``, then the later shard and line: deterministic).
- ``superseded_articles``: the losing versions, kept so that removing the shard that holds a
  winner promotes the next best version without reading any dump again.
- ``ingested_shards``: which shard (and which fingerprint of it) each row set came from.

A sync reads only new or changed shards, streaming each into an on-disk staging table in
batches, and then commits every change in one transaction: a shard that fails to parse leaves
the tables exactly as they were.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.corpus.dump_table import read_manifest
from pipeline.corpus.dumps import Article, Shard, ShardError, ShardReport, read_shard
from pipeline.source_version import source_version
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import (
    Column,
    append,
    content_version,
    markdown_preview,
    row_count,
    transaction,
)

COLUMNS_DDL = """
    page_id BIGINT, title VARCHAR, text VARCHAR, opening_text VARCHAR,
    categories VARCHAR[], redirects VARCHAR[], popularity_score DOUBLE,
    timestamp TIMESTAMPTZ, version BIGINT, shard VARCHAR, line BIGINT, content_hash VARCHAR
"""
SCHEMA = pa.schema([
    ("page_id", pa.int64()), ("title", pa.string()), ("text", pa.string()),
    ("opening_text", pa.string()), ("categories", pa.list_(pa.string())),
    ("redirects", pa.list_(pa.string())), ("popularity_score", pa.float64()),
    ("timestamp", pa.timestamp("us", tz="UTC")), ("version", pa.int64()),
    ("shard", pa.string()), ("line", pa.int64()), ("content_hash", pa.string()),
])
WINNER_ORDER = "version DESC NULLS LAST, timestamp DESC NULLS LAST, shard DESC, line DESC"
VERSION_COLUMNS = (
    "page_id, version, timestamp, popularity_score, categories, redirects, content_hash")
COLUMNS = (
    Column("page_id", "BIGINT"), Column("title", "VARCHAR"), Column("text", "VARCHAR"),
    Column("opening_text", "VARCHAR"), Column("categories", "VARCHAR[]"),
    Column("redirects", "VARCHAR[]"), Column("popularity_score", "DOUBLE"),
    Column("timestamp", "TIMESTAMPTZ"), Column("version", "BIGINT"),
    Column("shard", "VARCHAR", "shard file it came from"),
    Column("line", "BIGINT", "line of the document in its shard"),
    Column("content_hash", "VARCHAR", "hash of title and text"),
)
# Which shards must be read again is decided by the code that reads them: this module and
# what it imports.
CODE_VERSION = source_version(__name__)


def ensure_schema(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS wiki_articles ({COLUMNS_DDL})")
    db.execute(f"CREATE TABLE IF NOT EXISTS superseded_articles ({COLUMNS_DDL})")
    db.execute("""CREATE TABLE IF NOT EXISTS ingested_shards (
        shard VARCHAR, fingerprint VARCHAR, path VARCHAR, documents BIGINT, articles BIGINT,
        faults JSON, ingested_at TIMESTAMPTZ)""")


@dataclass
class ArticleSync:
    """What one sync did; the work counters are what the incremental tests look at."""

    shards_read: list[str] = field(default_factory=list)
    shards_unchanged: list[str] = field(default_factory=list)
    shards_removed: list[str] = field(default_factory=list)
    shards_rejected: dict[str, str] = field(default_factory=dict)
    reports: list[ShardReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def documents_parsed(self) -> int:
        return sum(r.documents for r in self.reports)

    @property
    def uncompressed_bytes(self) -> int:
        return sum(r.uncompressed_bytes for r in self.reports)

    def faults(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for report in self.reports:
            for kind, count in report.faults.items():
                total[kind] = total.get(kind, 0) + count
        return total

    def fault_examples(self) -> list[str]:
        return [e for r in self.reports for e in r.examples][:10]


def sync_articles(
    db: duckdb.DuckDBPyConnection,
    shards: list[Shard],
    parser_version: str,
    *,
    max_faults: int = 100,
    skip_corrupt_shards: bool = False,
    batch_size: int = 5000,
    log: Callable[[str], None] = print,
) -> ArticleSync:
    """Bring the article tables in line with ``shards``, reading only what changed.

    A shard is re-read when its fingerprint or ``parser_version`` differs from the one it was
    ingested with. A corrupt shard raises :class:`ShardError` before anything is committed,
    unless ``skip_corrupt_shards``: then it is left out (its earlier rows, if any, stay) and
    reported in ``shards_rejected``.
    """
    started = time.perf_counter()
    ensure_schema(db)
    ingested = dict(db.execute("SELECT shard, fingerprint FROM ingested_shards").fetchall())
    sync = ArticleSync()
    wanted = {s.name for s in shards}
    sync.shards_removed = sorted(set(ingested) - wanted)

    db.execute("DROP TABLE IF EXISTS staging_articles")
    db.execute(f"CREATE TABLE staging_articles ({COLUMNS_DDL})")
    try:
        staged: list[tuple[Shard, ShardReport]] = []
        for shard in shards:
            fingerprint = f"{shard.fingerprint}:{parser_version}"
            if ingested.get(shard.name) == fingerprint:
                sync.shards_unchanged.append(shard.name)
                continue
            report = ShardReport(shard.name)
            sync.reports.append(report)
            try:
                _stage(db, shard, report, max_faults, batch_size)
            except ShardError as exc:
                db.execute("DELETE FROM staging_articles WHERE shard = ?", [shard.name])
                sync.shards_rejected[shard.name] = str(exc)
                log(f"rejected shard {shard.name}: {exc}")
                continue
            log(f"read {shard.name}: {report.articles} articles of {report.documents} documents"
                f", {report.faults.total()} skipped for faults")
            sync.shards_read.append(shard.name)
            staged.append((shard, report))
        if sync.shards_rejected and not skip_corrupt_shards:
            raise ShardError("rejected, nothing was changed: "
                             + "\n".join(sync.shards_rejected.values()))
        if staged or sync.shards_removed:
            _commit(db, staged, sync.shards_removed, parser_version)
    finally:
        db.execute("DROP TABLE IF EXISTS staging_articles")
    sync.seconds = time.perf_counter() - started
    return sync


def _stage(db: duckdb.DuckDBPyConnection, shard: Shard, report: ShardReport,
           max_faults: int, batch_size: int) -> None:
    """Stream one shard into ``staging_articles`` in batches (bounded memory)."""
    batch: list[Article] = []
    for article in read_shard(shard.path, report, max_faults=max_faults):
        batch.append(article)
        if len(batch) >= batch_size:
            _append(db, shard.name, batch)
            batch = []
    if batch:
        _append(db, shard.name, batch)


def _append(db: duckdb.DuckDBPyConnection, shard: str, batch: list[Article]) -> None:
    columns: dict[str, list[Any]] = {
        "page_id": [a.page_id for a in batch],
        "title": [a.title for a in batch],
        "text": [a.text for a in batch],
        "opening_text": [a.opening_text for a in batch],
        "categories": [a.categories for a in batch],
        "redirects": [a.redirects for a in batch],
        "popularity_score": [a.popularity_score for a in batch],
        "timestamp": [a.timestamp for a in batch],
        "version": [a.version for a in batch],
        "shard": [shard] * len(batch),
        "line": [a.line for a in batch],
        "content_hash": [a.content_hash for a in batch],
    }
    append(db, "staging_articles", columns, SCHEMA)


def _commit(db: duckdb.DuckDBPyConnection, staged: list[tuple[Shard, ShardReport]],
            removed: list[str], parser_version: str) -> None:
    """Swap the staged shards in and the removed ones out, re-electing affected pages."""
    replaced = [shard.name for shard, _ in staged] + removed
    with transaction(db):
        db.execute("CREATE OR REPLACE TEMP TABLE gone_shards (shard VARCHAR)")
        for name in replaced:
            db.execute("INSERT INTO gone_shards VALUES (?)", [name])
        db.execute("""CREATE OR REPLACE TEMP TABLE affected AS
            SELECT page_id FROM wiki_articles WHERE shard IN (SELECT shard FROM gone_shards)
            UNION SELECT page_id FROM superseded_articles
                WHERE shard IN (SELECT shard FROM gone_shards)
            UNION SELECT page_id FROM staging_articles""")
        db.execute("""CREATE OR REPLACE TEMP TABLE pool AS
            SELECT * FROM wiki_articles
                WHERE page_id IN (SELECT page_id FROM affected)
                AND shard NOT IN (SELECT shard FROM gone_shards)
            UNION ALL SELECT * FROM superseded_articles
                WHERE page_id IN (SELECT page_id FROM affected)
                AND shard NOT IN (SELECT shard FROM gone_shards)
            UNION ALL SELECT * FROM staging_articles""")
        for table in ("wiki_articles", "superseded_articles"):
            db.execute(f"DELETE FROM {table} WHERE page_id IN (SELECT page_id FROM affected)")
        ranked = f"""SELECT * EXCLUDE (rank) FROM (
            SELECT *, row_number() OVER (PARTITION BY page_id ORDER BY {WINNER_ORDER}) AS rank
            FROM pool)"""
        db.execute(f"INSERT INTO wiki_articles {ranked} WHERE rank = 1")
        db.execute(f"INSERT INTO superseded_articles {ranked} WHERE rank > 1")
        db.execute("DELETE FROM ingested_shards WHERE shard IN (SELECT shard FROM gone_shards)")
        for shard, report in staged:
            db.execute(
                "INSERT INTO ingested_shards VALUES (?, ?, ?, ?, ?, ?, now())",
                [shard.name, f"{shard.fingerprint}:{parser_version}", shard.path,
                 report.documents, report.articles, json.dumps(dict(report.faults))],
            )
        db.execute("DROP TABLE pool")


def build(db: duckdb.DuckDBPyConnection, *, max_faults: int, skip_corrupt_shards: bool,
          batch_size: int, log: Callable[[str], None] = print) -> Work:
    """Synchronise the article tables with the shards listed in ``dump_files``."""
    try:
        sync = sync_articles(db, read_manifest(db), CODE_VERSION, max_faults=max_faults,
                             skip_corrupt_shards=skip_corrupt_shards, batch_size=batch_size,
                             log=log)
    except ShardError as exc:
        raise StepError(str(exc)) from exc
    return Work(content_version(db, "wiki_articles", VERSION_COLUMNS), {
        "shards_read": sync.shards_read, "shards_unchanged": sync.shards_unchanged,
        "shards_removed": sync.shards_removed, "shards_rejected": sync.shards_rejected,
        "documents_parsed": sync.documents_parsed,
        "uncompressed_mb": round(sync.uncompressed_bytes / 1e6, 2),
        "documents_per_second": round(sync.documents_parsed / max(sync.seconds, 1e-9), 1),
        "faults": sync.faults(),
        "fault_examples": Markdown("\n".join(f"- {e}" for e in sync.fault_examples())
                                   or "none")})


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    return {"row_count": row_count(db, "wiki_articles"),
            "superseded_versions": row_count(db, "superseded_articles"),
            "columns": COLUMNS,
            "preview": Markdown(markdown_preview(
                db, "SELECT page_id, title, text, shard, version FROM wiki_articles "
                    "ORDER BY page_id LIMIT 5"))}
