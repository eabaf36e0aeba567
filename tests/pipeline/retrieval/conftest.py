"""Fixtures of the retrieval tests: the real all-MiniLM-L6-v2 and a few dozen chunk texts."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.models import ResolvedModel, resolve
from pipeline.retrieval.embeddings import Embedder


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> ResolvedModel:
    return resolve("sentence-transformers/all-MiniLM-L6-v2",
                   store=tmp_path_factory.mktemp("models"), online=False)


@pytest.fixture(scope="module")
def embedder(minilm: ResolvedModel) -> Embedder:
    return Embedder(minilm, batch_size=16, threads=2)


@pytest.fixture
def chunks(sample_warehouse: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = sample_warehouse.execute("""SELECT content_hash, any_value(text) FROM wiki_chunks
        WHERE length(text) > 200 GROUP BY content_hash ORDER BY content_hash LIMIT 40""")
    return dict(rows.fetchall())
