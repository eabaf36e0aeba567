"""The article tables: dump shards synchronised into DuckDB, one shard at a time.

Tables:

- ``wiki_articles``: one row per page, the winning version across shards (higher ``version``,
  then later ``timestamp``, then the later shard and line: deterministic).
- ``superseded_articles``: the losing versions, kept so that removing the shard that holds a
  winner promotes the next best version without reading any dump again.
- ``ingested_shards``: which shard (and which fingerprint of it) each row set came from.

A sync reads only new or changed shards, parsing each (in worker processes when asked) into a
Parquet file in batches, and commits each shard in a transaction of its own as soon as it is
parsed: a sync that stops half-way keeps the shards it finished, a shard that fails to parse
leaves its earlier rows as they were, and the next sync reads only what is still missing.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.corpus.dump_table import read_manifest
from pipeline.corpus.dumps import Article, Shard, ShardError, ShardReport, read_shard
from pipeline.source_version import source_version
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import (
    Check,
    Column,
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
    db.execute("""CREATE TABLE IF NOT EXISTS rejected_shards (
        shard VARCHAR, fingerprint VARCHAR, error VARCHAR, rejected_at TIMESTAMPTZ)""")


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
    workers: int = 1,
    staging_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> ArticleSync:
    """Bring the article tables in line with ``shards``, reading only what changed.

    A shard is re-read when its fingerprint or ``parser_version`` differs from the one it was
    ingested with. Each shard is parsed into a Parquet file in ``staging_dir`` (by ``workers``
    processes at once when more than one: DuckDB has one writer, parsing is what parallelises)
    and committed alone as soon as it is parsed, so a run that stops half-way keeps the shards
    it finished, and the next reads only the rest. A corrupt shard keeps its earlier rows, if
    any; the others are committed, and then :class:`ShardError` names the corrupt ones, unless
    ``skip_corrupt_shards``: then they are only reported in ``shards_rejected``.
    """
    started = time.perf_counter()
    ensure_schema(db)
    ingested = dict(db.execute("SELECT shard, fingerprint FROM ingested_shards").fetchall())
    sync = ArticleSync()
    sync.shards_removed = sorted(set(ingested) - {s.name for s in shards})
    pending = []
    for shard in shards:
        if ingested.get(shard.name) == f"{shard.fingerprint}:{parser_version}":
            sync.shards_unchanged.append(shard.name)
        else:
            pending.append(shard)
    if sync.shards_removed:
        _commit_shards(db, [], sync.shards_removed, parser_version)
    if staging_dir is not None:
        staging_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shards-", dir=staging_dir) as folder:
        for done, (shard, outcome) in enumerate(
                _parsed(pending, Path(folder), max_faults, batch_size, workers), start=1):
            if isinstance(outcome, ShardError):
                sync.shards_rejected[shard.name] = str(outcome)
                with transaction(db):
                    db.execute("DELETE FROM rejected_shards WHERE shard = ?", [shard.name])
                    db.execute("INSERT INTO rejected_shards VALUES (?, ?, ?, now())",
                               [shard.name, shard.fingerprint, str(outcome)])
                log(f"[{done}/{len(pending)}] rejected shard {shard.name}: {outcome}")
                continue
            path, report = outcome
            sync.reports.append(report)
            try:
                _commit_shards(db, [(shard, report)], [], parser_version, path)
            finally:
                path.unlink()
            sync.shards_read.append(shard.name)
            log(f"[{done}/{len(pending)}] read {shard.name}: {report.articles} articles of "
                f"{report.documents} documents, {report.faults.total()} skipped for faults")
    sync.shards_read.sort()
    sync.seconds = time.perf_counter() - started
    if sync.shards_rejected and not skip_corrupt_shards:
        raise ShardError(
            f"{len(sync.shards_rejected)} shard(s) rejected, their earlier rows kept; "
            f"{len(sync.shards_read)} read and committed, which a retry does not read again:\n"
            + "\n".join(sync.shards_rejected.values()))
    return sync


Outcome = tuple[Path, ShardReport] | ShardError


def _commit_shards(db: duckdb.DuckDBPyConnection, staged: list[tuple[Shard, ShardReport]],
                   removed: list[str], parser_version: str, parquet: Path | None = None) -> None:
    """Commit the shard parsed into ``parquet`` (or only the removals) in one transaction."""
    db.execute("DROP TABLE IF EXISTS staging_articles")
    db.execute(f"CREATE TABLE staging_articles ({COLUMNS_DDL})")
    try:
        if parquet is not None:
            db.execute("INSERT INTO staging_articles BY NAME SELECT * FROM read_parquet(?)",
                       [str(parquet)])
        _commit(db, staged, removed, parser_version)
    finally:
        db.execute("DROP TABLE IF EXISTS staging_articles")


def _parsed(shards: list[Shard], folder: Path, max_faults: int, batch_size: int,
            workers: int) -> Iterator[tuple[Shard, Outcome]]:
    """Each shard with its Parquet file and report, or the error that rejected it, in the
    order they finish. One worker parses in this process; more run in fresh processes
    (spawned, not forked: the caller may hold threads and open files)."""
    if workers <= 1 or len(shards) <= 1:
        for shard in shards:
            yield shard, _outcome(shard, folder, max_faults, batch_size)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_outcome, shard, folder, max_faults, batch_size): shard
                   for shard in shards}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _outcome(shard: Shard, folder: Path, max_faults: int, batch_size: int) -> Outcome:
    try:
        return _parse(shard, folder, max_faults, batch_size)
    except ShardError as exc:
        return exc


def _parse(shard: Shard, folder: Path, max_faults: int,
           batch_size: int) -> tuple[Path, ShardReport]:
    """Stream one shard into a Parquet file, ``batch_size`` articles at a time (memory stays
    bounded however large the shard)."""
    report = ShardReport(shard.name)
    path = folder / f"{shard.name}.parquet"
    with pq.ParquetWriter(path, SCHEMA) as writer:
        batch: list[Article] = []
        for article in read_shard(shard.path, report, max_faults=max_faults):
            batch.append(article)
            if len(batch) >= batch_size:
                writer.write_table(_table(shard.name, batch))
                batch = []
        if batch:
            writer.write_table(_table(shard.name, batch))
    return path, report


def _table(shard: str, batch: list[Article]) -> pa.Table:
    return pa.table({
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
    }, schema=SCHEMA)


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
        db.execute("DELETE FROM rejected_shards WHERE shard IN (SELECT shard FROM gone_shards)")
        for shard, report in staged:
            db.execute(
                "INSERT INTO ingested_shards VALUES (?, ?, ?, ?, ?, ?, now())",
                [shard.name, f"{shard.fingerprint}:{parser_version}", shard.path,
                 report.documents, report.articles, json.dumps(dict(report.faults))],
            )
        db.execute("DROP TABLE pool")


def build(db: duckdb.DuckDBPyConnection, *, max_faults: int, skip_corrupt_shards: bool,
          batch_size: int, workers: int = 1, staging_dir: Path | None = None,
          log: Callable[[str], None] = print) -> Work:
    """Synchronise the article tables with the shards listed in ``dump_files``."""
    try:
        sync = sync_articles(db, read_manifest(db), CODE_VERSION, max_faults=max_faults,
                             skip_corrupt_shards=skip_corrupt_shards, batch_size=batch_size,
                             workers=workers, staging_dir=staging_dir, log=log)
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


SHARD_STATUS = """
    SELECT d.shard, CASE WHEN i.shard IS NOT NULL THEN 'in'
                         WHEN r.shard IS NOT NULL THEN 'rejected' ELSE 'not read' END AS status,
           i.articles, i.documents, r.error
    FROM dump_files d
    LEFT JOIN ingested_shards i
        ON i.shard = d.shard AND starts_with(i.fingerprint, d.fingerprint || ':')
    LEFT JOIN rejected_shards r ON r.shard = d.shard AND r.fingerprint = d.fingerprint
    ORDER BY status = 'in', d.shard"""


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The tables as they stand, with every shard's status: in, rejected (and why), or not
    read yet (a run stopped before it), rejected and unread shards first."""
    ensure_schema(db)
    shards = db.execute(SHARD_STATUS).fetchall()
    statuses = [status for _, status, *_ in shards]
    return {"shards_in": statuses.count("in"),
            "shards_not_in": len(statuses) - statuses.count("in"),
            "shards": Markdown(markdown_preview(db, f"SELECT * FROM ({SHARD_STATUS}) LIMIT 50")),
            "row_count": row_count(db, "wiki_articles"),
            "superseded_versions": row_count(db, "superseded_articles"),
            "columns": COLUMNS,
            "preview": Markdown(markdown_preview(
                db, "SELECT page_id, title, text, shard, version FROM wiki_articles "
                    "ORDER BY page_id LIMIT 5"))}


CHECKS = (
    Check("every_shard_ingested", "Every shard of the dump is in the article tables as it is "
          "now (a rejected or unread shard is listed with its status).",
          f"SELECT shard, status, error FROM ({SHARD_STATUS}) WHERE status <> 'in'",
          "shards not in the article tables",
          blocking=False),  # the articles that are in are sound: skip_corrupt_shards chose it
)
