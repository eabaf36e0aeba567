"""Keyword queries of a question, built the way the 4th-place solution built them.

The prompt and each option are split into sentences (blingfire, by the chunker's splitter),
and each sentence becomes one query: its words lowercased, stripped of punctuation, without
stop words, each word once, in order of first appearance. Sentence-sized queries keep each
query on one topic, so a prompt that names two things finds the article of each, and an
option's query finds the passage that would confirm or refute that option. Stop words
(scikit-learn's English list) only add noise to a keyword search.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from pipeline.corpus.chunking import split_sentences
from pipeline.questions.question import Question

STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)
PROMPT = "prompt"

# Possessive endings and apostrophes go before splitting, so "Newton's" is "newton", not
# "newton" + "s", and "don't" stays one word. Then every run of letters or digits is a word.
POSSESSIVE = re.compile(r"['\u2019]s\b")
APOSTROPHE = re.compile(r"['\u2019]")
WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Query:
    """One search query; ``label`` is ``"prompt"`` or the option letter it came from."""

    question_id: str
    label: str
    sentence: int
    words: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def key(self) -> str:
        """Unique within a question set: how search hits are filed against their query."""
        return f"{self.question_id}:{self.label}:{self.sentence}"

    @property
    def is_prompt(self) -> bool:
        return self.label == PROMPT


def words(text: str, stop_words: Collection[str] = STOP_WORDS) -> list[str]:
    """The lowercase words of ``text`` without punctuation and stop words (repeats kept)."""
    text = APOSTROPHE.sub("", POSSESSIVE.sub("", text.lower()))
    return [w for w in WORD.findall(text) if w not in stop_words]


def unique_words(text: str, stop_words: Collection[str] = STOP_WORDS) -> tuple[str, ...]:
    """:func:`words` with each word once, in order of first appearance."""
    return tuple(dict.fromkeys(words(text, stop_words)))


def build_queries(question: Question, stop_words: Collection[str] = STOP_WORDS) -> list[Query]:
    """The prompt's sentence queries, then each option's, in order A to E.

    Sentences left with no words are dropped, and so is a query whose words repeat an earlier
    query of the same question (an option that restates the prompt, say): searching it again
    would return the same hits and count them twice towards a passage's query hits.
    """
    queries: list[Query] = []
    seen: set[tuple[str, ...]] = set()
    parts = [(PROMPT, question.prompt), *zip(question.letters, question.options, strict=True)]
    for label, text in parts:
        for index, sentence in enumerate(split_sentences(text)):
            query_words = unique_words(sentence, stop_words)
            if query_words and query_words not in seen:
                seen.add(query_words)
                queries.append(Query(question.id, label, index, query_words))
    return queries


def build_all_queries(questions: Iterable[Question],
                      stop_words: Collection[str] = STOP_WORDS) -> dict[str, list[Query]]:
    """Queries of every question, by question id."""
    return {q.id: build_queries(q, stop_words) for q in questions}
