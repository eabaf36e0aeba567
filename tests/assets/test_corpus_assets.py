"""The corpus assets under Dagster: incremental re-runs, counted by the work they report."""

import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    ExecuteInProcessResult,
    RunConfig,
    materialize,
)
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from assets.corpus import (
    ArticlesConfig,
    ChunkConfig,
    DumpConfig,
    corpus_checks,
    dump_files,
    wiki_articles,
    wiki_chunks,
)
from definitions import defs
from resources import Warehouse
from tests.conftest import FIXTURES
from tests.pipeline.corpus.test_dumps import doc, dump_lines, write

CORPUS = [dump_files, wiki_articles, wiki_chunks]


class Corpus:
    """A dump folder, a warehouse and a Dagster instance that persist across runs."""

    def __init__(self, root: Path, instance: DagsterInstance) -> None:
        self.dump = root / "dump"
        self.dump.mkdir()
        self.database = root / "warehouse.duckdb"
        self.instance = instance

    def run(self, max_chars: int = 512, raise_on_error: bool = True,
            selection: list | None = None, hash_contents: bool = False,
            skip_corrupt_shards: bool = False) -> ExecuteInProcessResult:
        return materialize(
            [*CORPUS, *corpus_checks],
            selection=selection,
            instance=self.instance,
            resources={"warehouse": Warehouse(database=str(self.database))},
            run_config=RunConfig({
                name: config for name, config in (
                    ("dump_files", DumpConfig(location=str(self.dump),
                                               hash_contents=hash_contents)),
                    ("wiki_articles", ArticlesConfig(skip_corrupt_shards=skip_corrupt_shards)),
                    ("wiki_chunks", ChunkConfig(max_chars=max_chars)))
                if selection is None or name in {a.key.path[-1] for a in selection}}),
            raise_on_error=raise_on_error,
        )

    def count(self, table: str) -> int:
        with duckdb.connect(str(self.database), read_only=True) as db:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def metadata(result: ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    event = result.asset_materializations_for_node(asset)[0]
    return {k: v.value for k, v in event.metadata.items()}


@pytest.fixture
def corpus(tmp_path: Path):
    with DagsterInstance.ephemeral() as instance:
        folder = Corpus(tmp_path, instance)
        shutil.copy(FIXTURES / "tiny-00000.json.gz", folder.dump)
        yield folder


def test_first_run_materialises_everything_and_checks_pass(corpus: Corpus) -> None:
    result = corpus.run()
    articles, chunks = metadata(result, "wiki_articles"), metadata(result, "wiki_chunks")
    assert articles["up_to_date"] is False and articles["documents_parsed"] == 12
    assert articles["dagster/row_count"] == 12 == corpus.count("wiki_articles")
    assert chunks["articles_chunked"] == 12
    assert chunks["dagster/row_count"] == corpus.count("wiki_chunks") > 12
    assert "| chunk_id | title | text |" in chunks["preview"]
    checks = result.get_asset_check_evaluations()
    assert len(checks) == len(corpus_checks) and all(c.passed for c in checks)


def test_rerun_with_nothing_changed_reads_no_dump(corpus: Corpus) -> None:
    first = corpus.run()
    second = corpus.run()
    assert metadata(second, "wiki_articles")["up_to_date"] is True
    assert "documents_parsed" not in metadata(second, "wiki_articles")
    assert metadata(second, "wiki_chunks")["up_to_date"] is True
    for asset in ("dump_files", "wiki_articles", "wiki_chunks"):
        assert (first.asset_materializations_for_node(asset)[0].tags["dagster/data_version"]
                == second.asset_materializations_for_node(asset)[0].tags["dagster/data_version"])


def test_adding_a_shard_reads_only_that_shard(corpus: Corpus) -> None:
    corpus.run()
    shutil.copy(FIXTURES / "tiny-00001.json.bz2", corpus.dump)
    result = corpus.run()
    articles = metadata(result, "wiki_articles")
    assert articles["shards_read"] == ["tiny-00001.json.bz2"]
    assert articles["shards_unchanged"] == ["tiny-00000.json.gz"]
    assert articles["documents_parsed"] == 5
    assert metadata(result, "wiki_chunks")["articles_chunked"] == 5
    assert corpus.count("wiki_articles") == 17


def _write_keeping_mtime(path: Path, text: str) -> None:
    """Rewrite a shard with another text of the same length, its mtime put back."""
    stat = path.stat()
    write(path, dump_lines([doc(1, text)]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _article_text(corpus: Corpus) -> str:
    with duckdb.connect(str(corpus.database), read_only=True) as db:
        return db.execute("SELECT text FROM wiki_articles WHERE page_id = 1").fetchone()[0]


def test_a_shard_rewritten_in_place_is_read_again(corpus: Corpus) -> None:
    """By size and mtime by default (a rewrite touches the mtime); by content when asked, for
    files edited in place by tools that keep size and mtime."""
    shard = corpus.dump / "edited.json"
    write(shard, dump_lines([doc(1, "Water boils at 100 degrees.")]))
    corpus.run()
    shard.write_bytes(shard.read_bytes())  # same bytes, new mtime: read again by default
    assert metadata(corpus.run(), "wiki_articles")["shards_read"] == ["edited.json"]
    _write_keeping_mtime(shard, "Water boils at 373 kelvins.")
    assert metadata(corpus.run(), "wiki_articles")["up_to_date"] is True  # stat cannot see it
    assert _article_text(corpus) == "Water boils at 100 degrees."
    # Switching modes changes every fingerprint, so every shard is read once.
    assert "edited.json" in metadata(corpus.run(hash_contents=True), "wiki_articles")[
        "shards_read"]
    assert _article_text(corpus) == "Water boils at 373 kelvins."
    _write_keeping_mtime(shard, "Water boils at 212 fahrenheit")
    assert metadata(corpus.run(hash_contents=True), "wiki_articles")["shards_read"] == [
        "edited.json"]
    assert _article_text(corpus) == "Water boils at 212 fahrenheit"
    assert metadata(corpus.run(hash_contents=True), "wiki_articles")["up_to_date"] is True


def test_changing_the_chunk_size_rebuilds_chunks_but_not_articles(corpus: Corpus) -> None:
    corpus.run()
    result = corpus.run(max_chars=256)
    assert metadata(result, "wiki_articles")["up_to_date"] is True
    chunks = metadata(result, "wiki_chunks")
    assert chunks["up_to_date"] is False and chunks["articles_chunked"] == 12
    assert chunks["max_chars"] <= 256


def test_removing_a_shard_removes_its_rows(corpus: Corpus) -> None:
    shutil.copy(FIXTURES / "tiny-00001.json.bz2", corpus.dump)
    corpus.run()
    (corpus.dump / "tiny-00001.json.bz2").unlink()
    result = corpus.run()
    assert metadata(result, "wiki_articles")["shards_removed"] == ["tiny-00001.json.bz2"]
    assert metadata(result, "wiki_articles")["documents_parsed"] == 0
    assert metadata(result, "wiki_chunks")["articles_removed"] == 5
    assert corpus.count("wiki_articles") == 12
    with duckdb.connect(str(corpus.database), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM wiki_chunks WHERE title LIKE 'Passage %'"
                          ).fetchone()[0] == 0


def test_a_corrupt_shard_fails_the_step_and_keeps_what_was_materialised(corpus: Corpus) -> None:
    corpus.run()
    before = corpus.count("wiki_chunks")
    write(corpus.dump / "broken.json", dump_lines([doc(1), doc(2)])[:3])
    result = corpus.run(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "broken.json line 3: action line without its document" in str(
        failure.step_failure_data.error)
    assert corpus.count("wiki_articles") == 12 and corpus.count("wiki_chunks") == before
    (corpus.dump / "broken.json").unlink()
    assert metadata(corpus.run(), "wiki_articles")["up_to_date"] is True


def test_the_ui_shows_which_shards_are_in_and_which_were_rejected(corpus: Corpus) -> None:
    write(corpus.dump / "broken.json", dump_lines([doc(1), doc(2)])[:3])
    result = corpus.run(skip_corrupt_shards=True)
    articles = metadata(result, "wiki_articles")
    assert articles["shards_in"] == 1 and articles["shards_not_in"] == 1
    assert "| broken.json | rejected |" in articles["shards"]
    assert "| tiny-00000.json.gz | in |" in articles["shards"]
    check = next(c for c in result.get_asset_check_evaluations()
                 if c.check_name == "every_shard_ingested")
    assert not check.passed and check.metadata["violations"].value == 1


def test_dagster_shows_downstream_assets_unsynced_after_a_new_shard(corpus: Corpus) -> None:
    corpus.run()
    shutil.copy(FIXTURES / "tiny-00001.json.bz2", corpus.dump)
    corpus.run(selection=[dump_files])
    assert stale_status(corpus, "wiki_articles") == StaleStatus.STALE
    assert stale_status(corpus, "dump_files") == StaleStatus.FRESH
    corpus.run()
    assert stale_status(corpus, "wiki_articles") == StaleStatus.FRESH
    assert stale_status(corpus, "wiki_chunks") == StaleStatus.FRESH


def stale_status(corpus: Corpus, asset: str) -> StaleStatus:
    """What the web UI shows as synced or unsynced, from the same resolver it uses."""
    resolver = CachingStaleStatusResolver(corpus.instance, defs.resolve_asset_graph(),
                                          LoadingContextForTest(corpus.instance))
    return resolver.get_status(AssetKey(asset))
