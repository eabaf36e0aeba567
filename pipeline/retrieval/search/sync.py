"""The sync that keeps a lexical index in line with the ``wiki_chunks`` table.

:func:`sync_index` indexes only new or changed chunks and deletes the ones that left the table.
What an index holds is recorded in DuckDB, keyed by the index's identity (backend, name and
*generation*): an index that was created anew (a folder deleted, an alias switched to a fresh
build) has a generation the warehouse has never seen, and is rebuilt in full.

Records are written ahead: before a chunk is sent to the index its record loses its hash
(``content_hash IS NULL``), and gets it back only once the index committed. A sync that dies
half-way therefore leaves records that the next sync treats as changed or gone, and re-sends or
re-deletes them; both operations are idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from pipeline.retrieval.search.base import Doc, LexicalIndex, index_key
from pipeline.tables import Check, append, row_count, stream_rows, transaction


@dataclass
class IndexSync:
    """What one sync did. A full build counts every chunk as indexed and none as unchanged."""

    index_key: str = ""
    rebuilt: bool = False
    reason: str = ""
    indexed: int = 0
    deleted: int = 0
    unchanged: int = 0
    documents: int = 0
    seconds: float = 0.0


RECORD_SCHEMA = pa.schema([("chunk_id", pa.string()), ("content_hash", pa.string())])
STAGING_TABLES = ("staging_index_changed", "staging_index_gone", "staging_index_built")


def ensure_schema(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("""CREATE TABLE IF NOT EXISTS lexical_indexes (
        index_key VARCHAR, backend VARCHAR, name VARCHAR, generation VARCHAR,
        documents BIGINT, synced_at TIMESTAMPTZ)""")
    db.execute("""CREATE TABLE IF NOT EXISTS indexed_chunks (
        index_key VARCHAR, chunk_id VARCHAR, content_hash VARCHAR)""")


def sync_index(db: duckdb.DuckDBPyConnection, index: LexicalIndex, *, batch_size: int = 1000,
               rebuild: bool = False, rebuild_fraction: float | None = 0.5) -> IndexSync:
    """Bring ``index`` in line with ``wiki_chunks``, sending only what changed.

    A full build (into a new generation, switched live when complete) happens when the index
    does not exist, when its generation is not the one the warehouse recorded (recreated
    elsewhere, or never synced from here), when ``rebuild`` is asked for (say, after an
    :class:`~pipeline.retrieval.search.base.IndexMappingError`), or when more than
    ``rebuild_fraction`` of the chunks changed: then building afresh is cheaper than updating in
    place and leaves no deleted documents behind. Chunks are streamed from DuckDB
    ``batch_size`` at a time.
    """
    started = time.perf_counter()
    ensure_schema(db)
    try:
        if rebuild:
            sync = _rebuild(db, index, batch_size, "requested")
        else:
            key = index.key()
            if key is None:
                sync = _rebuild(db, index, batch_size, "no index yet")
            elif not _known(db, key):
                sync = _rebuild(db, index, batch_size,
                                "generation not synced from this warehouse")
            else:
                sync = _update(db, index, key, batch_size, rebuild_fraction)
    finally:
        for table in STAGING_TABLES:
            db.execute(f"DROP TABLE IF EXISTS {table}")
    sync.seconds = time.perf_counter() - started
    return sync


def _known(db: duckdb.DuckDBPyConnection, key: str) -> bool:
    return db.execute("SELECT count(*) FROM lexical_indexes WHERE index_key = ?",
                      [key]).fetchone()[0] > 0


def _update(db: duckdb.DuckDBPyConnection, index: LexicalIndex, key: str, batch_size: int,
            rebuild_fraction: float | None) -> IndexSync:
    """Send the changed and new chunks to the live index and delete the gone ones."""
    db.execute("""CREATE OR REPLACE TABLE staging_index_changed AS
        SELECT c.chunk_id, c.content_hash FROM wiki_chunks c
        LEFT JOIN (SELECT chunk_id, content_hash FROM indexed_chunks WHERE index_key = ?) i
            ON c.chunk_id = i.chunk_id
        WHERE i.content_hash IS NULL OR i.content_hash <> c.content_hash""", [key])
    db.execute("""CREATE OR REPLACE TABLE staging_index_gone AS
        SELECT i.chunk_id FROM indexed_chunks i ANTI JOIN wiki_chunks c ON i.chunk_id = c.chunk_id
        WHERE i.index_key = ?""", [key])
    changed = row_count(db, "staging_index_changed")
    gone = row_count(db, "staging_index_gone")
    total = row_count(db, "wiki_chunks")
    sync = IndexSync(index_key=key, indexed=changed, deleted=gone, unchanged=total - changed,
                     documents=total)
    if changed == 0 and gone == 0:
        return sync
    if rebuild_fraction is not None and changed + gone > rebuild_fraction * max(total, 1):
        return _rebuild(db, index, batch_size,
                        f"{changed + gone} of {total} chunks changed or gone")

    with transaction(db):  # write-ahead: these records are in flight until the index commits
        db.execute("""DELETE FROM indexed_chunks WHERE index_key = ?
            AND chunk_id IN (SELECT chunk_id FROM staging_index_changed)""", [key])
        db.execute("INSERT INTO indexed_chunks SELECT ?, chunk_id, NULL FROM staging_index_changed",
                   [key])
    try:
        for docs in _stream_docs(db, """SELECT c.chunk_id, c.title, c.text, c.content_hash
                FROM wiki_chunks c SEMI JOIN staging_index_changed s ON c.chunk_id = s.chunk_id""",
                                 batch_size):
            index.upsert(docs)
        for ids in stream_rows(db, "SELECT chunk_id FROM staging_index_gone", batch_size):
            index.delete([chunk_id for (chunk_id,) in ids])
        index.commit()
    except BaseException:
        index.rollback()
        raise
    with transaction(db):
        db.execute("""DELETE FROM indexed_chunks WHERE index_key = ? AND chunk_id IN (
            SELECT chunk_id FROM staging_index_changed
            UNION ALL SELECT chunk_id FROM staging_index_gone)""", [key])
        db.execute("INSERT INTO indexed_chunks SELECT ?, chunk_id, content_hash "
                   "FROM staging_index_changed", [key])
        db.execute("UPDATE lexical_indexes SET documents = ?, synced_at = now() "
                   "WHERE index_key = ?", [total, key])
    return sync


def _rebuild(db: duckdb.DuckDBPyConnection, index: LexicalIndex, batch_size: int,
             reason: str) -> IndexSync:
    """Build a new generation from every chunk and replace the records of older ones."""
    db.execute("CREATE OR REPLACE TABLE staging_index_built "
               "(chunk_id VARCHAR, content_hash VARCHAR)")

    def batches() -> Iterator[list[Doc]]:
        for docs in _stream_docs(db, "SELECT chunk_id, title, text, content_hash FROM wiki_chunks",
                                 batch_size):
            append(db, "staging_index_built", {
                "chunk_id": [d.chunk_id for d in docs],
                "content_hash": [d.content_hash for d in docs],
            }, RECORD_SCHEMA)
            yield docs

    generation = index.rebuild(batches())
    key = index_key(index.backend, index.name, generation)
    documents = row_count(db, "staging_index_built")
    with transaction(db):
        db.execute("""DELETE FROM indexed_chunks WHERE index_key = ? OR index_key IN (
            SELECT index_key FROM lexical_indexes WHERE backend = ? AND name = ?)""",
                   [key, index.backend, index.name])
        db.execute("DELETE FROM lexical_indexes WHERE index_key = ? OR (backend = ? AND name = ?)",
                   [key, index.backend, index.name])
        db.execute("INSERT INTO indexed_chunks SELECT ?, chunk_id, content_hash "
                   "FROM staging_index_built", [key])
        db.execute("INSERT INTO lexical_indexes VALUES (?, ?, ?, ?, ?, now())",
                   [key, index.backend, index.name, generation, documents])
    return IndexSync(index_key=key, rebuilt=True, reason=reason, indexed=documents,
                     documents=documents)


def _stream_docs(db: duckdb.DuckDBPyConnection, query: str,
                 batch_size: int) -> Iterator[list[Doc]]:
    for rows in stream_rows(db, query, batch_size):
        yield [Doc._make(row) for row in rows]


CHECKS = (
    Check("index_matches_chunks", "The index holds exactly the chunks of wiki_chunks.", """
        WITH latest AS (SELECT index_key FROM lexical_indexes ORDER BY synced_at DESC LIMIT 1),
             held AS (SELECT chunk_id, content_hash FROM indexed_chunks
                      WHERE index_key = (SELECT index_key FROM latest))
        (SELECT chunk_id, content_hash FROM wiki_chunks EXCEPT SELECT * FROM held)
        UNION ALL (SELECT * FROM held EXCEPT SELECT chunk_id, content_hash FROM wiki_chunks)""",
          "chunks missing from the index, stale, or indexed but gone"),
)
