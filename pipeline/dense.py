"""Dense retrieval: exact top-k over every chunk's vector, by batched matrix product.

What the winning teams did on one GPU box, and on a CPU it is as exact and fast enough for the
sample (21.6k chunks of 384 floats: 33 MB). A full enwiki corpus (tens of millions of chunks)
outgrows one machine's memory; then the vectors belong in Elasticsearch ``dense_vector`` fields
and kNN search (see the README).
"""

from __future__ import annotations

import duckdb
import numpy as np

from pipeline.embeddings import load_matrix, top_k


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

