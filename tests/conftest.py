"""Fixtures shared across the test suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipeline.corpus.article_table import sync_articles
from pipeline.corpus.chunk_table import sync_chunks
from pipeline.corpus.dumps import discover_shards
from pipeline.paths import SAMPLE_DUMP
from tests.elasticsearch_server import ElasticsearchTarget, noida_binary, start_noida

FIXTURES = Path(__file__).parent / "fixtures"


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


@pytest.fixture(scope="session")
def sample_warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file holding the whole sample dump, ingested and chunked (512 chars, overlap 1).

    Built once per session; tests that write must copy it (see ``sample_warehouse``).
    """
    path = tmp_path_factory.mktemp("warehouse") / "sample.duckdb"
    with duckdb.connect(str(path)) as db:
        sync_articles(db, discover_shards(str(SAMPLE_DUMP)), "test", log=lambda _: None)
        sync_chunks(db, 512, 1, "test")
    return path


@pytest.fixture
def sample_warehouse(sample_warehouse_path: Path, tmp_path: Path) -> Iterator[
        duckdb.DuckDBPyConnection]:
    """A private, writable copy of the sample warehouse."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(sample_warehouse_path, copy)
    with duckdb.connect(str(copy)) as db:
        yield db


@pytest.fixture
def tiny_warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The two tiny real shards of ``fixtures/``, ingested and chunked: 17 articles."""
    with duckdb.connect(str(tmp_path / "tiny.duckdb")) as db:
        sync_articles(db, discover_shards(str(FIXTURES / "tiny-*")), "test", log=lambda _: None)
        sync_chunks(db, 512, 1, "test")
        yield db
