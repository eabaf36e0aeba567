"""The Elasticsearch index: alias switching, faults, credentials, TLS, mapping conflicts, and
agreement with the tantivy backend.

Tests run against noida-db on loopback, or against ELASTICSEARCH_URL when set (see
tests/pipeline/conftest.py). Faults that need a misbehaving server (a stalled bulk request, a
401, TLS) use loopback helpers from tests/elasticsearch_server.py.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

import duckdb
import pytest

from pipeline.retrieval.search.base import (
    IndexAuthenticationError,
    IndexMappingError,
    IndexUnreachableError,
    IndexWriteError,
)
from pipeline.retrieval.search.elastic import ElasticsearchIndex
from pipeline.retrieval.search.embedded import TantivyIndex
from pipeline.retrieval.search.sync import sync_index
from tests.elasticsearch_server import (
    ElasticsearchTarget,
    FaultProxy,
    RejectingServer,
    free_port,
    self_signed_certificate,
)
from tests.pipeline.retrieval.search.helpers import DISTINCTIVE, ids, records


def test_backends_agree_on_top_hits(small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path,
                                    elasticsearch: ElasticsearchTarget, es_name: str) -> None:
    """Same analysis and BM25 on both sides: the same chunks come first for the same question.

    Scores are not compared (norm encodings differ); near-ties may swap places.
    """
    queries = [text[:200] for (text,) in small_warehouse.execute(
        "SELECT text FROM wiki_chunks ORDER BY hash(chunk_id) LIMIT 40").fetchall()]
    queries += [*DISTINCTIVE, "What causes a tsunami after an earthquake?"]
    with TantivyIndex(tmp_path / "lexical") as embedded, elasticsearch.index(es_name) as elastic:
        sync_index(small_warehouse, embedded)
        sync_index(small_warehouse, elastic)
        ours, theirs = embedded.search_many(queries, 5), elastic.search_many(queries, 5)
    overlaps = []
    for query, a, b in zip(queries, ours, theirs, strict=True):
        assert a and b, query
        clear_winner = len(a) == 1 or a[0].score > 1.02 * a[1].score
        if clear_winner:
            assert a[0].chunk_id == b[0].chunk_id, (query, a, b)
        overlaps.append(len(set(ids(a)) & set(ids(b))) / max(len(a), len(b)))
    assert sum(overlaps) / len(overlaps) >= 0.9


def concrete_indices(target: ElasticsearchTarget, name: str) -> list[str]:
    with target.index(name) as index:
        return sorted(index.client.indices.get(index=f"{name}*", expand_wildcards="all").body)


def test_rebuild_switches_the_alias_and_drops_the_old_index(
        small_warehouse: duckdb.DuckDBPyConnection, elasticsearch: ElasticsearchTarget,
        es_name: str) -> None:
    with elasticsearch.index(es_name) as index:
        first = sync_index(small_warehouse, index)
        old = index.generation()
        assert old is not None and old.startswith(f"{es_name}-g")
        orphan = f"{es_name}-g20200101t000000-deadbeef"  # left by a build that died
        index.client.indices.create(index=orphan)
        second = sync_index(small_warehouse, index, rebuild=True)
        new = index.generation()
        assert new != old and second.index_key.endswith(f":{new}")
        assert concrete_indices(elasticsearch, es_name) == [new]
        aliases = index.client.indices.get_alias(name=es_name).body
        assert list(aliases) == [new]
        assert records(small_warehouse) == {second.index_key: first.indexed}
        assert ids(index.search("quasar Virgo", 1)) == ["1016-0"]


def test_a_bulk_timeout_is_retried_then_fails_without_switching(
        small_warehouse: duckdb.DuckDBPyConnection, elasticsearch: ElasticsearchTarget,
        es_name: str) -> None:
    with elasticsearch.index(es_name) as index:
        first = sync_index(small_warehouse, index)
        old = index.generation()
    proxy = FaultProxy(elasticsearch.url, bulk_passes=1,
                       upstream_ca=elasticsearch.options.get("ca_certs")).start()
    try:
        proxied = elasticsearch.index(es_name, url=proxy.url, bulk_docs=50, bulk_timeout=0.5,
                                      max_retries=2)
        with proxied, pytest.raises(IndexWriteError) as failure:
            sync_index(small_warehouse, proxied, rebuild=True)
        message = str(failure.value)
        assert "no answer in 0.5 s, 2 retries included" in message
        assert f"alias {es_name} stays on {old}" in message
        assert proxy.url in message
        assert proxy.bulk_requests == 1 + 1 + 2  # one passed, one stalled, retried twice
    finally:
        proxy.stop()
    with elasticsearch.index(es_name) as index:
        assert index.generation() == old
        assert concrete_indices(elasticsearch, es_name) == [old]  # the half-built one is gone
        assert ids(index.search("quasar Virgo", 1)) == ["1016-0"]
        assert records(small_warehouse) == {first.index_key: first.indexed}
        assert not sync_index(small_warehouse, index).rebuilt


def test_server_down_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ElasticsearchIndex(url, "wiki_chunks", max_retries=1, request_timeout=2) as index:
        with pytest.raises(IndexUnreachableError,
                           match=f"cannot connect to Elasticsearch at {url}"):
            index.generation()
        with pytest.raises(IndexUnreachableError, match=url):
            index.search("anything", 3)


@pytest.mark.parametrize("credentials", ["api_key", "password", "url"])
def test_a_bad_credential_is_reported_without_it(
        credentials: str, small_warehouse: duckdb.DuckDBPyConnection,
        caplog: pytest.LogCaptureFixture) -> None:
    """noida-db has no security (it accepts any credential), so the 401 comes from a loopback
    server answering as Elasticsearch does."""
    secret = "s3cret-Zq8vLx2"
    server = RejectingServer().start()
    url, options = server.url, {}
    if credentials == "api_key":
        options = {"api_key": secret}
    elif credentials == "password":
        options = {"username": "elastic", "password": secret}
    else:
        url = url.replace("http://", f"http://elastic:{secret}@")
    caplog.set_level(logging.DEBUG)
    try:
        with ElasticsearchIndex(url, "wiki_chunks", max_retries=0, **options) as index:
            with pytest.raises(IndexAuthenticationError) as failure:
                sync_index(small_warehouse, index)
            assert index.url == server.url and secret not in repr(index)
    finally:
        server.stop()
    report = "".join(traceback.format_exception(failure.value))
    assert f"Elasticsearch at {server.url} rejected the credentials (HTTP 401)" in report
    assert secret not in report and secret not in repr(failure.value)
    assert secret not in caplog.text
    assert server.authorizations and all(server.authorizations)  # it was sent, though


def test_tls_needs_the_ca_file(small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path,
                               elasticsearch: ElasticsearchTarget, es_name: str) -> None:
    """noida-db speaks plain HTTP: TLS is terminated by a loopback proxy with a self-signed
    certificate, which the client must trust through ``ca_certs``."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command, which makes the test certificate, is not installed")
    cert, key = self_signed_certificate(tmp_path)
    proxy = FaultProxy(elasticsearch.url, certfile=cert, keyfile=key,
                       upstream_ca=elasticsearch.options.get("ca_certs")).start()
    try:
        assert proxy.url.startswith("https://")
        with elasticsearch.index(es_name, url=proxy.url, ca_certs=cert) as index:
            sync_index(small_warehouse, index)
            assert ids(index.search("quasar Virgo", 1)) == ["1016-0"]
        options = {k: v for k, v in elasticsearch.options.items() if k != "ca_certs"}
        with ElasticsearchIndex(proxy.url, es_name, max_retries=0, **options) as untrusting:
            with pytest.raises(IndexUnreachableError, match="pass ca_certs") as failure:
                untrusting.search("quasar", 1)
            assert "CERTIFICATE_VERIFY_FAILED" in str(failure.value)
    finally:
        proxy.stop()


