"""What every lexical index offers: the :class:`LexicalIndex` interface, documents, errors.

Two backends implement :class:`LexicalIndex`: an embedded tantivy index on disk (the default,
nothing to start) and Elasticsearch. Both analyse ``title`` and ``text`` the same way (see
:data:`ENGLISH_STOP_WORDS` and :data:`TOKEN_SPLIT_PATTERN`) and score with BM25 (k1 1.2, b 0.75),
so that one can replace the other without changing which chunks a question retrieves.

An index has an identity, :meth:`LexicalIndex.key` (backend, name and *generation*), under which
:func:`pipeline.retrieval.search.sync.sync_index` records what it holds: a generation changes
whenever the index is created anew, so records of an older one are never trusted.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import ClassVar, NamedTuple, Self

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
    """There is no index yet: :func:`~pipeline.retrieval.search.sync.sync_index` builds it."""


def new_generation() -> str:
    """A fresh, sortable, unique generation name: ``g20260801t120000-1a2b3c4d``."""
    return f"g{datetime.now(UTC):%Y%m%dt%H%M%S}-{uuid.uuid4().hex[:8]}"


class LexicalIndex(ABC):
    """A BM25 index of chunks. Writes become visible at :meth:`commit` (or a full build).

    ``generation`` names the physical index that serves right now; it changes whenever the
    index is created anew, which is how
    :func:`~pipeline.retrieval.search.sync.sync_index` knows its records went stale.
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
    """The identity of one generation of an index, as :meth:`LexicalIndex.key` gives it."""
    return f"{backend}:{name}:{generation}"
