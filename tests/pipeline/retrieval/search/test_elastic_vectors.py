"""Chunk vectors in Elasticsearch (dense_vector, kNN) against the exact in-DuckDB search.

Runs against noida-db on loopback (it supports dense_vector and kNN), or the cluster
ELASTICSEARCH_URL names. The vectors are real all-MiniLM-L6-v2 embeddings of the tiny shards.
"""

from __future__ import annotations

import uuid

import duckdb
import numpy as np
import pytest

from pipeline.retrieval.dense import DenseIndex
from pipeline.retrieval.embeddings import Embedder, embed_table_missing
from pipeline.retrieval.search.elastic_vectors import (
    ElasticsearchVectors,
    index_name,
    sync_vectors,
)
from tests.elasticsearch_server import ElasticsearchTarget

QUERIES = ["Which islands lie off the coast of Venezuela?", "What is a chemical element?",
           "Who painted the ceiling of a chapel?"]


@pytest.fixture
def vectors(elasticsearch: ElasticsearchTarget, tiny_warehouse: duckdb.DuckDBPyConnection,
            embedder: Embedder) -> ElasticsearchVectors:
    embed_table_missing(tiny_warehouse, embedder, log=lambda _: None)
    name = index_name(f"test-vectors-{uuid.uuid4().hex[:8]}", embedder.key)
    with ElasticsearchVectors(elasticsearch.url, name, **elasticsearch.options) as index:
        yield index
        index.client.indices.delete(index=name, ignore_unavailable=True)


def test_index_names_are_valid_and_one_per_embedder() -> None:
    name = index_name("wiki_chunk_vectors", "sentence-transformers/all-MiniLM-L6-v2@53aa:seq256")
    assert name == name.lower() and "/" not in name and ":" not in name
    assert name != index_name("wiki_chunk_vectors", "sentence-transformers/all-mpnet-base-v2")


def test_knn_finds_what_the_exact_search_finds(vectors: ElasticsearchVectors,
                                               tiny_warehouse: duckdb.DuckDBPyConnection,
                                               embedder: Embedder) -> None:
    db = tiny_warehouse
    chunks = db.execute("SELECT count(*) FROM wiki_chunks").fetchone()[0]
    assert sync_vectors(db, vectors, embedder.key) == {
        "vectors_written": chunks, "vectors_deleted": 0, "vectors_held": chunks}
    assert vectors.count() == chunks and vectors.dims() == embedder.dimension
    queries = embedder.encode(QUERIES)
    exact = DenseIndex(db, embedder.key).search(queries, 3)
    approximate = vectors.search(queries, 3)
    for near, far in zip(exact, approximate, strict=True):
        assert [c for c, _ in near] == [c for c, _ in far]
        # Cosine similarities on the exact search's scale (Elasticsearch's (1 + cos) / 2
        # turned back), up to the index's int8 quantisation.
        np.testing.assert_allclose([s for _, s in near], [s for _, s in far], atol=0.02)


def test_sync_writes_only_what_changed(vectors: ElasticsearchVectors,
                                       tiny_warehouse: duckdb.DuckDBPyConnection,
                                       embedder: Embedder) -> None:
    db = tiny_warehouse
    total = sync_vectors(db, vectors, embedder.key)["vectors_held"]
    assert sync_vectors(db, vectors, embedder.key)["vectors_written"] == 0
    edited, removed = (row[0] for row in db.execute(
        "SELECT chunk_id FROM wiki_chunks ORDER BY chunk_id LIMIT 2").fetchall())
    db.execute("UPDATE wiki_chunks SET text = 'Carbon dioxide is absorbed by plants.', "
               "content_hash = 'edited' WHERE chunk_id = ?", [edited])
    db.execute("DELETE FROM wiki_chunks WHERE chunk_id = ?", [removed])
    embed_table_missing(db, embedder, log=lambda _: None)
    assert sync_vectors(db, vectors, embedder.key) == {
        "vectors_written": 1, "vectors_deleted": 1, "vectors_held": total - 1}
    assert vectors.count() == total - 1
    best = vectors.search(embedder.encode(["What do plants absorb?"]), 1)[0][0][0]
    assert best == edited


def test_an_index_deleted_on_the_cluster_is_written_again(
        vectors: ElasticsearchVectors, tiny_warehouse: duckdb.DuckDBPyConnection,
        embedder: Embedder) -> None:
    total = sync_vectors(tiny_warehouse, vectors, embedder.key)["vectors_held"]
    vectors.client.indices.delete(index=vectors.name)
    assert sync_vectors(tiny_warehouse, vectors, embedder.key)["vectors_written"] == total
    assert vectors.count() == total
