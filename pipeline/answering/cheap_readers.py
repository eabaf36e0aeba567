"""The cheap readers' logits: every scored question under every ranking, read once per
(question, context) through the reading cache and stored per (reader, ranking).

The cheap readers are the lexical reader (words alone), the similarity reader (a sentence
embedder) and the fine-tuned multiple-choice reader; the heavy reader is the cascade's
(:mod:`pipeline.answering.cascade`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import distillation, logit_table, reading_cache
from pipeline.answering.readers import multiple_choice
from pipeline.answering.readers.lexical import SIGNAL_NAMES, LexicalReader
from pipeline.answering.readers.similarity import SimilarityReader
from pipeline.answering.reading_list import ReadingList, reading_list
from pipeline.metrics import average_precisions, estimate
from pipeline.models import ResolvedModel, weights_sha256
from pipeline.progress import Progress
from pipeline.questions.question import MAX_OPTIONS, Question
from pipeline.rankings.semantic import VectorCache
from pipeline.retrieval.embeddings import Embedder
from pipeline.source_version import source_version
from pipeline.steps import StepError, Work
from pipeline.tables import content_version

READERS = ("lexical", "similarity", "multiple_choice")
# A loaded reader: (question, context) pairs to logits and per-option signals.
Read = Callable[[list[tuple[Question, str]]], tuple[np.ndarray, dict[str, np.ndarray]]]
# Pairs read between progress lines (a multiple of every reader's batch size).
PROGRESS_CHUNK = 256
NOT_TRAINED = ("the multiple-choice reader is not trained: materialise trained_reader and "
               "student_reader")


@dataclass
class CheapReader:
    """One cheap reader as configured: how to read, and what its logits depend on besides the
    question and its context (code, settings, weights by sha256; never device or threads)."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    similarity_model: Callable[[], ResolvedModel] | None = None
    similarity_top_k: int = 1
    batch_size: int = 8
    device: str = "auto"
    log: Callable[[str], None] = print

    def identity(self, db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        identity: dict[str, Any] = {"reader": self.name, "code": READER_CODE[self.name],
                                    "scoring": SCORING_CODE, **self.settings}
        if self.name == "similarity":
            identity["weights"] = self._similarity().weights_sha256
        elif self.name == "multiple_choice":
            trained = distillation.student(db)
            if trained is None:
                raise StepError(NOT_TRAINED)
            identity["weights"], identity["max_length"] = trained[2], trained[1]
        return identity

    def _similarity(self) -> ResolvedModel:
        if self.similarity_model is None:
            raise StepError("the similarity reader needs a sentence embedder")
        return self.similarity_model()

    def score(self, db: duckdb.DuckDBPyConnection, items: ReadingList
              ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
        """The ``(n, MAX_OPTIONS)`` logits over ``items`` (NaN past each question's options),
        the per-option signals (the learned ranker's extra features) and metadata about the
        model used. Read :data:`PROGRESS_CHUNK` pairs at a time, with a progress line."""
        read, metadata = self._scorer(db)
        pairs = items.pairs()
        progress = Progress(self.name, len(pairs), self.log, unit="pairs")
        logits, signals = [], []
        for start in range(0, len(pairs), PROGRESS_CHUNK):
            chunk = pairs[start:start + PROGRESS_CHUNK]
            scored, chunk_signals = read(chunk)
            logits.append(scored)
            signals.append(chunk_signals)
            progress.advance(len(chunk))
        if not logits:
            return np.empty((0, MAX_OPTIONS)), {}, metadata
        return (np.concatenate(logits),
                {name: np.concatenate([s[name] for s in signals]) for name in signals[0]},
                metadata)

    def _scorer(self, db: duckdb.DuckDBPyConnection) -> tuple[Read, dict[str, Any]]:
        """The reader, loaded once: a function from pairs to logits and signals, and metadata
        about the model used."""
        if self.name == "lexical":
            lexical = LexicalReader()
            return lambda pairs: (lexical.score_many(pairs), lexical.signals_many(pairs)), {}
        if self.name == "similarity":
            model = self._similarity()
            # Through the embedding cache: a sentence met in several contexts, rankings or
            # runs is embedded once.
            encoder = VectorCache(db, Embedder(model, device=self.device), self.log)
            similarity = SimilarityReader(encoder, top_k=self.similarity_top_k)
            return lambda pairs: (similarity.score_many(pairs), {}), model.metadata()
        trained = distillation.student(db)
        if trained is None or not trained[0].is_dir():
            raise StepError(NOT_TRAINED)
        path, max_length, _ = trained
        chooser = multiple_choice.MultipleChoiceReader(
            path, batch_size=self.batch_size, max_length=max_length, device=self.device,
            runtime=self.settings.get("multiple_choice_runtime", "fp32"))
        return (lambda pairs: (chooser.score_many(pairs), {}),
                {"model_path": str(path), "model_weights_sha256": weights_sha256(path)})

    def score_cached(self, db: duckdb.DuckDBPyConnection, items: ReadingList
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any], int]:
        """:meth:`score` through the reading cache: only (question, context) pairs this reader
        has not read before are read; returns the logits, the signals, model metadata and how
        many pairs were read now."""
        identity = self.identity(db)
        outputs = ["logits", *(SIGNAL_NAMES if self.name == "lexical" else ())]
        keys = {name: reading_cache.reader_key(identity.get("weights", "none"),
                                               {**identity, "output": name})
                for name in outputs}
        item_keys = [reading_cache.item_key(q, c) for q, c in items.pairs()]
        cached = {name: reading_cache.lookup(db, key, sorted(set(item_keys)))
                  for name, key in keys.items()}
        missing = sorted({i for i, item in enumerate(item_keys)
                          if any(item not in cached[name] for name in outputs)})
        metadata: dict[str, Any] = {}
        if missing:
            subset = ReadingList([items.keys[i] for i in missing],
                                 [items.questions[i] for i in missing],
                                 [items.contexts[i] for i in missing])
            scored, signals, metadata = self.score(db, subset)
            for name, values in {"logits": scored, **signals}.items():
                reading_cache.store_many(db, keys[name], [item_keys[i] for i in missing],
                                         values)
                cached[name].update(zip((item_keys[i] for i in missing), values, strict=True))
        arrays = {name: np.array([cached[name][item] for item in item_keys],
                                 dtype=np.float64).reshape(-1, MAX_OPTIONS)
                  for name in outputs}
        return (arrays["logits"], {name: arrays[name] for name in outputs[1:]}, metadata,
                len(missing))


# The code each cheap reader's logits come from: its module (and what it imports) and the
# dispatch in CheapReader.score and CheapReader._scorer. Computed once at import: they key the
# reading cache.
READER_CODE = {reader: source_version(f"pipeline.answering.readers.{reader}")
               for reader in READERS}
SCORING_CODE = hashlib.sha256("".join(
    inspect.getsource(method) for method in (CheapReader.score, CheapReader._scorer)
).encode()).hexdigest()[:16]


def build(db: duckdb.DuckDBPyConnection, reader: CheapReader, ranking: str) -> Work:
    """Read every scored question under ``ranking``'s contexts and store the logits (and the
    lexical reader's signals) of (``reader``, ``ranking``)."""
    items = reading_list(db, ranking)
    scored, signals, model_metadata, read = reader.score_cached(db, items)
    logit_table.write_logits(db, reader.name, ranking, items.keys, scored)
    for name, values in signals.items():
        logit_table.write_logits(db, logit_table.signal_name(reader.name, name), ranking,
                                 items.keys, values)
    reader.log(f"{logit_table.source_name(reader.name, ranking)}: {read} questions read, "
               f"{len(items.keys) - read} taken from the reading cache")
    return Work(stored_version(db, reader.name, ranking), {
        **model_metadata, "questions_read": read, "questions_reused": len(items.keys) - read,
        "signals": ", ".join(signals) or "none"})


def stored_version(db: duckdb.DuckDBPyConnection, reader: str, ranking: str) -> str:
    return content_version(
        db, f"(SELECT * FROM reader_logits WHERE split_part(reader, '.', 1) = '{reader}' AND "
            f"ranking = '{ranking}')", logit_table.VERSION_COLUMNS)


def validation_map(db: duckdb.DuckDBPyConnection, role: str, source: str
                   ) -> dict[str, float | int]:
    """MAP@3 of one source on one labelled role, with its interval (empty without questions)."""
    try:
        labelled = logit_table.read_role(db, role, [source])
    except LookupError:
        return {}
    if not labelled.question_ids or any(a is None for a in labelled.answers):
        return {}
    est = estimate(average_precisions(labelled.sources[source], labelled.answers))
    return {f"{role}_map_at_3": round(est.value, 4), f"{role}_map_at_3_low": round(est.low, 4),
            f"{role}_map_at_3_high": round(est.high, 4), f"{role}_questions": est.n}


def describe(db: duckdb.DuckDBPyConnection, reader: str, ranking: str) -> dict[str, Any]:
    source = logit_table.source_name(reader, ranking)
    return {"source": source, **validation_map(db, "validation", source),
            **validation_map(db, "blend", source)}
