"""Chunk vectors in Elasticsearch: a ``dense_vector`` field searched by approximate kNN.

The exact search (:class:`pipeline.retrieval.dense.DenseIndex`) holds every vector in memory:
right for the sample and for a GPU machine, not for tens of millions of chunks on a cluster.
This index keeps one document per chunk (its id and its unit vector) in its own Elasticsearch
index, one per embedder (vectors of two models never share an index), and answers the same
``search(vectors, k)`` as the exact one, with cosine similarities on the same scale, so a user
switches by configuration (``VectorSearch(backend="elasticsearch")``).

Which chunks it holds is recorded in the warehouse (``indexed_vectors``), so a sync writes only
chunks whose vector is new or changed and deletes those that left the corpus; an index deleted
on the cluster is written again whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import duckdb
import numpy as np
from elasticsearch.helpers import streaming_bulk

from pipeline.retrieval.dense import load_matrix
from pipeline.retrieval.search.base import IndexNotBuiltError, IndexWriteError, LexicalIndexError
from pipeline.retrieval.search.elastic import connect
from pipeline.retrieval.search.elastic_errors import translated
from pipeline.tables import stream_rows

RECORDS_DDL = """CREATE TABLE IF NOT EXISTS indexed_vectors (
    index_name VARCHAR, chunk_id VARCHAR, content_hash VARCHAR)"""


def index_name(prefix: str, model_key: str) -> str:
    """One index per embedder: ``{prefix}-{sanitised model key}`` (lowercase, no slashes)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in model_key.lower()).strip("-")
    return f"{prefix}-{cleaned}"[:255]


