"""The embedded lexical index: tantivy on disk, in a folder the caller picks. Nothing to start.

Why tantivy rather than bm25s: bm25s keeps its index as whole sparse matrices, in memory, that
are rebuilt from the full corpus whenever one chunk changes, and it scores with its own
tokenizer and stemmer. Tantivy (Lucene's design in Rust) keeps segments on disk, applies
upserts and deletes by ``chunk_id`` without touching the rest, commits atomically (a reader
sees all of a commit or none), and scores with real BM25 over a configurable analyzer, which
lets it analyse exactly like the Elasticsearch backend.

Layout of the folder::

    CURRENT                  the live generation's name, replaced atomically
    g20260801t120000-ab12/   one tantivy index per generation

A full build writes a new generation folder and switches ``CURRENT`` only once it committed;
the old folder is removed afterwards. Deleting the whole folder is how one asks for a clean
rebuild: the next sync finds no generation and builds one.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import tantivy

from pipeline.retrieval.search.base import (
    ENGLISH_STOP_WORDS,
    SCHEMA_VERSION,
    SEARCH_FIELDS,
    Doc,
    Hit,
    IndexMappingError,
    IndexNotBuiltError,
    IndexWriteError,
    LexicalIndex,
    new_generation,
)

# The analyzer's name is part of the schema: changing the analysis means a new name, and an
# index built with the old one is refused instead of being searched with the wrong analysis.
TOKENIZER = f"english_chunks_v{SCHEMA_VERSION}"
GENERATION_NAME = re.compile(r"^g\d{8}t\d{6}-[0-9a-f]{8}$")
CURRENT = "CURRENT"


def english_analyzer() -> tantivy.TextAnalyzer:
    """Letters-and-digits tokens, lowercased, Lucene's English stop words, Snowball stemming."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.custom_stopword(list(ENGLISH_STOP_WORDS)))
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def chunk_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw", index_option="basic")
    for field in SEARCH_FIELDS:  # BM25 needs frequencies, not positions (no phrase queries)
        builder.add_text_field(field, tokenizer_name=TOKENIZER, index_option="freq")
    builder.add_text_field("content_hash", stored=True, tokenizer_name="raw",
                           index_option="basic")
    return builder.build()


