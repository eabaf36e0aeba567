"""Synchronising the chunk table with the article table."""

import duckdb

from pipeline.corpus.chunk_table import sync_chunks


def chunk_ids(db: duckdb.DuckDBPyConnection, page_id: int) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT chunk_id FROM wiki_chunks WHERE page_id = ? ORDER BY ordinal", [page_id]
    ).fetchall()]


def test_sample_chunks_are_bounded_and_unique(sample_warehouse: duckdb.DuckDBPyConnection) -> None:
    rows, distinct, longest, empty = sample_warehouse.execute(
        "SELECT count(*), count(DISTINCT chunk_id), max(length(text)), "
        "count(*) FILTER (WHERE trim(text) = '') FROM wiki_chunks").fetchone()
    assert rows > 15_000 and rows == distinct and longest <= 512 and empty == 0


def test_only_changed_articles_are_rechunked_and_keep_their_ids(
        sample_warehouse: duckdb.DuckDBPyConnection) -> None:
    db = sample_warehouse
    page = db.execute("SELECT page_id FROM wiki_articles ORDER BY page_id LIMIT 1").fetchone()[0]
    other = db.execute("SELECT page_id FROM wiki_articles ORDER BY page_id DESC LIMIT 1"
                       ).fetchone()[0]
    other_ids = chunk_ids(db, other)
    assert sync_chunks(db, 512, 1, "test").articles_chunked == 0

    db.execute("UPDATE wiki_articles SET text = text || ' An added sentence.', "
               "content_hash = 'changed' WHERE page_id = ?", [page])
    db.execute("DELETE FROM wiki_articles WHERE page_id = ?", [other])
    result = sync_chunks(db, 512, 1, "test")
    assert (result.articles_chunked, result.articles_removed) == (1, 1)
    assert chunk_ids(db, other) == [] and other_ids
    last = db.execute("SELECT text FROM wiki_chunks WHERE page_id = ? ORDER BY ordinal DESC "
                      "LIMIT 1", [page]).fetchone()[0]
    assert last.endswith("An added sentence.")


def test_new_settings_rechunk_everything(sample_warehouse: duckdb.DuckDBPyConnection) -> None:
    db = sample_warehouse
    articles = db.execute("SELECT count(*) FROM wiki_articles").fetchone()[0]
    before = db.execute("SELECT count(*) FROM wiki_chunks").fetchone()[0]
    result = sync_chunks(db, 256, 0, "test")
    assert result.articles_chunked == articles
    assert db.execute("SELECT count(*) FROM wiki_chunks").fetchone()[0] == result.chunks_written
    assert result.chunks_written > before
    assert db.execute("SELECT max(length(text)) FROM wiki_chunks").fetchone()[0] <= 256
