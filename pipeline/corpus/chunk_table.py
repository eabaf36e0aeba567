"""The chunk table: sentence-aligned passages of every article, rebuilt only where needed.

``chunked_articles`` remembers, per page, which article content and which chunker (settings and
code version) produced its chunks. A sync re-chunks the pages whose content or chunker changed,
drops the chunks of pages that left the corpus, and commits in one transaction. Chunk ids are
``{page_id}-{ordinal}``: an article that did not change keeps its ids from run to run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.corpus.chunking import chunk_text
from pipeline.source_version import source_version
from pipeline.steps import Markdown, Work
from pipeline.tables import (
    Check,
    Column,
    append,
    content_version,
    markdown_preview,
    stream_rows,
    transaction,
)

CHUNKS_DDL = """chunk_id VARCHAR, page_id BIGINT, title VARCHAR, ordinal INTEGER, text VARCHAR,
    char_start INTEGER, char_end INTEGER, content_hash VARCHAR"""
SCHEMA = pa.schema([
    ("chunk_id", pa.string()), ("page_id", pa.int64()), ("title", pa.string()),
    ("ordinal", pa.int32()), ("text", pa.string()), ("char_start", pa.int32()),
    ("char_end", pa.int32()), ("content_hash", pa.string()),
])
VERSION_COLUMNS = "chunk_id, content_hash, char_start, char_end"
COLUMNS = (
    Column("chunk_id", "VARCHAR", "{page_id}-{ordinal}: stable while the article is"),
    Column("page_id", "BIGINT"), Column("title", "VARCHAR"), Column("ordinal", "INTEGER"),
    Column("text", "VARCHAR"),
    Column("char_start", "INTEGER", "offset of the chunk in the article text"),
    Column("char_end", "INTEGER"), Column("content_hash", "VARCHAR"),
)
# Which articles must be chunked again is decided by the code that chunks them.
CODE_VERSION = source_version(__name__)


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
        with transaction(db):
            touched = ("(SELECT page_id FROM staging_stale "
                       "UNION ALL SELECT page_id FROM staging_gone)")
            sync.chunks_deleted = db.execute(
                f"DELETE FROM wiki_chunks WHERE page_id IN {touched}").fetchone()[0]
            db.execute("INSERT INTO wiki_chunks SELECT * FROM staging_chunks")
            db.execute(f"DELETE FROM chunked_articles WHERE page_id IN {touched}")
            db.execute("""INSERT INTO chunked_articles
                SELECT a.page_id, a.content_hash, ? FROM wiki_articles a
                WHERE a.page_id IN (SELECT page_id FROM staging_stale)""", [chunker])
    finally:
        for table in ("staging_chunks", "staging_stale", "staging_gone"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
        sync.seconds = time.perf_counter() - started
    return sync


def _stage(db: duckdb.DuckDBPyConnection, max_chars: int, overlap: int, batch_size: int) -> int:
    """Chunk the stale articles into ``staging_chunks``, streaming them in batches."""
    written = 0
    for rows in stream_rows(db, """SELECT a.page_id, a.title, a.text FROM wiki_articles a
            SEMI JOIN staging_stale s ON a.page_id = s.page_id ORDER BY a.page_id""", batch_size):
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
    return written


def build(db: duckdb.DuckDBPyConnection, max_chars: int, overlap_sentences: int,
          log: Callable[[str], None] = print) -> Work:
    """Re-chunk what changed in ``wiki_articles`` and say what was done."""
    sync = sync_chunks(db, max_chars, overlap_sentences, CODE_VERSION)
    log(f"chunked {sync.articles_chunked} articles into {sync.chunks_written} chunks in "
        f"{sync.seconds:.1f}s")
    return Work(content_version(db, "wiki_chunks", VERSION_COLUMNS), {
        "articles_chunked": sync.articles_chunked, "articles_removed": sync.articles_removed,
        "chunks_written": sync.chunks_written, "chunks_deleted": sync.chunks_deleted,
        "chunks_per_second": round(sync.chunks_written / max(sync.seconds, 1e-9), 1)})


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    rows, mean, longest = db.execute("SELECT count(*), round(avg(length(text)), 1), "
                                     "max(length(text)) FROM wiki_chunks").fetchone()
    return {"row_count": rows, "mean_chars": mean, "max_chars": longest, "columns": COLUMNS,
            "preview": Markdown(markdown_preview(
                db, "SELECT chunk_id, title, text FROM wiki_chunks "
                    "ORDER BY page_id, ordinal LIMIT 5"))}


CHECKS = (
    Check("chunk_ids_unique", "No two chunks share a chunk_id.",
          "SELECT chunk_id, count(*) AS n FROM wiki_chunks GROUP BY chunk_id HAVING n > 1",
          "duplicate chunk ids"),
    Check("no_empty_chunks", "Every chunk has non-blank text.",
          "SELECT chunk_id FROM wiki_chunks WHERE trim(text) = ''", "empty chunks"),
    Check("chunks_have_articles", "Every chunk's page_id is an article.",
          "SELECT chunk_id, page_id FROM wiki_chunks ANTI JOIN wiki_articles USING (page_id)",
          "chunks of missing articles"),
    Check("chunk_sizes_within_bound",
          "No chunk is longer than the max_chars it was chunked with.",
          "SELECT c.chunk_id, length(c.text) AS chars, split_part(a.chunker, ':', 2) AS bound "
          "FROM wiki_chunks c JOIN chunked_articles a USING (page_id) "
          "WHERE length(c.text) > CAST(split_part(a.chunker, ':', 2) AS INTEGER)",
          "chunks over the size bound"),
)
