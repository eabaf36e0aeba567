"""Pooling search hits into candidate passages and merging neighbouring chunks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.corpus.chunking import chunk_text
from pipeline.retrieval.passages import (
    GAP,
    ChunkRow,
    chunk_rows,
    collect_passages,
    hit_chunk_ids,
    merge_text,
    neighbour_runs,
)

ARTICLE = " ".join(
    f"Sentence {i} tells fact number {i} about the element of the day." for i in range(12))
OTHER = "Helium is a noble gas. It is light. It is inert. Balloons float with it. " * 3


def rows_of(page_id: int, title: str, text: str, max_chars: int = 140) -> dict[str, ChunkRow]:
    return {f"{page_id}-{c.ordinal}": ChunkRow(f"{page_id}-{c.ordinal}", page_id, title,
                                               c.ordinal, c.text, c.start, c.end)
            for c in chunk_text(text, max_chars, 1)}


@pytest.fixture
def chunks() -> dict[str, ChunkRow]:
    return rows_of(1, "Element", ARTICLE) | rows_of(2, "Helium", OTHER)


def test_chunks_of_the_fixture_overlap_by_a_sentence(chunks: dict[str, ChunkRow]) -> None:
    # The premise of the merge tests: consecutive chunks share a sentence.
    assert len([c for c in chunks.values() if c.page_id == 1]) >= 5
    assert chunks["1-1"].char_start < chunks["1-0"].char_end


def test_overlapping_neighbours_merge_into_the_exact_article_span(
        chunks: dict[str, ChunkRow]) -> None:
    hits = {"q:prompt:0": [("1-1", 3.0), ("1-2", 2.0)], "q:A:0": [("1-3", 5.0)]}
    (passage,) = collect_passages(hits, chunks)
    first, last = chunks["1-1"], chunks["1-3"]
    assert passage.text == ARTICLE[first.char_start:last.char_end]
    assert passage.passage_id == "1:1-3"
    assert passage.chunk_ids == ("1-1", "1-2", "1-3")
    assert (passage.char_start, passage.char_end) == (first.char_start, last.char_end)
    assert passage.title == "Element"
    assert passage.score == 5.0
    assert passage.query_hits == 2


def test_merge_rebuilds_real_articles_of_the_sample_corpus(sample_warehouse_path: Path) -> None:
    with duckdb.connect(str(sample_warehouse_path), read_only=True) as db:
        pages = db.execute("""SELECT page_id FROM wiki_chunks GROUP BY page_id
            HAVING count(*) >= 3 ORDER BY page_id LIMIT 300""").fetchall()
        ids = [p for (p,) in pages]
        articles = dict(db.execute("SELECT page_id, text FROM wiki_articles WHERE page_id IN "
                                   "(SELECT unnest(?))", [ids]).fetchall())
        cursor = db.execute("""SELECT chunk_id, page_id, title, ordinal, text, char_start,
            char_end FROM wiki_chunks WHERE page_id IN (SELECT unnest(?))""", [ids])
        names = [d[0] for d in cursor.description]
        rows = chunk_rows(dict(zip(names, r, strict=True)) for r in cursor.fetchall())
    by_page: dict[int, list[ChunkRow]] = {}
    for row in rows.values():
        by_page.setdefault(row.page_id, []).append(row)
    overlaps = gaps = 0
    for page_id, page_chunks in by_page.items():
        (run,) = neighbour_runs(page_chunks)  # every ordinal is present: one run per page
        text = articles[page_id]
        segments = [[run[0].char_start, run[0].char_end]]
        for chunk in run[1:]:
            if chunk.char_start <= segments[-1][1]:
                overlaps += chunk.char_start < segments[-1][1]
                segments[-1][1] = max(segments[-1][1], chunk.char_end)
            else:
                gaps += 1
                segments.append([chunk.char_start, chunk.char_end])
        assert merge_text(run) == GAP.join(text[a:b] for a, b in segments), page_id
    assert overlaps > 100
    assert gaps > 0


def test_pooled_hits_keep_each_chunks_best_score_and_count_distinct_queries(
        chunks: dict[str, ChunkRow]) -> None:
    hits = {
        "p": [("1-0", 1.0), ("2-0", 9.0), ("1-4", 2.0)],
        "a": [("1-0", 4.0), ("2-0", 1.0)],
        "b": [("1-4", 3.0)],
    }
    passages = collect_passages(hits, chunks)
    assert [(p.passage_id, p.score, p.query_hits) for p in passages] == [
        ("2:0-0", 9.0, 2), ("1:0-0", 4.0, 2), ("1:4-4", 3.0, 2)]


def test_ties_fall_to_query_hits_then_article_order(chunks: dict[str, ChunkRow]) -> None:
    hits = {"p": [("1-4", 2.0), ("2-1", 2.0), ("1-0", 2.0)], "a": [("2-1", 1.0)]}
    assert [p.passage_id for p in collect_passages(hits, chunks)] == ["2:1-1", "1:0-0", "1:4-4"]


def test_candidates_are_capped(chunks: dict[str, ChunkRow]) -> None:
    hits = {"p": [(f"1-{i}", float(i)) for i in range(0, 8, 2)]}
    assert [p.passage_id for p in collect_passages(hits, chunks, max_passages=2)] == [
        "1:6-6", "1:4-4"]
    assert len(collect_passages(hits, chunks, max_passages=None)) == 4
    with pytest.raises(ValueError):
        collect_passages(hits, chunks, max_passages=0)


def test_per_query_normalisation_stops_long_queries_dominating(
        chunks: dict[str, ChunkRow]) -> None:
    hits = {"long": [("1-0", 30.0), ("1-4", 20.0)], "short": [("2-0", 4.0)]}
    raw = collect_passages(hits, chunks)
    assert [p.passage_id for p in raw] == ["1:0-0", "1:4-4", "2:0-0"]
    normalised = collect_passages(hits, chunks, normalise_per_query=True)
    # Each query's top hit now scores 1; the tie goes to the lower page id.
    assert [(p.passage_id, p.score) for p in normalised] == [
        ("1:0-0", 1.0), ("2:0-0", 1.0), ("1:4-4", pytest.approx(2 / 3))]


def test_long_runs_are_split(chunks: dict[str, ChunkRow]) -> None:
    hits = {"p": [(f"1-{i}", 1.0) for i in range(5)]}
    passages = collect_passages(hits, chunks, max_chunks_per_passage=2)
    assert sorted(p.passage_id for p in passages) == ["1:0-1", "1:2-3", "1:4-4"]
    for p in passages:
        first, last = chunks[p.chunk_ids[0]], chunks[p.chunk_ids[-1]]
        assert p.text == ARTICLE[first.char_start:last.char_end]


def test_non_neighbours_stay_apart_and_gaps_are_marked() -> None:
    text = "Alpha one. Alpha two. ==Next== Beta one. Beta two."
    rows = rows_of(5, "Greek", text, max_chars=25)
    assert [r.text for r in rows.values()] == [
        "Alpha one. Alpha two.", "Beta one. Beta two."]
    hits = {"p": [("5-0", 1.0), ("5-1", 1.0)]}
    (passage,) = collect_passages(hits, rows)
    assert passage.text == "Alpha one. Alpha two." + GAP + "Beta one. Beta two."
    skipped = rows_of(6, "Many", ARTICLE)
    apart = collect_passages({"p": [("6-0", 2.0), ("6-2", 1.0)]}, skipped)
    assert [p.passage_id for p in apart] == ["6:0-0", "6:2-2"]
    assert apart[1].text == skipped["6-2"].text


def test_a_hit_without_a_chunk_row_is_an_error(chunks: dict[str, ChunkRow]) -> None:
    with pytest.raises(KeyError, match="9-9"):
        collect_passages({"p": [("9-9", 1.0)]}, chunks)


def test_hit_chunk_ids_and_rows_from_records() -> None:
    hits = {"a": [("1-0", 1.0), ("1-1", 0.5)], "b": [("1-1", 2.0)], "c": []}
    assert hit_chunk_ids(hits) == {"1-0", "1-1"}
    rows = chunk_rows([{"chunk_id": "1-0", "page_id": 1, "title": "T", "ordinal": 0,
                        "text": "Hi.", "char_start": 0, "char_end": 3, "content_hash": "x"}])
    assert rows == {"1-0": ChunkRow("1-0", 1, "T", 0, "Hi.", 0, 3)}
    assert collect_passages({"c": []}, rows) == []