def test_a_concrete_index_in_the_way_is_a_mapping_conflict(
        small_warehouse: duckdb.DuckDBPyConnection, elasticsearch: ElasticsearchTarget,
        es_name: str) -> None:
    with elasticsearch.index(es_name) as index:
        index.client.indices.create(index=es_name, mappings={
            "properties": {"chunk_id": {"type": "keyword"}, "text": {"type": "keyword"}}})
        with pytest.raises(IndexMappingError) as failure:
            sync_index(small_warehouse, index)
    message = str(failure.value)
    assert f"{es_name} at {elasticsearch.url} is a concrete index, not the alias" in message
    assert "field text has {'type': 'keyword'" in message


def test_an_incompatible_index_behind_the_alias_is_refused_until_rebuilt(
        small_warehouse: duckdb.DuckDBPyConnection, elasticsearch: ElasticsearchTarget,
        es_name: str) -> None:
    legacy = f"{es_name}-legacy"
    with elasticsearch.index(es_name) as index:
        index.client.indices.create(index=legacy, mappings={"properties": {
            "chunk_id": {"type": "keyword"}, "title": {"type": "text"},
            "text": {"type": "text", "analyzer": "standard"}}})
        index.client.indices.update_aliases(actions=[{"add": {"index": legacy,
                                                              "alias": es_name}}])
        with pytest.raises(IndexMappingError) as failure:
            sync_index(small_warehouse, index)
        message = str(failure.value)
        assert f"index {legacy} behind alias {es_name}" in message
        assert "field text has {'analyzer': 'standard'}" in message
        assert "rebuild=True" in message
        sync = sync_index(small_warehouse, index, rebuild=True)
        assert sync.rebuilt and concrete_indices(elasticsearch, es_name) == [index.generation()]
        assert ids(index.search("quasar Virgo", 1)) == ["1016-0"]
