"""The lexical index: both backends on a small real corpus, incremental sync, and faults.

Elasticsearch tests run against noida-db on loopback, or against ELASTICSEARCH_URL when set
(see conftest.py). Faults that need a misbehaving server (a stalled bulk request, a 401, TLS)
use loopback helpers from tests/elasticsearch_server.py.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import duckdb
import pytest
import tantivy

from pipeline.search.base import (
    Doc,
    Hit,
    IndexAuthenticationError,
    IndexMappingError,
    IndexUnreachableError,
    IndexWriteError,
    LexicalIndex,
    sync_index,
)
from pipeline.search.elastic import ElasticsearchIndex
from pipeline.search.embedded import CURRENT, TantivyIndex
from tests.elasticsearch_server import (
    ElasticsearchTarget,
    FaultProxy,
    RejectingServer,
    free_port,
    self_signed_certificate,
)

# Queries whose answer in the small corpus is known, and chunks only they should find.
DISTINCTIVE = {
    "quasar in the constellation of Virgo": "1016-0",
    "aardvark burrowing nocturnal mammal": "1029-0",
    "abacus counting frame calculating tool": "1031-0",
}


def ids(hits: Sequence[Hit]) -> list[str]:
    return [hit.chunk_id for hit in hits]


def records(db: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(db.execute("SELECT index_key, count(*) FROM indexed_chunks GROUP BY ALL")
                .fetchall())


def chunk_count(db: duckdb.DuckDBPyConnection) -> int:
    return db.execute("SELECT count(*) FROM wiki_chunks").fetchone()[0]


@pytest.fixture(params=["tantivy", "elasticsearch"])
def make_index(request: pytest.FixtureRequest,
               tmp_path: Path) -> Callable[[], LexicalIndex]:
    """Opens the test's index (the same one each call), of each backend in turn."""
    if request.param == "tantivy":
        return lambda: TantivyIndex(tmp_path / "lexical")
    target: ElasticsearchTarget = request.getfixturevalue("elasticsearch")
    name: str = request.getfixturevalue("es_name")
    return lambda: target.index(name)


# -- both backends ----------------------------------------------------------------------------


def test_sync_builds_an_index_that_finds_distinctive_chunks(
        small_warehouse: duckdb.DuckDBPyConnection,
        make_index: Callable[[], LexicalIndex]) -> None:
    total = chunk_count(small_warehouse)
    with make_index() as index:
        assert index.generation() is None
        sync = sync_index(small_warehouse, index, batch_size=64)
        assert (sync.rebuilt, sync.reason, sync.indexed, sync.documents) == (
            True, "no index yet", total, total)
        assert index.count() == total
        assert sync.index_key == index.key()
        assert records(small_warehouse) == {sync.index_key: total}
        for query, chunk_id in DISTINCTIVE.items():
            hits = index.search(query, 5)
            assert hits[0].chunk_id == chunk_id, (query, hits)
            assert hits == sorted(hits, key=lambda hit: -hit.score)
        assert index.search("the of and is", 5) == []  # stop words only
        assert ids(index.search("aardvarks burrowed", 1)) == ["1029-0"]  # stemming
        queries = [*DISTINCTIVE, "Lisbon earthquake 1755"]
        assert index.search_many(queries, 3) == [index.search(q, 3) for q in queries]
    with make_index() as reopened:  # persisted, and known by its generation
        assert reopened.key() == sync.index_key
        again = sync_index(small_warehouse, reopened)
        assert (again.rebuilt, again.indexed, again.deleted, again.unchanged) == (
            False, 0, 0, total)


