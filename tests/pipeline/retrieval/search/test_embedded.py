"""The embedded tantivy index: generation folders, a schema it cannot use, one writer."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import tantivy

from pipeline.retrieval.search.base import Doc, IndexMappingError, IndexWriteError
from pipeline.retrieval.search.embedded import CURRENT, TantivyIndex
from pipeline.retrieval.search.sync import sync_index
from tests.pipeline.retrieval.search.helpers import chunk_count, ids, records


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