class ElasticsearchVectors:
    """The vectors of one embedder in the Elasticsearch index ``name`` at ``url``."""

    backend = "elasticsearch"

    def __init__(self, url: str, name: str, *, api_key: str | None = None,
                 username: str | None = None, password: str | None = None,
                 ca_certs: str | None = None, request_timeout: float = 30.0,
                 max_retries: int = 3, num_candidates: int = 100) -> None:
        self.client, self.url = connect(url, api_key=api_key, username=username,
                                        password=password, ca_certs=ca_certs,
                                        request_timeout=request_timeout, max_retries=max_retries)
        self.name = name
        self.num_candidates = num_candidates
        self.max_retries = max_retries

    def __enter__(self) -> ElasticsearchVectors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        """Client errors as the search package's, naming the server and never a secret."""
        return translated(doing, self.url, self.name, self.max_retries)

    def exists(self) -> bool:
        with self._errors(f"looking for {self.name} at {self.url}"):
            return bool(self.client.indices.exists(index=self.name))

    def create(self, dims: int) -> None:
        """A new index for ``dims``-dimensional unit vectors, compared by cosine."""
        with self._errors(f"creating {self.name} at {self.url}"):
            self.client.indices.create(index=self.name, mappings={"properties": {
                "chunk_id": {"type": "keyword"},
                "vector": {"type": "dense_vector", "dims": dims, "index": True,
                           "similarity": "cosine"}}})

    def dims(self) -> int | None:
        """The vector size the index was made for (None when there is no index)."""
        try:
            with self._errors(f"reading the mapping of {self.name}"):
                body = self.client.indices.get_mapping(index=self.name).body
        except IndexNotBuiltError:
            return None
        mapping = next(iter(body.values()))["mappings"]["properties"]["vector"]
        return int(mapping["dims"])

    def upsert(self, chunk_ids: Sequence[str], vectors: np.ndarray) -> None:
        actions = ({"_op_type": "index", "_index": self.name, "_id": chunk_id,
                    "_source": {"chunk_id": chunk_id, "vector": vector.tolist()}}
                   for chunk_id, vector in zip(chunk_ids, vectors, strict=True))
        self._bulk(actions, "writing vectors")

    def delete(self, chunk_ids: Sequence[str]) -> None:
        actions = ({"_op_type": "delete", "_index": self.name, "_id": chunk_id}
                   for chunk_id in chunk_ids)
        self._bulk(actions, "deleting vectors", missing_ok=True)

    def refresh(self) -> None:
        with self._errors(f"refreshing {self.name}"):
            self.client.indices.refresh(index=self.name)

    def count(self) -> int:
        with self._errors(f"counting {self.name}"):
            return int(self.client.count(index=self.name)["count"])

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` chunks nearest each query vector by kNN, with cosine similarities
        (Elasticsearch scores cosine as (1 + cos) / 2; turned back here)."""
        vectors = np.atleast_2d(vectors)
        if not len(vectors):
            return []
        searches: list[dict[str, Any]] = []
        for vector in vectors:
            searches += [{"index": self.name},
                         {"knn": {"field": "vector", "query_vector": vector.tolist(), "k": k,
                                  "num_candidates": max(self.num_candidates, k)},
                          "size": k, "_source": ["chunk_id"]}]
        with self._errors(f"searching {self.name}"):
            responses = self.client.msearch(searches=searches).body["responses"]
        results = []
        for response in responses:
            if "error" in response:
                raise LexicalIndexError(f"kNN search of {self.name} failed: {response['error']}")
            results.append([(hit["_id"], 2.0 * float(hit["_score"]) - 1.0)
                            for hit in response["hits"]["hits"]])
        return results

    def _bulk(self, actions: Any, doing: str, missing_ok: bool = False) -> None:
        with self._errors(f"{doing} in {self.name}"):
            for ok, item in streaming_bulk(self.client, actions, chunk_size=500,
                                           raise_on_error=False, max_retries=3):
                result = next(iter(item.values()))
                if not ok and not (missing_ok and result.get("status") == 404):
                    raise IndexWriteError(f"{doing} in {self.name}: {result.get('error')}")


def sync_vectors(db: duckdb.DuckDBPyConnection, index: ElasticsearchVectors, model_key: str,
                 batch_size: int = 1000) -> dict[str, int]:
    """Make ``index`` hold exactly the vectors of the current chunks under ``model_key``:
    write the chunks whose vector it lacks (new, or changed text), delete those that left."""
    db.execute(RECORDS_DDL)
    dims = index.dims()
    if dims is None:  # a new index, or one deleted on the cluster: write everything again
        db.execute("DELETE FROM indexed_vectors WHERE index_name = ?", [index.name])
    gone = [chunk_id for (chunk_id,) in db.execute(
        "SELECT chunk_id FROM indexed_vectors WHERE index_name = ? AND chunk_id NOT IN "
        "(SELECT chunk_id FROM wiki_chunks)", [index.name]).fetchall()]
    if gone:
        index.delete(gone)
    db.execute("DELETE FROM indexed_vectors WHERE index_name = ? AND (chunk_id, content_hash) "
               "NOT IN (SELECT chunk_id, content_hash FROM wiki_chunks)", [index.name])
    written = 0
    key, name = (value.replace("'", "''") for value in (model_key, index.name))
    for batch in stream_rows(db, f"""
            SELECT c.chunk_id, c.content_hash FROM wiki_chunks c
            JOIN text_embeddings e ON e.content_hash = c.content_hash AND e.model_key = '{key}'
            ANTI JOIN indexed_vectors i ON i.index_name = '{name}' AND i.chunk_id = c.chunk_id
                AND i.content_hash = c.content_hash
            ORDER BY c.chunk_id""", batch_size):
        matrix = load_matrix(db, model_key, [content_hash for _, content_hash in batch])
        if dims is None:
            index.create(matrix.shape[1])
            dims = matrix.shape[1]
        index.upsert([chunk_id for chunk_id, _ in batch], matrix)
        db.executemany("INSERT INTO indexed_vectors VALUES (?, ?, ?)",
                       [[index.name, chunk_id, content_hash] for chunk_id, content_hash in batch])
        written += len(batch)
    if dims is not None:
        index.refresh()
    held = db.execute("SELECT count(*) FROM indexed_vectors WHERE index_name = ?",
                      [index.name]).fetchone()[0]
    return {"vectors_written": written, "vectors_deleted": len(gone), "vectors_held": held}