class TantivyIndex(LexicalIndex):
    """A tantivy index of chunks in ``path`` (created on the first build).

    ``heap_size`` is the writer's indexing memory, shared by its ``threads`` (0: tantivy
    chooses).
    """

    backend = "tantivy"

    def __init__(self, path: str | os.PathLike[str], *, heap_size: int = 256_000_000,
                 threads: int = 0) -> None:
        self.path = Path(path).resolve()
        self.heap_size = heap_size
        self.threads = threads
        self._schema = chunk_schema()
        self._analyzer = english_analyzer()
        self._open_generation: str | None = None
        self._index: tantivy.Index | None = None
        self._writer: tantivy.IndexWriter | None = None
        self._meta_stamp: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"TantivyIndex({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The folder's own name, not its path: the generation alone is unique, and a working
        area copied or moved elsewhere must keep the index key its warehouse recorded."""
        return self.path.name

    def generation(self) -> str | None:
        generation = self._current()
        if generation is not None:
            self._open(generation)  # refuses an index of another schema
        return generation

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self._search(self._searcher(), query, k)

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """All queries against one snapshot of the index.

        Sequential on purpose: tantivy-py holds the GIL while it searches, so threads measured
        slower than a plain loop.
        """
        searcher = self._searcher()
        return [self._search(searcher, query, k) for query in queries]

    def upsert(self, docs: Sequence[Doc]) -> None:
        writer = self._writer_for_update()
        for doc in docs:
            # A delete applies only to documents added before it, so this pair replaces.
            writer.delete_documents_by_term("chunk_id", doc.chunk_id)
            writer.add_document(self._document(doc))

    def delete(self, chunk_ids: Sequence[str]) -> None:
        writer = self._writer_for_update()
        for chunk_id in chunk_ids:
            writer.delete_documents_by_term("chunk_id", chunk_id)

    def commit(self) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.commit()
        writer.wait_merging_threads()  # also releases the writer's lock on the folder
        self._require_index().reload()

    def rollback(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.rollback()
            del writer

    def rebuild(self, batches: Iterable[Sequence[Doc]]) -> str:
        self.rollback()
        generation = new_generation()
        target = self.path / generation
        target.mkdir(parents=True)
        try:
            index = self._tantivy_index(target, reuse=False)
            writer = index.writer(heap_size=self.heap_size, num_threads=self.threads)
            try:
                for docs in batches:
                    for doc in docs:
                        writer.add_document(self._document(doc))
                writer.commit()
                writer.wait_merging_threads()
                index.reload()
            finally:
                del writer  # drops uncommitted documents and the lock if the build failed
            self._switch(generation)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        self._index, self._open_generation = index, generation
        for child in self.path.iterdir():
            if child.is_dir() and child.name != generation and GENERATION_NAME.match(child.name):
                shutil.rmtree(child, ignore_errors=True)  # older builds, or failed ones
        return generation

    def count(self) -> int:
        return self._searcher().num_docs

    def close(self) -> None:
        self.rollback()
        self._index = self._open_generation = None

    # -- internals ---------------------------------------------------------------------------

    def _current(self) -> str | None:
        try:
            generation = (self.path / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        if not GENERATION_NAME.match(generation) or not (self.path / generation).is_dir():
            return None
        return generation

    def _open(self, generation: str) -> tantivy.Index:
        if self._index is None or self._open_generation != generation:
            self.rollback()
            self._index = self._tantivy_index(self.path / generation, reuse=True)
            self._open_generation = generation
        return self._index

    def _tantivy_index(self, folder: Path, *, reuse: bool) -> tantivy.Index:
        try:
            index = tantivy.Index(self._schema, path=str(folder), reuse=reuse)
        except ValueError as exc:
            if "schema does not match" not in str(exc):
                raise
            raise IndexMappingError(
                f"the tantivy index in {folder} has other fields or analysis than this code "
                f"(schema version {SCHEMA_VERSION}); rebuild it with sync_index(..., "
                "rebuild=True) or delete the folder") from None
        index.register_tokenizer(TOKENIZER, self._analyzer)
        return index

    def _require_index(self) -> tantivy.Index:
        generation = self._current()
        if generation is None:
            raise IndexNotBuiltError(f"no lexical index in {self.path} yet; sync_index builds it")
        return self._open(generation)

    def _searcher(self) -> tantivy.Searcher:
        """A searcher that sees the latest commit, this process's or another's.

        tantivy's own reload follows commits only after a delay; a ``stat`` of ``meta.json``
        (rewritten by every commit) costs a microsecond and makes the reload deterministic.
        """
        index = self._require_index()
        meta = os.stat(self.path / str(self._open_generation) / "meta.json")
        stamp = (meta.st_ino, meta.st_mtime_ns, meta.st_size)
        if stamp != self._meta_stamp:
            index.reload()
            self._meta_stamp = stamp
        return index.searcher()

    def _writer_for_update(self) -> tantivy.IndexWriter:
        if self._writer is None:
            index = self._require_index()
            try:
                self._writer = index.writer(heap_size=self.heap_size, num_threads=self.threads)
            except ValueError as exc:
                if "LockBusy" not in str(exc):
                    raise
                raise IndexWriteError(f"the index in {self.path} is being written by another "
                                      "writer (this process or another); one sync at a time"
                                      ) from None
        return self._writer

    def _switch(self, generation: str) -> None:
        """Point ``CURRENT`` at ``generation`` with one atomic rename, made durable."""
        temporary = self.path / f"{CURRENT}.tmp"
        with open(temporary, "w") as file:
            file.write(generation + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path / CURRENT)
        folder = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _document(self, doc: Doc) -> tantivy.Document:
        return tantivy.Document(chunk_id=doc.chunk_id, title=doc.title or "", text=doc.text or "",
                                content_hash=doc.content_hash)

    def _search(self, searcher: tantivy.Searcher, query: str, k: int) -> list[Hit]:
        terms = self._analyzer.analyze(query)
        if not terms or k <= 0:
            return []
        # One SHOULD clause per (term, field), repeated terms included: the sum of per-field
        # BM25 scores, as Elasticsearch's multi_match of type most_fields computes it.
        clauses = [(tantivy.Occur.Should,
                    tantivy.Query.term_query(self._schema, field, term, index_option="freq"))
                   for term in terms for field in SEARCH_FIELDS]
        result = searcher.search(tantivy.Query.boolean_query(clauses), k, count=False)
        return [Hit(searcher.doc(address)["chunk_id"][0], score)
                for score, address in result.hits]
