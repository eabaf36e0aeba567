"""Keeping a lexical index in line with ``wiki_chunks``: full builds, incremental syncs, a sync
that dies half-way, on both backends.

Elasticsearch runs as noida-db on loopback, or is the cluster ELASTICSEARCH_URL names (see
tests/pipeline/conftest.py); its cases skip when neither is there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from pipeline.retrieval.search.base import Doc, LexicalIndex
from pipeline.retrieval.search.embedded import TantivyIndex
from pipeline.retrieval.search.sync import sync_index
from tests.elasticsearch_server import ElasticsearchTarget
from tests.pipeline.retrieval.search.helpers import DISTINCTIVE, chunk_count, ids, records


@pytest.fixture(params=["tantivy", "elasticsearch"])
def make_index(request: pytest.FixtureRequest,
               tmp_path: Path) -> Callable[[], LexicalIndex]:
    """Opens the test's index (the same one each call), of each backend in turn."""
    if request.param == "tantivy":
        return lambda: TantivyIndex(tmp_path / "lexical")
    target: ElasticsearchTarget = request.getfixturevalue("elasticsearch")
    name: str = request.getfixturevalue("es_name")
    return lambda: target.index(name)


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
