"""Synchronising shards into the article tables: winners, removals, per-shard commits."""

from pathlib import Path

import duckdb
import pytest

from pipeline.corpus.article_table import VERSION_COLUMNS, sync_articles
from pipeline.corpus.dumps import ShardError, discover_shards
from pipeline.tables import content_version
from tests.pipeline.corpus.test_dumps import doc, dump_lines, write


def sync(db: duckdb.DuckDBPyConnection, folder: Path, **options):
    return sync_articles(db, discover_shards(str(folder)), "v1", log=lambda _: None, **options)


def articles(db: duckdb.DuckDBPyConnection) -> dict[int, tuple]:
    rows = db.execute("SELECT page_id, text, shard, version FROM wiki_articles").fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture
def db(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        yield connection


def test_higher_version_wins_across_shards_and_removal_promotes_the_other(
        db, tmp_path: Path) -> None:
    dumps = tmp_path / "dump"
    dumps.mkdir()
    write(dumps / "a-0.json.gz", dump_lines([doc(1, "Old.", version=5), doc(2, "Only a.")]))
    write(dumps / "b-1.json.bz2", dump_lines([doc(1, "New.", version=9)]))
    sync(db, dumps)
    assert articles(db) == {1: ("New.", "b-1.json.bz2", 9), 2: ("Only a.", "a-0.json.gz", 1)}
    assert db.execute("SELECT count(*) FROM superseded_articles").fetchone()[0] == 1

    (dumps / "b-1.json.bz2").unlink()
    result = sync(db, dumps)
    assert result.shards_removed == ["b-1.json.bz2"] and result.documents_parsed == 0
    assert articles(db) == {1: ("Old.", "a-0.json.gz", 5), 2: ("Only a.", "a-0.json.gz", 1)}
    assert db.execute("SELECT count(*) FROM superseded_articles").fetchone()[0] == 0


def test_equal_versions_fall_back_to_timestamp_then_shard_order(db, tmp_path: Path) -> None:
    dumps = tmp_path / "dump"
    dumps.mkdir()
    write(dumps / "a.json", dump_lines([doc(1, "Later.", timestamp="2026-09-01T00:00:00Z"),
                                        doc(2, "From a.")]))
    write(dumps / "b.json", dump_lines([doc(1, "Earlier."), doc(2, "From b.")]))
    sync(db, dumps)
    assert articles(db)[1][0] == "Later."
    assert articles(db)[2][0] == "From b."


def test_only_new_or_changed_shards_are_read(db, tmp_path: Path) -> None:
    dumps = tmp_path / "dump"
    dumps.mkdir()
    write(dumps / "a.json", dump_lines([doc(1), doc(2)]))
    assert sync(db, dumps).shards_read == ["a.json"]
    again = sync(db, dumps)
    assert again.shards_read == [] and again.documents_parsed == 0
    write(dumps / "b.json", dump_lines([doc(3)]))
    added = sync(db, dumps)
    assert added.shards_read == ["b.json"] and added.documents_parsed == 1
    assert sorted(articles(db)) == [1, 2, 3]
    assert sync_articles(db, discover_shards(str(dumps)), "v2", log=print).shards_read == [
        "a.json", "b.json"], "a new parser version re-reads every shard"


def test_a_corrupt_shard_keeps_its_rows_the_others_are_committed_and_retried_alone(
        db, tmp_path: Path) -> None:
    dumps = tmp_path / "dump"
    dumps.mkdir()
    write(dumps / "a.json", dump_lines([doc(1), doc(2)]))
    sync(db, dumps)
    write(dumps / "a.json", dump_lines([doc(1, "Changed.")]))  # a good change ...
    (dumps / "b.json.gz").write_bytes(b"\x1f\x8b\x08\x00 truncated")  # beside a corrupt one
    write(dumps / "c.json", dump_lines([doc(3)]))  # ... and a good new shard after it
    with pytest.raises(ShardError, match=r"b\.json\.gz: compressed stream is truncated"):
        sync(db, dumps)
    assert articles(db)[1][0] == "Changed." and 3 in articles(db)
    assert db.execute("SELECT shard FROM rejected_shards").fetchall() == [("b.json.gz",)]
    assert db.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'staging%'"
                      ).fetchone()[0] == 0
    write(dumps / "b.json.gz", dump_lines([doc(4)]))
    retry = sync(db, dumps)
    assert retry.shards_read == ["b.json.gz"] and retry.documents_parsed == 1
    assert sorted(articles(db)) == [1, 3, 4]
    assert db.execute("SELECT count(*) FROM rejected_shards").fetchone()[0] == 0


def test_shards_parsed_in_worker_processes_give_the_same_tables(tmp_path: Path) -> None:
    dumps = tmp_path / "dump"
    dumps.mkdir()
    for n in range(4):
        write(dumps / f"s{n}.json", dump_lines([doc(10 * n + i, version=i) for i in range(3)]
                                               + [doc(1, f"Shared {n}.", version=n)]))
    versions = []
    for workers in (1, 2):
        with duckdb.connect(str(tmp_path / f"w{workers}.duckdb")) as db:
            result = sync(db, dumps, workers=workers)
            assert result.shards_read == [f"s{n}.json" for n in range(4)]
            versions.append(content_version(db, "wiki_articles", VERSION_COLUMNS))
            assert articles(db)[1][0] == "Shared 3."
    assert versions[0] == versions[1]


def test_skip_corrupt_shards_keeps_the_old_rows_of_the_rejected_one(db, tmp_path: Path) -> None:
    dumps = tmp_path / "dump"
    dumps.mkdir()
    write(dumps / "a.json", dump_lines([doc(1)]))
    write(dumps / "b.json", dump_lines([doc(2)]))
    sync(db, dumps)
    write(dumps / "b.json", dump_lines([doc(2)])[:1])  # now cut in half
    write(dumps / "c.json", dump_lines([doc(3)]))
    result = sync(db, dumps, skip_corrupt_shards=True)
    assert result.shards_read == ["c.json"]
    assert "b.json line 1: action line without its document" in result.shards_rejected["b.json"]
    assert sorted(articles(db)) == [1, 2, 3]
