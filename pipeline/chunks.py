"""The chunk table: sentence-aligned passages of every article, rebuilt only where needed.

``chunked_articles`` remembers, per page, which article content and which chunker (settings and
code version) produced its chunks. A sync re-chunks the pages whose content or chunker changed,
drops the chunks of pages that left the corpus, and commits in one transaction. Chunk ids are
``{page_id}-{ordinal}``: an article that did not change keeps its ids from run to run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.chunking import chunk_text
from pipeline.tables import append

CHUNKS_DDL = """chunk_id VARCHAR, page_id BIGINT, title VARCHAR, ordinal INTEGER, text VARCHAR,
    char_start INTEGER, char_end INTEGER, content_hash VARCHAR"""
SCHEMA = pa.schema([
    ("chunk_id", pa.string()), ("page_id", pa.int64()), ("title", pa.string()),
    ("ordinal", pa.int32()), ("text", pa.string()), ("char_start", pa.int32()),
    ("char_end", pa.int32()), ("content_hash", pa.string()),
])
VERSION_COLUMNS = "chunk_id, content_hash, char_start, char_end"


@dataclass
class ChunkSync:
    articles_chunked: int = 0
    articles_removed: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0


def ensure_schema(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS wiki_chunks ({CHUNKS_DDL})")
    db.execute("""CREATE TABLE IF NOT EXISTS chunked_articles (
        page_id BIGINT, content_hash VARCHAR, chunker VARCHAR)""")


def sync_chunks(db: duckdb.DuckDBPyConnection, max_chars: int, overlap_sentences: int,
                code_version: str, batch_size: int = 2000) -> ChunkSync:
    """Re-chunk what changed in ``wiki_articles`` since the last sync."""
    started = time.perf_counter()
    ensure_schema(db)
    chunker = f"{code_version}:{max_chars}:{overlap_sentences}"
    sync = ChunkSync()
    db.execute("""CREATE OR REPLACE TABLE staging_stale AS
        SELECT a.page_id FROM wiki_articles a
        LEFT JOIN chunked_articles c
            ON a.page_id = c.page_id AND a.content_hash = c.content_hash AND c.chunker = ?
        WHERE c.page_id IS NULL""", [chunker])
    db.execute("""CREATE OR REPLACE TABLE staging_gone AS
        SELECT page_id FROM chunked_articles
        WHERE page_id NOT IN (SELECT page_id FROM wiki_articles)""")
    sync.articles_chunked = db.execute("SELECT count(*) FROM staging_stale").fetchone()[0]
    sync.articles_removed = db.execute("SELECT count(*) FROM staging_gone").fetchone()[0]
    try:
        if sync.articles_chunked == 0 and sync.articles_removed == 0:
            return sync
        db.execute(f"CREATE OR REPLACE TABLE staging_chunks ({CHUNKS_DDL})")
        sync.chunks_written = _stage(db, max_chars, overlap_sentences, batch_size)
        db.execute("BEGIN TRANSACTION")
        try:
            touched = ("(SELECT page_id FROM staging_stale "
                       "UNION ALL SELECT page_id FROM staging_gone)")
            sync.chunks_deleted = db.execute(
                f"DELETE FROM wiki_chunks WHERE page_id IN {touched}").fetchone()[0]
            db.execute("INSERT INTO wiki_chunks SELECT * FROM staging_chunks")
            db.execute(f"DELETE FROM chunked_articles WHERE page_id IN {touched}")
            db.execute("""INSERT INTO chunked_articles
                SELECT a.page_id, a.content_hash, ? FROM wiki_articles a
                WHERE a.page_id IN (SELECT page_id FROM staging_stale)""", [chunker])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        for table in ("staging_chunks", "staging_stale", "staging_gone"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
        sync.seconds = time.perf_counter() - started
    return sync


def _stage(db: duckdb.DuckDBPyConnection, max_chars: int, overlap: int, batch_size: int) -> int:
    """Chunk the stale articles into ``staging_chunks``, streaming them in batches."""
    reader = db.cursor()
    written = 0
    try:
        result = reader.execute("""SELECT a.page_id, a.title, a.text FROM wiki_articles a
            SEMI JOIN staging_stale s ON a.page_id = s.page_id ORDER BY a.page_id""")
        while rows := result.fetchmany(batch_size):
            columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
            for page_id, title, text in rows:
                for chunk in chunk_text(text, max_chars, overlap):
                    columns["chunk_id"].append(f"{page_id}-{chunk.ordinal}")
                    columns["page_id"].append(page_id)
                    columns["title"].append(title)
                    columns["ordinal"].append(chunk.ordinal)
                    columns["text"].append(chunk.text)
                    columns["char_start"].append(chunk.start)
                    columns["char_end"].append(chunk.end)
                    columns["content_hash"].append(chunk.content_hash)
            append(db, "staging_chunks", columns, SCHEMA)
            written += len(columns["chunk_id"])
    finally:
        reader.close()
    return written