def test_incremental_sync_sends_only_changes(small_warehouse: duckdb.DuckDBPyConnection,
                                             make_index: Callable[[], LexicalIndex]) -> None:
    db = small_warehouse
    with make_index() as index:
        first = sync_index(db, index)
        db.execute("""UPDATE wiki_chunks SET content_hash = 'changed',
            text = 'Zymurgy is the branch of applied chemistry that studies fermentation.'
            WHERE chunk_id = '1029-0'""")
        db.execute("""INSERT INTO wiki_chunks VALUES ('999999-0', 999999, 'Xylophone', 0,
            'A xylophone is played with mallets, like a glockenspiel.', 0, 56, 'new')""")
        db.execute("DELETE FROM wiki_chunks WHERE page_id = 1031")  # Abacus: two chunks
        total = chunk_count(db)

        sync = sync_index(db, index, batch_size=1)
        assert (sync.rebuilt, sync.indexed, sync.deleted, sync.unchanged) == (
            False, 2, 2, total - 2)
        assert sync.index_key == first.index_key  # same generation, updated in place
        assert index.count() == total
        assert ids(index.search("zymurgy fermentation", 1)) == ["1029-0"]
        assert "1029-0" not in ids(index.search("Orycteropus Tubulidentata", 10))
        assert ids(index.search("xylophone glockenspiel", 1)) == ["999999-0"]
        assert not {"1031-0", "1031-1"} & set(ids(index.search("abacus counting frame", 10)))
        assert records(db) == {sync.index_key: total}
        stored = dict(db.execute("SELECT chunk_id, content_hash FROM indexed_chunks "
                                 "WHERE chunk_id IN ('1029-0', '999999-0')").fetchall())
        assert stored == {"1029-0": "changed", "999999-0": "new"}

        again = sync_index(db, index)
        assert (again.indexed, again.deleted, again.unchanged) == (0, 0, total)


def test_a_sync_that_dies_midway_is_completed_by_the_next(
        small_warehouse: duckdb.DuckDBPyConnection,
        make_index: Callable[[], LexicalIndex]) -> None:
    db = small_warehouse
    with make_index() as index:
        sync_index(db, index)
        db.execute("UPDATE wiki_chunks SET content_hash = 'v2', text = 'Quokka marsupial' "
                   "WHERE chunk_id = '1016-0'")
        db.execute("DELETE FROM wiki_chunks WHERE chunk_id = '1029-0'")

        def killed(chunk_ids: Sequence[str]) -> None:
            raise RuntimeError("killed after the upserts were sent")

        index.delete = killed  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="killed"):
            sync_index(db, index)
        in_flight = db.execute("SELECT chunk_id FROM indexed_chunks "
                               "WHERE content_hash IS NULL").fetchall()
        assert in_flight == [("1016-0",)]
    with make_index() as index:
        sync = sync_index(db, index)
        assert (sync.rebuilt, sync.indexed, sync.deleted) == (False, 1, 1)
        assert ids(index.search("quokka", 1)) == ["1016-0"]
        assert "1029-0" not in ids(index.search("aardvark", 10))
        assert index.count() == chunk_count(db)
        assert db.execute("SELECT count(*) FROM indexed_chunks WHERE content_hash IS NULL"
                          ).fetchone()[0] == 0


def test_a_failed_rebuild_leaves_the_old_generation_serving(
        small_warehouse: duckdb.DuckDBPyConnection,
        make_index: Callable[[], LexicalIndex]) -> None:
    with make_index() as index:
        sync = sync_index(small_warehouse, index)
        old = index.generation()

        def batches() -> Iterator[list[Doc]]:
            yield [Doc("1-0", "Zebra", "zebra stripes", "h")]
            raise RuntimeError("the warehouse went away")

        with pytest.raises(RuntimeError, match="went away"):
            index.rebuild(batches())
        assert index.generation() == old
        assert ids(index.search("quasar Virgo", 1)) == ["1016-0"]
        assert index.search("zebra", 5) == []
        assert index.count() == sync.documents


