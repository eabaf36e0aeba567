"""Lexical index benchmark: build and update throughput and query rate, for each backend.

Builds a temporary warehouse from the sample dump (ingest and chunk, as the corpus assets do),
then for each backend: documents/s of a full build (``sync_index(..., rebuild=True)``),
seconds of an incremental sync where 1 % of the chunks changed, and queries/s one query
at a time (``search``) and batched (``search_many``; ``_msearch`` for Elasticsearch). The
queries are the real workload: the sentence queries (:mod:`pipeline.retrieval.queries`) of the first
exam questions of ``data/questions/stem_1k.csv``. Each figure is the median of ``--repeats``.

Elasticsearch is ``ELASTICSEARCH_URL`` when set (credentials and CA file from the variables
the tests read), otherwise a noida-db server started on a free loopback port for the run.

    .venv/bin/python bench/search.py [--repeats 3] [--questions 100] [--es-queries 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pipeline.corpus.article_table import sync_articles
from pipeline.corpus.chunk_table import sync_chunks
from pipeline.corpus.dumps import discover_shards
from pipeline.paths import PROJECT_ROOT, QUESTIONS, SAMPLE_DUMP
from pipeline.questions.csv_format import read_questions
from pipeline.retrieval.queries import build_queries
from pipeline.retrieval.search.base import LexicalIndex
from pipeline.retrieval.search.elastic import ElasticsearchIndex
from pipeline.retrieval.search.embedded import TantivyIndex
from pipeline.retrieval.search.sync import sync_index

EXAM = QUESTIONS / "stem_1k.csv"


def build_warehouse(dump: str, path: Path) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(str(path))
    sync_articles(db, discover_shards(dump), "bench", log=lambda _: None)
    sync_chunks(db, 512, 1, "bench")
    return db


def exam_queries(questions: int) -> list[str]:
    return [query.text for question in read_questions(EXAM)[:questions]
            for query in build_queries(question)]


@contextmanager
def elasticsearch_url(folder: Path) -> Iterator[tuple[str, dict[str, Any], str]]:
    """URL, client options and a description of the Elasticsearch to measure."""
    sys.path.insert(0, str(PROJECT_ROOT))  # the launcher lives with the tests
    from tests.elasticsearch_server import ElasticsearchTarget, start_noida

    target = ElasticsearchTarget.from_environment()
    if target is not None:
        yield target.url, target.options, "ELASTICSEARCH_URL"
        return
    server = start_noida(folder / "noida")
    try:
        yield server.url, {}, "noida-db, loopback"
    finally:
        server.stop()


def median_rate(runs: list[tuple[int, float]]) -> float:
    return statistics.median(count / seconds for count, seconds in runs)


def measure(name: str, index: LexicalIndex, db: duckdb.DuckDBPyConnection, queries: list[str],
            k: int, repeats: int) -> dict[str, Any]:
    builds, updates, singles, batches = [], [], [], []
    for repeat in range(repeats):
        sync = sync_index(db, index, rebuild=True)
        builds.append((sync.indexed, sync.seconds))
        db.execute("UPDATE wiki_chunks SET content_hash = content_hash || 'b' "
                   "WHERE hash(chunk_id) % 100 = ?", [repeat])
        sync = sync_index(db, index)
        assert not sync.rebuilt
        updates.append((sync.indexed, sync.seconds))
        started = time.perf_counter()
        for query in queries:
            index.search(query, k)
        singles.append((len(queries), time.perf_counter() - started))
        started = time.perf_counter()
        index.search_many(queries, k)
        batches.append((len(queries), time.perf_counter() - started))
    return {"backend": name, "docs": builds[0][0], "build": median_rate(builds),
            "updated": updates[0][0],
            "update": statistics.median(seconds for _, seconds in updates),
            "queries": len(queries), "single": median_rate(singles),
            "batched": median_rate(batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", default=str(SAMPLE_DUMP))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=100,
                        help="exam questions whose sentence queries are run")
    parser.add_argument("--es-queries", type=int, default=10,
                        help="queries run against Elasticsearch (noida-db scans every "
                        "document per query: about 1.6 s each on the sample corpus)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-elasticsearch", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        started = time.perf_counter()
        db = build_warehouse(args.dump, folder / "bench.duckdb")
        chunks = db.execute("SELECT count(*) FROM wiki_chunks").fetchone()[0]
        print(f"warehouse: {chunks} chunks from {args.dump} in "
              f"{time.perf_counter() - started:.1f} s")
        queries = exam_queries(args.questions)
        print(f"queries: {len(queries)} sentence queries of {args.questions} exam questions, "
              f"k={args.k}, median of {args.repeats} runs\n")
        results = []
        with TantivyIndex(folder / "tantivy") as index:
            results.append(measure("tantivy (embedded)", index, db, queries, args.k,
                                   args.repeats))
        if not args.no_elasticsearch:
            with elasticsearch_url(folder) as (url, options, where), \
                    ElasticsearchIndex(url, "bench_chunks", request_timeout=600,
                                       **options) as index:
                results.append(measure(f"elasticsearch ({where})", index, db,
                                       queries[:args.es_queries], args.k, args.repeats))
                delete_indices(index)
        db.close()
    report(results)


def delete_indices(index: ElasticsearchIndex) -> None:
    client = index.client.options(ignore_status=404)
    for name in client.indices.get(index=f"{index.name}*", expand_wildcards="all").body:
        client.indices.delete(index=name)


def report(results: list[dict[str, Any]]) -> None:
    columns: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
        ("backend", "<34", lambda r: r["backend"]),
        ("build docs/s", ">13", lambda r: f"{r['build']:,.0f}"),
        ("1% update", ">18", lambda r: f"{r['update']:.2f} s ({r['updated']} docs)"),
        ("queries", ">8", lambda r: str(r["queries"])),
        ("single q/s", ">11", lambda r: f"{r['single']:,.1f}"),
        ("batched q/s", ">12", lambda r: f"{r['batched']:,.1f}"),
    ]
    print("  ".join(f"{title:{spec}}" for title, spec, _ in columns))
    for result in results:
        print("  ".join(f"{cell(result):{spec}}" for _, spec, cell in columns))


if __name__ == "__main__":
    main()
