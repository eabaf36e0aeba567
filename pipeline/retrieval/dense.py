"""Dense retrieval: exact top-k over every chunk's vector, by batched matrix product.

What the winning teams did on one GPU box, and on a CPU it is as exact and fast enough for the
sample (21.6k chunks of 384 floats: 33 MB). A full enwiki corpus (tens of millions of chunks)
outgrows one machine's memory; then the vectors belong in Elasticsearch ``dense_vector`` fields
and kNN search (see docs/recipes.md).

The vectors are those :mod:`pipeline.retrieval.embeddings` cached in ``text_embeddings``, read
back as one normalised float32 matrix. Search is exact: a matrix product of normalised vectors
(cosine similarity) computed in blocks of queries x chunks, so memory stays bounded whatever the
corpus size, keeping a running top-k. Ties are broken by the lower index, so the result equals a
stable argsort of the full scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa


class DenseIndex:
    """The chunk vectors of one embedder (``model_key``), loaded from the embedding cache."""

    def __init__(self, db: duckdb.DuckDBPyConnection, model_key: str) -> None:
        rows = db.execute("SELECT chunk_id, content_hash FROM wiki_chunks ORDER BY chunk_id"
                          ).fetchall()
        self.chunk_ids = [chunk_id for chunk_id, _ in rows]
        self.matrix = load_matrix(db, model_key, [content_hash for _, content_hash in rows])

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` chunks most similar to each query vector (unit vectors: cosine)."""
        if not len(vectors) or not self.chunk_ids:
            return [[] for _ in range(len(vectors))]
        indices, scores = top_k(np.atleast_2d(vectors), self.matrix, k)
        return [[(self.chunk_ids[i], float(s)) for i, s in zip(row, row_scores, strict=True)]
                for row, row_scores in zip(indices, scores, strict=True)]


def load_matrix(db: duckdb.DuckDBPyConnection, model_key: str,
                hashes: Sequence[str]) -> np.ndarray:
    """The vectors of ``hashes`` for ``model_key`` as a float32 matrix, row i for hashes[i],
    normalised to unit length. Raises ``KeyError`` if any hash has no vector."""
    wanted = pa.table({"pos": pa.array(np.arange(len(hashes), dtype=np.int64)),
                       "content_hash": pa.array(list(hashes), pa.string())})
    db.register("_order", wanted)
    try:
        table = db.sql("""SELECT o.pos, e.vector FROM _order o
            JOIN text_embeddings e ON e.model_key = ? AND e.content_hash = o.content_hash
            ORDER BY o.pos""", params=[model_key]).to_arrow_table()
    finally:
        db.unregister("_order")
    if table.num_rows != len(hashes):
        found = set(table.column("pos").to_numpy().tolist())
        absent = [h for i, h in enumerate(hashes) if i not in found]
        raise KeyError(f"{len(absent)} of {len(hashes)} hashes have no vector for {model_key} "
                       f"(first: {absent[:3]}); run embed_missing first")
    if not len(hashes):
        return np.zeros((0, 0), dtype=np.float32)
    column = table.column("vector").combine_chunks()
    matrix = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = matrix.reshape(len(hashes), -1)
    return normalise(matrix)


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as a new contiguous float32 array."""
    matrix = np.array(matrix, dtype=np.float32, copy=True)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


def top_k(queries: np.ndarray, matrix: np.ndarray, k: int, *, query_block: int = 256,
          chunk_block: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` rows of ``matrix`` by dot product with each query (cosine similarity for
    unit vectors): ``(indices, scores)``, each of shape (queries, min(k, rows)), best first.

    Scores are computed ``query_block`` x ``chunk_block`` at a time (128 MB of float32 at the
    defaults), keeping a running top-k, so memory does not grow with the corpus. Equal scores
    are ordered by the lower index, as a stable argsort of the full score matrix would.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if queries.ndim != 2 or matrix.ndim != 2 or queries.shape[1] != matrix.shape[1]:
        raise ValueError(f"queries {queries.shape} and matrix {matrix.shape} do not match")
    if k < 1:
        raise ValueError("k must be positive")
    rows = matrix.shape[0]
    k = min(k, rows)
    indices = np.zeros((len(queries), k), dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    for q_start in range(0, len(queries), query_block):
        block = queries[q_start:q_start + query_block]
        best_idx = np.zeros((len(block), 0), dtype=np.int64)
        best_val = np.zeros((len(block), 0), dtype=np.float32)
        for c_start in range(0, rows, chunk_block):
            part = block @ matrix[c_start:c_start + chunk_block].T
            np.nan_to_num(part, copy=False, nan=-np.inf)  # a NaN must not break the cut
            idx, val = _block_top(part, c_start, k)
            best_idx, best_val = _merge(np.hstack([best_idx, idx]), np.hstack([best_val, val]), k)
        indices[q_start:q_start + len(block)] = best_idx
        scores[q_start:q_start + len(block)] = best_val
    return indices, scores


def _merge(idx: np.ndarray, val: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best by (higher score, lower index)."""
    order = np.lexsort((idx, -val), axis=-1)[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(val, order, axis=1)


def _block_top(part: np.ndarray, offset: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of one score block, the ``k`` best (ties at the cut: lower index wins)."""
    n_rows, n_cols = part.shape
    if n_cols <= k:
        return np.broadcast_to(np.arange(n_cols) + offset, part.shape).copy(), part
    threshold = np.partition(part, n_cols - k, axis=1)[:, n_cols - k, None]
    # Every element at or above the row's k-th largest: k of them, more when there are ties.
    rows, cols = np.nonzero(part >= threshold)
    values = part[rows, cols]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    take = starts[:, None] + np.arange(k)
    return cols[take].astype(np.int64) + offset, values[take]