def test_many_changes_rebuild_instead(small_warehouse: duckdb.DuckDBPyConnection,
                                      make_index: Callable[[], LexicalIndex]) -> None:
    with make_index() as index:
        first = sync_index(small_warehouse, index)
        small_warehouse.execute("UPDATE wiki_chunks SET content_hash = content_hash || 'x'")
        sync = sync_index(small_warehouse, index)
        assert sync.rebuilt and "changed or gone" in sync.reason
        assert sync.index_key != first.index_key
        assert records(small_warehouse) == {sync.index_key: chunk_count(small_warehouse)}
        assert ids(index.search("quasar Virgo", 1)) == ["1016-0"]


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


# -- embedded -----------------------------------------------------------------------------------


def test_deleting_the_folder_makes_the_next_sync_rebuild(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    with TantivyIndex(folder) as index:
        first = sync_index(small_warehouse, index)
        shutil.rmtree(folder)
        assert index.generation() is None
        sync = sync_index(small_warehouse, index)
    assert sync.rebuilt and sync.reason == "no index yet"
    assert sync.index_key != first.index_key
    assert sync.indexed == chunk_count(small_warehouse)
    assert records(small_warehouse) == {sync.index_key: sync.indexed}  # old records gone
    assert sorted(p.name for p in folder.iterdir()) == sorted([CURRENT, index.generation()])


def test_a_rebuild_removes_the_old_generation_folder(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    with TantivyIndex(folder) as index:
        old = sync_index(small_warehouse, index)
        new = sync_index(small_warehouse, index, rebuild=True)
        assert new.reason == "requested" and new.index_key != old.index_key
        assert sorted(p.name for p in folder.iterdir()) == sorted([CURRENT, index.generation()])
        assert records(small_warehouse) == {new.index_key: new.indexed}


def test_an_index_of_another_schema_is_refused(small_warehouse: duckdb.DuckDBPyConnection,
                                               tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    generation = "g20200101t000000-0000abcd"
    (folder / generation).mkdir(parents=True)
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True)
    builder.add_text_field("body", stored=True)
    tantivy.Index(builder.build(), path=str(folder / generation))
    (folder / CURRENT).write_text(generation)
    with TantivyIndex(folder) as index:
        with pytest.raises(IndexMappingError, match="rebuild=True"):
            sync_index(small_warehouse, index)
        sync = sync_index(small_warehouse, index, rebuild=True)
        assert sync.rebuilt and index.generation() != generation
        assert not (folder / generation).exists()


# -- Elasticsearch ------------------------------------------------------------------------------


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


def test_one_writer_at_a_time(small_warehouse: duckdb.DuckDBPyConnection,
                              tmp_path: Path) -> None:
    with TantivyIndex(tmp_path / "lexical") as first, TantivyIndex(tmp_path / "lexical") as other:
        sync_index(small_warehouse, first)
        first.upsert([Doc("1-0", "Zebra", "zebra stripes", "h")])  # not committed yet
        with pytest.raises(IndexWriteError, match="being written by another writer"):
            other.delete(["1016-0"])
        first.rollback()
        other.delete(["1016-0"])
        other.commit()
        assert first.search("zebra", 3) == []
        assert "1016-0" not in ids(first.search("quasar Virgo", 10))


def test_an_index_synced_from_another_warehouse_is_rebuilt(
        small_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Records of another warehouse say nothing about this one: the generation is unknown."""
    subset = small_warehouse.sql(
        "SELECT * FROM wiki_chunks WHERE page_id <= 1016").to_arrow_table()
    with TantivyIndex(tmp_path / "lexical") as index, \
            duckdb.connect(str(tmp_path / "other.duckdb")) as other:
        ours = sync_index(small_warehouse, index)
        other.execute("CREATE TABLE wiki_chunks AS SELECT * FROM subset")
        theirs = sync_index(other, index)
        assert theirs.rebuilt and theirs.reason == "generation not synced from this warehouse"
        assert index.count() == theirs.indexed == subset.num_rows < ours.indexed
        again = sync_index(small_warehouse, index)
        assert again.rebuilt and again.reason == "generation not synced from this warehouse"
        assert index.count() == ours.indexed
