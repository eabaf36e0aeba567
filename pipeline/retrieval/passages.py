"""Candidate passages of a question: the search hits of all its queries, neighbours merged.

A question's queries (see :mod:`pipeline.retrieval.queries`) each return chunks. The chunks hit by
any of them are pooled, and hit chunks that neighbour each other in one article (consecutive
ordinals, or overlapping character ranges) are merged into one passage: a fact that two chunks
share, or that runs across their boundary, then appears once, whole, in the context instead of
twice in pieces. This module works on plain data, the hits as ``(chunk_id, score)`` pairs and
the chunk rows of the warehouse's ``wiki_chunks`` table, so any search engine can feed it.

Scores: a chunk's score is its best score over the queries that hit it, and a passage's score
is the best of its chunks'. The maximum (not the sum) keeps a merged passage comparable with a
single chunk: summing would rank a passage higher only for being longer. How many distinct
queries hit a passage is kept beside the score as a second signal, and breaks ties.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Joins two neighbouring chunks that neither overlap nor touch: the text between them (a
# section heading's markup, or whitespace where a sentence was too long to repeat) is not in
# any chunk, so it cannot be rebuilt; a newline marks the break.
GAP = "\n"

Hit = tuple[str, float]


@dataclass(frozen=True)
class ChunkRow:
    """The columns of a ``wiki_chunks`` row that passages are built from."""

    chunk_id: str
    page_id: int
    title: str
    ordinal: int
    text: str
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Passage:
    """Consecutive hit chunks of one article; ``char_start``/``char_end`` span them all."""

    passage_id: str
    page_id: int
    title: str
    chunk_ids: tuple[str, ...]
    char_start: int
    char_end: int
    text: str
    score: float
    query_hits: int


def chunk_rows(records: Iterable[Mapping[str, Any]]) -> dict[str, ChunkRow]:
    """Chunk rows by id, from mappings with (at least) the ``ChunkRow`` fields.

    ``frame.to_dict("records")`` of a pandas frame, or rows fetched from DuckDB, both fit.
    """
    rows = {}
    for r in records:
        row = ChunkRow(str(r["chunk_id"]), int(r["page_id"]), str(r["title"]), int(r["ordinal"]),
                       str(r["text"]), int(r["char_start"]), int(r["char_end"]))
        rows[row.chunk_id] = row
    return rows


def hit_chunk_ids(hits: Mapping[str, Iterable[Hit]]) -> set[str]:
    """Every chunk id the queries hit: the rows to fetch before :func:`collect_passages`."""
    return {chunk_id for query_hits in hits.values() for chunk_id, _ in query_hits}


def collect_passages(hits: Mapping[str, Iterable[Hit]], chunks: Mapping[str, ChunkRow],
                     max_passages: int | None = 20, max_chunks_per_passage: int | None = None,
                     normalise_per_query: bool = False) -> list[Passage]:
    """The candidate passages of one question, best first, at most ``max_passages``.

    ``hits`` maps each query (by any key, e.g. :attr:`pipeline.retrieval.queries.Query.key`) to its
    ``(chunk_id, score)`` hits; ``chunks`` must hold a row for every chunk hit (a missing row
    means the search index and the chunk table disagree, and raises ``KeyError``).

    ``normalise_per_query`` divides each query's scores by its best score first: BM25 scores
    grow with query length, so raw scores let the longest query (usually the prompt's) decide
    the order; normalised, every query's top hit counts alike. ``max_chunks_per_passage``
    splits longer runs of neighbours, so that one article cannot fill a whole context.
    Order: score, then query hits (both descending), then page id and ordinal.
    """
    if max_passages is not None and max_passages < 1:
        raise ValueError("max_passages must be positive (or None for no cap)")
    if max_chunks_per_passage is not None and max_chunks_per_passage < 1:
        raise ValueError("max_chunks_per_passage must be positive (or None for no cap)")
    best: dict[str, float] = {}
    hit_by: dict[str, set[str]] = defaultdict(set)
    for query, query_hits in hits.items():
        query_hits = list(query_hits)
        top = max((score for _, score in query_hits), default=0.0)
        for chunk_id, score in query_hits:
            if normalise_per_query:
                score = score / top if top > 0 else 0.0
            best[chunk_id] = max(score, best.get(chunk_id, float("-inf")))
            hit_by[chunk_id].add(query)
    by_page: dict[int, list[ChunkRow]] = defaultdict(list)
    for chunk_id in best:
        if chunk_id not in chunks:
            raise KeyError(f"chunk {chunk_id!r} was hit but has no chunk row")
        by_page[chunks[chunk_id].page_id].append(chunks[chunk_id])
    passages = [
        _passage(run, best, hit_by)
        for page_chunks in by_page.values()
        for run in neighbour_runs(page_chunks, max_chunks_per_passage)
    ]
    passages.sort(key=lambda p: (-p.score, -p.query_hits, p.page_id, p.char_start))
    return passages if max_passages is None else passages[:max_passages]


def neighbour_runs(page_chunks: Iterable[ChunkRow],
                   max_chunks: int | None = None) -> list[list[ChunkRow]]:
    """Chunks of one page grouped into runs of neighbours, in article order."""
    runs: list[list[ChunkRow]] = []
    for chunk in sorted(page_chunks, key=lambda c: c.ordinal):
        if runs and _neighbours(runs[-1][-1], chunk) and (
                max_chunks is None or len(runs[-1]) < max_chunks):
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return runs


def _neighbours(previous: ChunkRow, chunk: ChunkRow) -> bool:
    return chunk.ordinal == previous.ordinal + 1 or chunk.char_start < previous.char_end


def merge_text(run: Sequence[ChunkRow]) -> str:
    """The article text a run of neighbouring chunks covers, each character once.

    Chunks are in article order; where one starts before the previous ends (the repeated
    sentence of the chunker's overlap), only its part past that end is added, cut by character
    offsets. Chunks that touch are joined as they are, chunks with a gap by :data:`GAP`.
    """
    parts = [run[0].text]
    end = run[0].char_end
    for chunk in run[1:]:
        if chunk.char_start > end:
            parts.append(GAP)
            parts.append(chunk.text)
        elif chunk.char_end > end:
            parts.append(chunk.text[end - chunk.char_start:])
        end = max(end, chunk.char_end)
    return "".join(parts)


def _passage(run: list[ChunkRow], best: Mapping[str, float],
             hit_by: Mapping[str, set[str]]) -> Passage:
    first, last = run[0], run[-1]
    queries = set().union(*(hit_by[c.chunk_id] for c in run))
    return Passage(
        passage_id=f"{first.page_id}:{first.ordinal}-{last.ordinal}",
        page_id=first.page_id, title=first.title,
        chunk_ids=tuple(c.chunk_id for c in run),
        char_start=first.char_start, char_end=max(c.char_end for c in run),
        text=merge_text(run),
        score=max(best[c.chunk_id] for c in run),
        query_hits=len(queries),
    )
