"""What the lexical-index tests share: queries with a known answer in the small corpus, and
what the warehouse records."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from pipeline.retrieval.search.base import Hit

# Queries whose answer in the small corpus is known, and chunks only they should find.
DISTINCTIVE = {
    "quasar in the constellation of Virgo": "1016-0",
    "aardvark burrowing nocturnal mammal": "1029-0",
    "abacus counting frame calculating tool": "1031-0",
}


def ids(hits: Sequence[Hit]) -> list[str]:
    return [hit.chunk_id for hit in hits]


def records(db: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Chunks recorded as indexed, per index key."""
    return dict(db.execute("SELECT index_key, count(*) FROM indexed_chunks GROUP BY ALL")
                .fetchall())


def chunk_count(db: duckdb.DuckDBPyConnection) -> int:
    return db.execute("SELECT count(*) FROM wiki_chunks").fetchone()[0]
