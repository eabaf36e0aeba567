"""The lexical reader: which option the packed context states, judged by its words alone.

The questions were written by a language model from a source passage, and the correct option
tends to copy that passage while distractors change or negate it. So, with the source in the
context, the option whose content words the context holds (in order, near each other) is
likely right. Four signals per option, each cheap and needing no model:

``coverage``
    IDF-weighted share of the option's content words that occur anywhere in the context. IDF
    comes from the context's sentences (a word in every sentence says little) unless a table
    is passed in (from the corpus, say); words the context lacks count at the highest IDF, so
    missing a rare word costs most.
``bm25``
    The best BM25 score of the option (as a query of its distinct content words) against any
    one sentence of the context: coverage that must hold within a sentence, where the answer
    to a question usually sits.
``edit``
    :func:`pipeline.rankings.orders.edit_similarity` of the option against the best window of the
    context: the share of the option's words that appear *in order* in some window twice the
    option's length (word-level Levenshtein, ``import Levenshtein``). A copied option scores
    1, a reordered or negated one less.
``length``
    log of the option's length in characters over the mean of the question's options: the
    correct option is often the longest (it copies the source's detail), a prior that holds
    without context.

Signals are on different scales (a share, an unbounded BM25 sum, a log ratio) and only their
order within a question matters, so each is z-scored across the question's own options (2 to
10; an option it does not have is never scored and takes no part in the mean or the spread)
before the fixed weights of :data:`DEFAULT_WEIGHTS` add them into logits. The weights are
priors, not fitted (this module sees no answers): coverage and the in-order match are the
direct tests of "the context states this option" (1.0 each); BM25 measures much the same
words again, restricted to a sentence (0.5); length is a weak context-free prior (0.25). The
blend (:mod:`pipeline.answering.blend`) weights this reader against others on training questions,
and the learned ranker takes the raw signals (:meth:`LexicalReader.signals_many`: ``(n,
MAX_OPTIONS)`` arrays, NaN past each question's options) as features.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from pipeline.answering.readers import Reader, pad
from pipeline.corpus.chunking import split_sentences
from pipeline.questions.question import Question
from pipeline.rankings.orders import edit_similarity
from pipeline.retrieval.queries import words

SIGNAL_NAMES = ("coverage", "bm25", "edit", "length")
DEFAULT_WEIGHTS: dict[str, float] = {"coverage": 1.0, "bm25": 0.5, "edit": 1.0, "length": 0.25}
# Below this spread across a question's options a signal does not tell them apart: it adds 0
# rather than amplifying rounding noise to unit variance.
MIN_SPREAD = 1e-9


def bm25_idf(document_frequency: int, documents: int) -> float:
    """BM25's IDF with the +1 inside the log, so it is positive even for a word in every doc."""
    return math.log(1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5))


def sentence_idf(sentences: Iterable[list[str]]) -> tuple[dict[str, float], float]:
    """IDF of each word over ``sentences`` (as word lists), and the IDF of an unseen word."""
    sentence_list = list(sentences)
    frequency: Counter[str] = Counter()
    for sentence in sentence_list:
        frequency.update(set(sentence))
    n = len(sentence_list)
    return {w: bm25_idf(df, n) for w, df in frequency.items()}, bm25_idf(0, n)


def zscore(values: np.ndarray) -> np.ndarray:
    """``values`` centred and scaled to unit spread; all zeros when they (nearly) agree."""
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    if spread < MIN_SPREAD:
        return np.zeros_like(values)
    return (values - values.mean()) / spread


@dataclass(frozen=True)
class LexicalSignals:
    """The raw signals of one question's options (each an array of one value per option the
    question has, in order)."""

    coverage: np.ndarray
    bm25: np.ndarray
    edit: np.ndarray
    length: np.ndarray

    def matrix(self) -> np.ndarray:
        """An ``(options, 4)`` array, columns in the order of :data:`SIGNAL_NAMES`."""
        return np.column_stack([getattr(self, name) for name in SIGNAL_NAMES])

    def logits(self, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> np.ndarray:
        """The weighted sum of the per-question z-scored signals, one per option."""
        unknown = set(weights) - set(SIGNAL_NAMES)
        if unknown:
            raise ValueError(f"unknown lexical signals: {sorted(unknown)}")
        total = np.zeros(len(self.coverage), dtype=np.float64)
        for name, weight in weights.items():
            total += weight * zscore(getattr(self, name))
        return total


@dataclass
class LexicalReader(Reader):
    """Scores options by :class:`LexicalSignals` against the context (no model, no training).

    ``idf`` (word to IDF), when given, replaces the IDF computed from the context's sentences,
    with ``default_idf`` for words it lacks (its largest value when not given). ``k1`` and
    ``b`` are BM25's usual constants; ``window_factor`` is the window of the edit signal in
    option lengths.
    """

    name: str = "lexical"
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    idf: Mapping[str, float] | None = None
    default_idf: float | None = None
    k1: float = 1.2
    b: float = 0.75
    window_factor: int = 2

    def signals(self, question: Question, context: str) -> LexicalSignals:
        """The four raw signals of each of the question's options against ``context``."""
        sentences = [words(s) for s in split_sentences(context)]
        sentences = [s for s in sentences if s]
        context_words = {w for s in sentences for w in s}
        idf, unseen = self._idf(sentences)
        lengths = np.array([len(s) for s in sentences], dtype=np.float64)
        average = float(lengths.mean()) if len(lengths) else 0.0
        counts = [Counter(s) for s in sentences]

        k = len(question.options)
        coverage = np.zeros(k)
        bm25 = np.zeros(k)
        edit = np.zeros(k)
        for i, option in enumerate(question.options):
            terms = list(dict.fromkeys(words(option)))
            if not terms or not sentences:
                continue
            weights = np.array([idf.get(t, unseen) for t in terms])
            present = np.array([t in context_words for t in terms])
            coverage[i] = weights[present].sum() / weights.sum() if weights.sum() > 0 else 0.0
            bm25[i] = max(self._bm25(terms, idf, unseen, c, n, average)
                          for c, n in zip(counts, lengths, strict=True))
            edit[i] = edit_similarity(option, context, self.window_factor)

        chars = np.array([len(o.strip()) for o in question.options], dtype=np.float64) + 1.0
        length = np.log(chars / chars.mean())
        return LexicalSignals(coverage, bm25, edit, length)

    def score(self, question: Question, context: str) -> np.ndarray:
        """One logit per option: :meth:`LexicalSignals.logits` under this reader's weights."""
        return self.signals(question, context).logits(self.weights)

    def signals_many(self, items: Iterable[tuple[Question, str]]) -> dict[str, np.ndarray]:
        """Each signal as an ``(n, MAX_OPTIONS)`` array over the pairs, NaN past each
        question's options: features for a learned ranker."""
        rows = [self.signals(q, c) for q, c in items]
        return {name: pad([getattr(row, name) for row in rows]) for name in SIGNAL_NAMES}

    def _idf(self, sentences: list[list[str]]) -> tuple[Mapping[str, float], float]:
        if self.idf is None:
            return sentence_idf(sentences)
        default = self.default_idf
        if default is None:
            default = max(self.idf.values(), default=1.0)
        return self.idf, default

    def _bm25(self, terms: list[str], idf: Mapping[str, float], unseen: float,
              counts: Counter[str], length: float, average: float) -> float:
        norm = self.k1 * (1.0 - self.b + self.b * length / average) if average else self.k1
        score = 0.0
        for term in terms:
            tf = counts.get(term, 0)
            if tf:
                score += idf.get(term, unseen) * tf * (self.k1 + 1.0) / (tf + norm)
        return score
