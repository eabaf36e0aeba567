"""The ``dump_files`` table: which shards the configured dump location holds right now."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import duckdb

from pipeline.corpus.dumps import Shard, discover_shards
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import markdown_preview


def write_manifest(db: duckdb.DuckDBPyConnection, shards: list[Shard]) -> str:
    """Replace the manifest with ``shards`` and return its data version."""
    db.execute("""CREATE OR REPLACE TABLE dump_files (
        shard VARCHAR, path VARCHAR, bytes BIGINT, mtime_ns BIGINT, fingerprint VARCHAR,
        content_sha256 VARCHAR)""")
    db.executemany("INSERT INTO dump_files VALUES (?, ?, ?, ?, ?, ?)",
                   [[s.name, s.path, s.bytes, s.mtime_ns, s.fingerprint, s.content_sha256]
                    for s in shards])
    return manifest_version(shards)


def manifest_version(shards: list[Shard]) -> str:
    listing = "\n".join(f"{s.name}\t{s.fingerprint}" for s in sorted(shards, key=lambda s: s.name))
    return hashlib.sha256(listing.encode()).hexdigest()[:20]


def read_manifest(db: duckdb.DuckDBPyConnection) -> list[Shard]:
    db.execute("ALTER TABLE dump_files ADD COLUMN IF NOT EXISTS content_sha256 VARCHAR")
    rows = db.execute("SELECT shard, path, bytes, mtime_ns, content_sha256 FROM dump_files "
                      "ORDER BY shard")
    return [Shard(*row) for row in rows.fetchall()]


def build(db: duckdb.DuckDBPyConnection, location: str, hash_contents: bool,
          log: Callable[[str], None] = print) -> Work:
    """List the shards at ``location`` (stat them; read them only with ``hash_contents``)."""
    try:
        shards = discover_shards(location, hash_contents)
    except ValueError as exc:
        raise StepError(str(exc)) from exc
    if not shards:
        raise StepError(f"no dump shards (*.json.gz, *.json.bz2, *.json) at {location}")
    version = write_manifest(db, shards)
    log(f"{len(shards)} shards at {location}")
    return Work(version, {
        "shards": len(shards), "compressed_mb": round(sum(s.bytes for s in shards) / 1e6, 2),
        "location": location,
        "listing": Markdown(markdown_preview(
            db, "SELECT shard, bytes, fingerprint FROM dump_files"))})
