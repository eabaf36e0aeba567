"""Fixtures of the pipeline tests: a fresh Elasticsearch index name, and a small warehouse.

The Elasticsearch server itself is tests/conftest.py's ``elasticsearch`` fixture: the cluster
``ELASTICSEARCH_URL`` names, or a noida-db server started for the session on loopback.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import duckdb
import pytest

from tests.elasticsearch_server import ElasticsearchTarget

SMALL_CORPUS = 300


@pytest.fixture
def es_name(elasticsearch: ElasticsearchTarget) -> Iterator[str]:
    """A fresh alias name; its indices are deleted afterwards (one by one: real clusters
    refuse wildcard deletes)."""
    name = f"test-search-{uuid.uuid4().hex[:8]}"
    yield name
    with elasticsearch.index(name) as index:
        client = index.client.options(ignore_status=404)
        for concrete in client.indices.get(index=f"{name}*", expand_wildcards="all").body:
            client.indices.delete(index=concrete)


@pytest.fixture
def small_warehouse(sample_warehouse: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """The sample warehouse cut to whole pages, about ``SMALL_CORPUS`` chunks."""
    sample_warehouse.execute("""DELETE FROM wiki_chunks WHERE page_id > (
        SELECT max(page_id) FROM (
            SELECT page_id FROM wiki_chunks ORDER BY page_id, ordinal LIMIT ?))""",
                             [SMALL_CORPUS])
    return sample_warehouse
