"""The lexical search resource: the embedded tantivy index or an Elasticsearch cluster.

Each backend's library (tantivy, the Elasticsearch client) is imported when an index is
opened, not with the resource: a run that uses one backend, or none, never loads the other.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.paths import work_dir

if TYPE_CHECKING:
    from pipeline.retrieval.search.base import LexicalIndex
    from pipeline.retrieval.search.elastic_vectors import ElasticsearchVectors


class LexicalSearch(ConfigurableResource):
    """Where the BM25 index of chunks lives.

    ``embedded`` (the default) keeps a tantivy index in the working area: nothing to start.
    ``elasticsearch`` talks to a cluster at ``url``; credentials come from the environment
    (``ELASTICSEARCH_API_KEY``, or ``ELASTICSEARCH_USERNAME`` and ``ELASTICSEARCH_PASSWORD``)
    through Dagster's ``EnvVar``, so they never appear in run config, logs or metadata.
    """

    backend: Literal["embedded", "elasticsearch"] = Field(
        default="embedded", description="embedded (tantivy on disk) or elasticsearch")
    path: str = Field(default_factory=lambda: str(work_dir() / "index" / "tantivy"),
                      description="Folder of the embedded index.")
    url: str = Field(default="http://localhost:9200", description="Elasticsearch URL.")
    index: str = Field(default="wiki_chunks", description="Elasticsearch alias of the index.")
    api_key: str | None = Field(default=None, description="Elasticsearch API key.")
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = Field(default=None, description="CA file for https clusters.")
    request_timeout: float = 30.0
    max_retries: int = 3
    shards: int = 1
    replicas: int = 0

    def open(self) -> LexicalIndex:
        if self.backend == "embedded":
            from pipeline.retrieval.search.embedded import TantivyIndex

            return TantivyIndex(self.path)
        from pipeline.retrieval.search.elastic import ElasticsearchIndex

        return ElasticsearchIndex(
            self.url, self.index, api_key=self.api_key, username=self.username,
            password=self.password, ca_certs=self.ca_certs,
            request_timeout=self.request_timeout, max_retries=self.max_retries,
            shards=self.shards, replicas=self.replicas)

    def describe(self) -> str:
        """Where the index is, without credentials: safe for logs and metadata."""
        if self.backend == "embedded":
            return f"tantivy at {self.path}"
        return f"elasticsearch {self.index} at {re.sub(r'//[^/@]*@', '//', self.url)}"


class VectorSearch(ConfigurableResource):
    """Where dense retrieval searches the chunk vectors.

    ``duckdb`` (the default): exact search over the vectors in the warehouse, held in memory;
    right for the sample and a GPU machine. ``elasticsearch``: kNN over a ``dense_vector``
    field in a cluster, one index per embedder (``{index_prefix}-{model}``), written by the
    ``chunk_embeddings`` step; credentials as for the lexical index, through ``EnvVar``.
    """

    backend: Literal["duckdb", "elasticsearch"] = Field(
        default="duckdb", description="duckdb (exact, in memory) or elasticsearch (kNN)")
    url: str = Field(default="http://localhost:9200", description="Elasticsearch URL.")
    index_prefix: str = Field(default="wiki_chunk_vectors",
                              description="Prefix of the per-embedder vector indices.")
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    num_candidates: int = Field(default=100, description="kNN candidates per shard.")

    def elasticsearch(self, model_key: str) -> ElasticsearchVectors:
        from pipeline.retrieval.search.elastic_vectors import ElasticsearchVectors, index_name

        return ElasticsearchVectors(
            self.url, index_name(self.index_prefix, model_key), api_key=self.api_key,
            username=self.username, password=self.password, ca_certs=self.ca_certs,
            num_candidates=self.num_candidates)

    def describe(self) -> str:
        """Where the vectors are searched, without credentials: safe for logs and metadata."""
        if self.backend == "duckdb":
            return "exact search in the warehouse"
        return f"elasticsearch {self.index_prefix}-* at {re.sub(r'//[^/@]*@', '//', self.url)}"
