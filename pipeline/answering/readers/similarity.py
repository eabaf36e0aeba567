"""The embedding-similarity reader: the option closest in meaning to some sentence of the context.

Where the lexical reader (:mod:`pipeline.answering.readers.lexical`) needs the option's very words
in the context, this one survives paraphrase: each option and each sentence of the context
become unit vectors under a sentence embedder, and an option's logit is its cosine similarity
to the context sentences that match it best.

Choices, and why:

* Sentences, not the whole context: a packed context is longer than a small embedder reads
  (all-MiniLM-L6-v2 stops at 256 word pieces), and the fact that decides a question usually
  sits in one sentence, which a whole-context vector would dilute.
* The logit is the mean of the ``top_k`` highest similarities (``top_k=1``, the maximum, by
  default): one sentence stating the option is the evidence wanted. A larger ``top_k`` damps a
  single accidental match, at the cost of options stated once.
* Options alone by default (``with_prompt=False``): all of a question's options share the
  prompt, so
  "prompt + option" texts mostly measure the prompt's similarity, which is the same for every
  option and shrinks their differences; prefixing helps options too short to mean anything
  alone ("3 metres"), so it is a switch.

Batching: :meth:`SimilarityReader.score_many` encodes the distinct texts of every question in
one call, so a set of questions costs one pass through the model, and a sentence repeated
across contexts (the same passage retrieved for several questions) is embedded once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.answering.readers import Reader, pad
from pipeline.corpus.chunking import split_sentences
from pipeline.questions.question import Question


class SentenceEncoder(Protocol):
    """What the reader needs of an embedder (:class:`pipeline.retrieval.embeddings.Embedder`
    fits)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def option_texts(question: Question, with_prompt: bool) -> list[str]:
    """The texts embedded for the question's own options (2 to 10): each option, or the prompt
    then the option."""
    if with_prompt:
        return [f"{question.prompt}\n{option}" for option in question.options]
    return list(question.options)


def context_sentences(context: str) -> list[str]:
    """The context's sentences, stripped, empty ones dropped (split as the chunker splits)."""
    return [s.strip() for s in split_sentences(context) if s.strip()]


def top_k_mean(similarities: np.ndarray, top_k: int) -> np.ndarray:
    """Per row, the mean of its ``top_k`` largest values (fewer when the row is shorter)."""
    if similarities.shape[1] == 0:
        return np.zeros(similarities.shape[0], dtype=np.float64)
    k = min(top_k, similarities.shape[1])
    best = -np.sort(-similarities, axis=1)[:, :k]
    return best.mean(axis=1)


@dataclass
class SimilarityReader(Reader):
    """Scores each option by its best cosine similarity to the context's sentences."""

    encoder: SentenceEncoder
    name: str = "similarity"
    top_k: int = 1
    with_prompt: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")

    def similarities(self, items: Iterable[tuple[Question, str]]) -> list[np.ndarray]:
        """Per pair, the ``(options, sentences)`` cosine similarities of the question's own
        options to its context sentences.

        A context with no sentences gives an ``(options, 0)`` array.
        """
        pairs = list(items)
        per_pair = [(option_texts(q, self.with_prompt), context_sentences(c)) for q, c in pairs]
        index: dict[str, int] = {}
        for options, sentences in per_pair:
            for text in (*options, *sentences):
                index.setdefault(text, len(index))
        if not index:
            return [np.zeros((len(q.options), 0)) for q, _ in pairs]
        vectors = np.asarray(self.encoder.encode(list(index)), dtype=np.float64)
        if vectors.shape[0] != len(index):
            raise ValueError(f"the encoder gave {vectors.shape[0]} vectors for {len(index)} "
                             "texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        result = []
        for options, sentences in per_pair:
            option_vectors = vectors[[index[t] for t in options]]
            sentence_vectors = vectors[[index[t] for t in sentences]] if sentences else (
                np.zeros((0, vectors.shape[1])))
            result.append(option_vectors @ sentence_vectors.T)
        return result

    def score_many(self, items: Iterable[tuple[Question, str]]) -> np.ndarray:
        """An ``(n, MAX_OPTIONS)`` array of logits, NaN past each question's options, every
        question's texts embedded in one batch.

        A question whose context has no sentences gets zeros (no evidence either way).
        """
        return pad([top_k_mean(s, self.top_k) for s in self.similarities(items)])

    def score(self, question: Question, context: str) -> np.ndarray:
        """One logit per option: the top-``k`` mean similarity of each option to the context."""
        return self.score_many([(question, context)])[0, : len(question.options)]
