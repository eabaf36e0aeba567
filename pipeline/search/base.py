"""What every lexical index offers, and the sync that keeps one in line with ``wiki_chunks``.

Two backends implement :class:`LexicalIndex`: an embedded tantivy index on disk (the default,
nothing to start) and Elasticsearch. Both analyse ``title`` and ``text`` the same way (see
:data:`ENGLISH_STOP_WORDS` and :data:`TOKEN_SPLIT_PATTERN`) and score with BM25 (k1 1.2, b 0.75),
so that one can replace the other without changing which chunks a question retrieves.

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
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import ClassVar, NamedTuple, Self

import duckdb
import pyarrow as pa

from pipeline.tables import append

# Lucene's English stop words (Elasticsearch's ``_english_``), spelled out so that both backends
# remove exactly the same words: tantivy's built-in English list is a longer one.
ENGLISH_STOP_WORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
)
# Tokens are runs of letters and digits: what tantivy's ``simple`` tokenizer cuts (Rust's
# ``char::is_alphanumeric``), written for Elasticsearch's Java-regex ``pattern`` tokenizer.
TOKEN_SPLIT_PATTERN = r"[^\p{IsAlphabetic}\p{N}]+"
# Bumped whenever analysis or fields change: an index built by another version is refused
# (IndexMappingError) until it is rebuilt.
SCHEMA_VERSION = "1"
SEARCH_FIELDS: tuple[str, ...] = ("title", "text")


class Hit(NamedTuple):
    chunk_id: str
    score: float


class Doc(NamedTuple):
    """One chunk as the index sees it (a tuple: millions are built per full build)."""

    chunk_id: str
    title: str
    text: str
    content_hash: str


class LexicalIndexError(Exception):
    """Base of the errors a lexical index raises; messages never contain credentials."""


class IndexUnreachableError(LexicalIndexError):
    """The search server cannot be reached (down, wrong address, TLS refused, timed out)."""


class IndexAuthenticationError(LexicalIndexError):
    """The server refused the credentials (HTTP 401) or the permissions (HTTP 403)."""


class IndexMappingError(LexicalIndexError):
    """An existing index has fields or analysis this code cannot use."""


class IndexWriteError(LexicalIndexError):
    """Documents could not be written; a full build that raises this was not switched live."""


class IndexNotBuiltError(LexicalIndexError):
    """There is no index yet: :func:`sync_index` builds it."""


def new_generation() -> str:
    """A fresh, sortable, unique generation name: ``g20260801t120000-1a2b3c4d``."""
    return f"g{datetime.now(UTC):%Y%m%dt%H%M%S}-{uuid.uuid4().hex[:8]}"


class LexicalIndex(ABC):
    """A BM25 index of chunks. Writes become visible at :meth:`commit` (or a full build).

    ``generation`` names the physical index that serves right now; it changes whenever the
    index is created anew, which is how :func:`sync_index` knows its records went stale.
    """

    backend: ClassVar[str]

    @property
    @abstractmethod
    def name(self) -> str:
        """Which index of this backend: a folder, an alias."""

    @abstractmethod
    def generation(self) -> str | None:
        """The live generation, or None when no index exists yet.

        Raises :class:`IndexMappingError` when the live index was built with other fields or
        analysis.
        """

    def key(self) -> str | None:
        """``backend:name:generation``, the identity the warehouse records the contents under."""
        generation = self.generation()
        return None if generation is None else index_key(self.backend, self.name, generation)

    @abstractmethod
    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` best chunks for free text ``query``, best first."""

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """:meth:`search` for each query, in order; backends batch it."""
        return [self.search(query, k) for query in queries]

    @abstractmethod
    def upsert(self, docs: Sequence[Doc]) -> None:
        """Add ``docs``, replacing any document with the same ``chunk_id``."""

    @abstractmethod
    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Remove these chunks; ids that are not indexed are ignored."""

    @abstractmethod
    def commit(self) -> None:
        """Make the writes since the last commit durable and searchable."""

    def rollback(self) -> None:  # noqa: B027 - a no-op is right where writes apply at once
        """Drop uncommitted writes where the backend can (tantivy); a no-op otherwise."""

    @abstractmethod
    def rebuild(self, batches: Iterable[Sequence[Doc]]) -> str:
        """Build a complete new generation from ``batches`` and switch to it; return its name.

        The old generation serves until the new one is complete and searchable; if anything
        fails (including the iteration of ``batches``) it goes on serving and the half-built
        one is removed.
        """

    @abstractmethod
    def count(self) -> int:
        """Documents in the live generation."""

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def index_key(backend: str, name: str, generation: str) -> str:
    return f"{backend}:{name}:{generation}"


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
    :class:`IndexMappingError`), or when more than ``rebuild_fraction`` of the chunks changed:
    then building afresh is cheaper than updating in place and leaves no deleted documents
    behind. Chunks are streamed from DuckDB ``batch_size`` at a time.
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
    changed = _count(db, "staging_index_changed")
    gone = _count(db, "staging_index_gone")
    total = _count(db, "wiki_chunks")
    sync = IndexSync(index_key=key, indexed=changed, deleted=gone, unchanged=total - changed,
                     documents=total)
    if changed == 0 and gone == 0:
        return sync
    if rebuild_fraction is not None and changed + gone > rebuild_fraction * max(total, 1):
        return _rebuild(db, index, batch_size,
                        f"{changed + gone} of {total} chunks changed or gone")

    db.execute("BEGIN TRANSACTION")  # write-ahead: these records are in flight until the commit
    try:
        db.execute("""DELETE FROM indexed_chunks WHERE index_key = ?
            AND chunk_id IN (SELECT chunk_id FROM staging_index_changed)""", [key])
        db.execute("INSERT INTO indexed_chunks SELECT ?, chunk_id, NULL FROM staging_index_changed",
                   [key])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    try:
        for docs in _stream_docs(db, """SELECT c.chunk_id, c.title, c.text, c.content_hash
                FROM wiki_chunks c SEMI JOIN staging_index_changed s ON c.chunk_id = s.chunk_id""",
                                 batch_size):
            index.upsert(docs)
        for ids in _stream(db, "SELECT chunk_id FROM staging_index_gone", batch_size):
            index.delete([chunk_id for (chunk_id,) in ids])
        index.commit()
    except BaseException:
        index.rollback()
        raise
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute("""DELETE FROM indexed_chunks WHERE index_key = ? AND chunk_id IN (
            SELECT chunk_id FROM staging_index_changed
            UNION ALL SELECT chunk_id FROM staging_index_gone)""", [key])
        db.execute("INSERT INTO indexed_chunks SELECT ?, chunk_id, content_hash "
                   "FROM staging_index_changed", [key])
        db.execute("UPDATE lexical_indexes SET documents = ?, synced_at = now() "
                   "WHERE index_key = ?", [total, key])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
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
    documents = _count(db, "staging_index_built")
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute("""DELETE FROM indexed_chunks WHERE index_key = ? OR index_key IN (
            SELECT index_key FROM lexical_indexes WHERE backend = ? AND name = ?)""",
                   [key, index.backend, index.name])
        db.execute("DELETE FROM lexical_indexes WHERE index_key = ? OR (backend = ? AND name = ?)",
                   [key, index.backend, index.name])
        db.execute("INSERT INTO indexed_chunks SELECT ?, chunk_id, content_hash "
                   "FROM staging_index_built", [key])
        db.execute("INSERT INTO lexical_indexes VALUES (?, ?, ?, ?, ?, now())",
                   [key, index.backend, index.name, generation, documents])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return IndexSync(index_key=key, rebuilt=True, reason=reason, indexed=documents,
                     documents=documents)


def _count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _stream(db: duckdb.DuckDBPyConnection, query: str, batch_size: int) -> Iterator[list[tuple]]:
    """Rows of ``query`` in batches, through a cursor of its own (bounded memory)."""
    reader = db.cursor()
    try:
        result = reader.execute(query)
        while rows := result.fetchmany(batch_size):
            yield rows
    finally:
        reader.close()


def _stream_docs(db: duckdb.DuckDBPyConnection, query: str,
                 batch_size: int) -> Iterator[list[Doc]]:
    for rows in _stream(db, query, batch_size):
        yield [Doc._make(row) for row in rows]
