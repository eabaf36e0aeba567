"""Exact dense search: vectors read back from the cache, and top-k equal to a full argsort."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from pipeline.retrieval.dense import load_matrix, top_k
from pipeline.retrieval.embeddings import Embedder, embed_missing


def test_vectors_round_trip_in_the_order_asked(sample_warehouse: duckdb.DuckDBPyConnection,
                                               embedder: Embedder,
                                               chunks: dict[str, str]) -> None:
    db = sample_warehouse
    embed_missing(db, embedder, chunks, log=lambda _: None)
    order = list(chunks)[::-3] + list(chunks)[:2]  # shuffled, with repeats
    matrix = load_matrix(db, embedder.key, order)
    assert matrix.dtype == np.float32 and matrix.shape == (len(order), 384)
    np.testing.assert_allclose(matrix, embedder.encode([chunks[h] for h in order]), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    with pytest.raises(KeyError, match="1 of 3 hashes have no vector"):
        load_matrix(db, embedder.key, [order[0], "no-such-hash", order[1]])


def _assert_same_ranking(indices: np.ndarray, scores: np.ndarray, full: np.ndarray,
                         k: int) -> None:
    """``indices``/``scores`` equal a stable argsort of ``full``, up to float rounding: where
    two scores are within 1e-5 of each other their order may differ, nowhere else."""
    reference = np.argsort(-full, axis=1, kind="stable")[:, :k]
    ref_scores = np.take_along_axis(full, reference, axis=1)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    for row in range(len(full)):
        if not np.array_equal(indices[row], reference[row]):
            differ = indices[row] != reference[row]
            assert np.all(np.abs(full[row, indices[row][differ]] - ref_scores[row][differ])
                          < 1e-5), f"query {row}: {indices[row]} vs {reference[row]}"


def test_top_k_equals_brute_force_on_real_embeddings(
        sample_warehouse: duckdb.DuckDBPyConnection, embedder: Embedder,
        chunks: dict[str, str]) -> None:
    embed_missing(sample_warehouse, embedder, chunks, log=lambda _: None)
    matrix = load_matrix(sample_warehouse, embedder.key, list(chunks))
    queries = embedder.encode(["What is the speed of light?", "Which organelle makes ATP?",
                               "Who wrote the theory of general relativity?",
                               *[text[:80] for text in list(chunks.values())[:5]]])
    indices, scores = top_k(queries, matrix, 7, query_block=3, chunk_block=9)
    assert indices.shape == scores.shape == (8, 7)
    _assert_same_ranking(indices, scores, queries @ matrix.T, 7)
    # A chunk's own opening finds the chunk first.
    assert list(indices[3:, 0]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("chunk_block", [1, 7, 64, 10_000])
def test_top_k_is_exact_with_ties_and_any_block_size(chunk_block: int) -> None:
    rng = np.random.default_rng(chunk_block)
    # Small integers: every product is exact in float32 and many scores tie.
    matrix = rng.integers(-2, 3, size=(500, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(37, 8)).astype(np.float32)
    indices, scores = top_k(queries, matrix, 12, query_block=5, chunk_block=chunk_block)
    full = queries @ matrix.T
    reference = np.argsort(-full, axis=1, kind="stable")[:, :12]
    assert np.array_equal(indices, reference)
    assert np.array_equal(scores, np.take_along_axis(full, reference, axis=1))


def test_top_k_with_k_beyond_the_rows_returns_all_ranked() -> None:
    matrix = np.eye(3, dtype=np.float32)
    indices, scores = top_k(np.array([[0.1, 0.9, 0.5]], np.float32), matrix, 10)
    assert indices.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(scores, [[0.9, 0.5, 0.1]])
    with pytest.raises(ValueError):
        top_k(np.ones((1, 4), np.float32), matrix, 2)
