"""Counts the work the domain code does while a test's runs execute: what a re-run recomputed
is read here, never from the caching mechanism's own up-to-date flag."""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from pipeline.answering import blend, reading_cache, scorecard
from pipeline.answering.readers import multiple_choice
from pipeline.answering.readers.lexical import LexicalReader
from pipeline.answering.readers.similarity import SimilarityReader
from pipeline.rankings import ranking_step
from pipeline.retrieval import candidates
from pipeline.retrieval.embeddings import Embedder
from pipeline.retrieval.search.elastic import ElasticsearchIndex
from pipeline.retrieval.search.elastic_vectors import ElasticsearchVectors
from pipeline.retrieval.search.embedded import TantivyIndex


class Counted:
    """Counts, by kind of work: ``retrieved`` (questions searched for), ``ranked`` (contexts
    packed), ``embedded`` (texts encoded), ``indexed`` (documents written to a lexical index),
    ``vectors_written`` (to a cluster's vector index), ``trained`` (readers fine-tuned),
    ``blended`` (blends fitted), ``heavy_read`` (questions the heavy reader or the teacher
    read), one count per (question, context) each cheap reader scored, and ``scorecard`` for
    the students the scorecard measures."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        # The scorecard times the students on the validation questions: what it scores is
        # counted apart from the logits assets' reading.
        self.measuring = False
        measure = scorecard.student_rows

        def measured(*args, **kwargs):
            self.measuring = True
            try:
                return measure(*args, **kwargs)
            finally:
                self.measuring = False

        monkeypatch.setattr(scorecard, "student_rows", measured)
        self._wrap(monkeypatch, candidates, "build_queries", "retrieved")
        self._wrap(monkeypatch, ranking_step, "pack_context", "ranked")
        self._wrap(monkeypatch, multiple_choice, "train", "trained")
        self._wrap(monkeypatch, blend, "choose_blend", "blended")
        self._wrap(monkeypatch, reading_cache, "store", "heavy_read")  # one call a question
        self._wrap(monkeypatch, Embedder, "encode", "embedded", size=lambda texts: len(texts))
        for index in (TantivyIndex, ElasticsearchIndex):
            self._wrap(monkeypatch, index, "upsert", "indexed", size=lambda docs: len(docs))
            self._wrap_rebuild(monkeypatch, index)
        self._wrap(monkeypatch, ElasticsearchVectors, "upsert", "vectors_written",
                   size=lambda ids, vectors: len(ids))
        for name, cls in (("lexical", LexicalReader), ("similarity", SimilarityReader),
                          ("multiple_choice", multiple_choice.MultipleChoiceReader)):
            self._wrap_items(monkeypatch, cls, name)

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, owner: Any, attribute: str, name: str,
              size: Callable[..., int] | None = None) -> None:
        """Count each call of ``owner.attribute``, or ``size`` of its arguments (a method's
        without ``self``)."""
        original: Callable = getattr(owner, attribute)
        method = isinstance(owner, type)

        def counted(*args, **kwargs):
            self.counts[name] += size(*args[method:], **kwargs) if size else 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attribute, counted)

    def _wrap_rebuild(self, monkeypatch: pytest.MonkeyPatch, index: type) -> None:
        original = index.rebuild

        def counted(engine, batches: Iterable[Sequence[Any]]) -> str:
            def passing() -> Iterable[Sequence[Any]]:
                for docs in batches:
                    self.counts["indexed"] += len(docs)
                    yield docs
            return original(engine, passing())

        monkeypatch.setattr(index, "rebuild", counted)

    def _wrap_items(self, monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> None:
        original = cls.score_many

        def counted(reader, items):
            items = list(items)
            self.counts["scorecard" if self.measuring else name] += len(items)
            return original(reader, items)

        monkeypatch.setattr(cls, "score_many", counted)

    def take(self) -> Counter[str]:
        """The counts since the last take."""
        counts, self.counts = self.counts, Counter()
        return counts

