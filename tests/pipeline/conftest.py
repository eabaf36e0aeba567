"""Fixtures of the pipeline tests: an Elasticsearch to test against, and a small warehouse.

The Elasticsearch tests run against ``ELASTICSEARCH_URL`` when it is set (credentials from
``ELASTICSEARCH_API_KEY`` or ``ELASTICSEARCH_USERNAME``/``ELASTICSEARCH_PASSWORD``, CA file from
``ELASTICSEARCH_CA_CERTS``); otherwise against a noida-db server started for the session on a
free loopback port, with its data in a temporary folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import duckdb
import pytest

from tests.elasticsearch_server import ElasticsearchTarget, noida_binary, start_noida

SMALL_CORPUS = 300


@pytest.fixture(scope="session")
def elasticsearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElasticsearchTarget]:
    target = ElasticsearchTarget.from_environment()
    if target is not None:
        yield target
        return
    if noida_binary() is None:
        pytest.skip("ELASTICSEARCH_URL is unset and noida-db is not installed")
    server = start_noida(tmp_path_factory.mktemp("noida"))
    try:
        yield ElasticsearchTarget(server.url)
    finally:
        server.stop()


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
