"""The semantic ranking: prompt↔passage with a first embedder, option↔passage with a second.

The recipe's heavier option embedder (all-mpnet-base-v2) manages a handful of chunks a second on
a CPU, so it runs in two stages. Stage one orders every candidate by prompt similarity under the
first embedder, whose vectors of every chunk ``chunk_embeddings`` has already computed. Stage
two re-scores only the ``rerank_top`` best of that order with both embedders combined
(:func:`pipeline.rankings.orders.semantic_scores`); the rest follow in stage-one order. The second
embedder therefore sees only the chunks a packed context can actually hold, and every vector,
chunk or question text, goes through the embedding cache, so nothing is embedded twice.

A passage's vector is the normalised mean of its chunks' vectors: passages are runs of up to a
few chunks, longer than the embedders' sequence limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import duckdb
import numpy as np

from pipeline.questions.question import Question
from pipeline.rankings.orders import RankedPassage, cosine_similarities, semantic_scores
from pipeline.retrieval.dense import load_matrix, normalise
from pipeline.retrieval.embeddings import TextEncoder, embed_missing
from pipeline.retrieval.passages import Passage


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class VectorCache:
    """Vectors of chunks (by chunk id) and of free texts under one embedder, computed at most
    once through the warehouse's embedding cache."""

    def __init__(self, db: duckdb.DuckDBPyConnection, embedder: TextEncoder,
                 log: Callable[[str], None]) -> None:
        self.db, self.embedder, self.log = db, embedder, log
        self.computed = 0

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not chunk_ids:
            return {}
        rows = self.db.execute(
            "SELECT chunk_id, content_hash, text FROM wiki_chunks "
            "WHERE chunk_id IN (SELECT unnest(?))", [list(set(chunk_ids))]).fetchall()
        missing = set(chunk_ids) - {r[0] for r in rows}
        if missing:
            raise KeyError(f"chunks not in wiki_chunks: {sorted(missing)[:5]}; re-run the "
                           "candidate_passages asset")
        self.computed += embed_missing(self.db, self.embedder, {h: t for _, h, t in rows},
                                       log=self.log).computed
        matrix = load_matrix(self.db, self.embedder.key, [h for _, h, _ in rows])
        return {chunk_id: matrix[i] for i, (chunk_id, _, _) in enumerate(rows)}

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        self.computed += embed_missing(self.db, self.embedder, dict(zip(hashes, texts,
                                                                        strict=True)),
                                       log=self.log).computed
        return load_matrix(self.db, self.embedder.key, hashes)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`texts` under the name a sentence encoder has, so that a reader that embeds
        (:class:`pipeline.answering.readers.similarity.SimilarityReader`) goes through the cache."""
        return self.texts(texts)


def passage_vectors(passages: Sequence[Passage], chunk_vectors: dict[str, np.ndarray]
                    ) -> np.ndarray:
    """One unit vector per passage: the normalised mean of its chunks' vectors."""
    return normalise(np.stack([np.mean([chunk_vectors[c] for c in p.chunk_ids], axis=0)
                               for p in passages]))


def rank_all(questions: Sequence[tuple[str, Question]],
             candidates: dict[tuple[str, str], list[Passage]], prompt: VectorCache,
             option: VectorCache, *, rerank_top: int = 5, prompt_weight: float = 0.5
             ) -> dict[tuple[str, str], list[RankedPassage]]:
    """The semantic ranking of every question's candidates (see the module docstring)."""
    every_chunk = [c for ps in candidates.values() for p in ps for c in p.chunk_ids]
    prompt_chunks = prompt.chunks(every_chunk)
    prompt_texts = prompt.texts([q.prompt for _, q in questions])
    first: dict[tuple[str, str], list[RankedPassage]] = {}
    for (role, question), vector in zip(questions, prompt_texts, strict=True):
        passages = candidates.get((role, question.id), [])
        scores = (cosine_similarities(vector, passage_vectors(passages, prompt_chunks))
                  if passages else [])
        first[(role, question.id)] = sorted(
            (RankedPassage(p, float(s)) for p, s in zip(passages, scores, strict=True)),
            key=lambda r: (-r.score, r.passage.passage_id))

    heads = {key: [r.passage for r in ranked[:rerank_top]] for key, ranked in first.items()}
    option_chunks = option.chunks([c for ps in heads.values() for p in ps for c in p.chunk_ids])
    option_texts = option.texts([o for _, q in questions for o in q.options])
    ranked_all: dict[tuple[str, str], list[RankedPassage]] = {}
    end = 0
    for (role, question), vector in zip(questions, prompt_texts, strict=True):
        key = (role, question.id)
        start, end = end, end + len(question.options)  # each question's own option vectors
        head = heads[key]
        if not head:
            ranked_all[key] = []
            continue
        scores = semantic_scores(vector, option_texts[start:end],
                                 passage_vectors(head, prompt_chunks),
                                 passage_vectors(head, option_chunks), prompt_weight)
        reranked = sorted((RankedPassage(p, float(s)) for p, s in zip(head, scores,
                                                                         strict=True)),
                          key=lambda r: (-r.score, r.passage.passage_id))
        floor = min(r.score for r in reranked)
        # The tail keeps stage-one order below every re-scored passage.
        tail = [RankedPassage(r.passage, floor - 1.0 - j / 1e6)
                for j, r in enumerate(first[key][rerank_top:])]
        ranked_all[key] = reranked + tail
    return ranked_all
