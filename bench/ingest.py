"""Ingestion benchmark: the corpus step against a floor, and a no-change re-run of the job.

Prints uncompressed MB/s, documents/s and chunks/s for (a) the floor, decompressing and
JSON-parsing every line and nothing else, and (b) the full ingestion (parse, hash, stage in DuckDB,
elect winners) plus chunking, with the ratio between them; then the wall time of the corpus job's
first run against a re-run with nothing changed. Medians of several repeats, all in this process,
so the ratios hold on a noisy shared machine.

    .venv/bin/python bench/ingest.py [--dump data/wiki] [--repeats 3]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance, RunConfig, materialize

from assets.corpus import DumpConfig, corpus_checks, dump_files, wiki_articles, wiki_chunks
from pipeline.corpus.article_table import sync_articles
from pipeline.corpus.chunk_table import sync_chunks
from pipeline.corpus.dumps import discover_shards, open_shard
from pipeline.paths import SAMPLE_DUMP
from resources import Warehouse


def floor(paths: list[str]) -> tuple[float, int, int]:
    """Seconds, uncompressed bytes and documents to decompress and parse every line."""
    started, size, documents = time.perf_counter(), 0, 0
    for path in paths:
        with open_shard(path) as stream:
            for number, line in enumerate(stream):
                size += len(line)
                json.loads(line)
                documents += number % 2
    return time.perf_counter() - started, size, documents


def full(location: str, folder: Path) -> tuple[float, int, int, int]:
    """Seconds, bytes, documents and chunks to ingest and chunk into a fresh warehouse."""
    path = folder / f"bench-{time.monotonic_ns()}.duckdb"
    started = time.perf_counter()
    with duckdb.connect(str(path)) as db:
        articles = sync_articles(db, discover_shards(location), "bench", log=lambda _: None)
        chunks = sync_chunks(db, 512, 1, "bench")
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds, articles.uncompressed_bytes, articles.documents_parsed, chunks.chunks_written


def job_runs(location: str, folder: Path) -> tuple[float, float]:
    """Wall seconds of the corpus assets' first run and of a re-run with nothing changed."""
    resources = {"warehouse": Warehouse(database=str(folder / "job.duckdb"))}
    config = RunConfig({"dump_files": DumpConfig(location=location)})
    times = []
    with DagsterInstance.ephemeral() as instance:
        for _ in range(2):
            started = time.perf_counter()
            materialize([dump_files, wiki_articles, wiki_chunks, *corpus_checks],
                        instance=instance, resources=resources, run_config=config)
            times.append(time.perf_counter() - started)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", default=str(SAMPLE_DUMP))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = [s.path for s in discover_shards(args.dump)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        floors = [floor(paths) for _ in range(args.repeats)]
        fulls = [full(args.dump, folder) for _ in range(args.repeats)]
        first, rerun = job_runs(args.dump, folder)

    floor_s = statistics.median(f[0] for f in floors)
    full_s = statistics.median(f[0] for f in fulls)
    _, size, documents, chunks = fulls[0]
    print(f"input: {len(paths)} shards, {size / 1e6:.1f} MB uncompressed, {documents} documents, "
          f"{chunks} chunks; medians of {args.repeats} runs")
    print(f"{'':28}{'seconds':>9}{'MB/s':>9}{'docs/s':>10}{'chunks/s':>10}")
    print(f"{'floor (decompress + JSON)':28}{floor_s:9.2f}{size / 1e6 / floor_s:9.1f}"
          f"{documents / floor_s:10.0f}{'':>10}")
    print(f"{'ingest + chunk':28}{full_s:9.2f}{size / 1e6 / full_s:9.1f}"
          f"{documents / full_s:10.0f}{chunks / full_s:10.0f}")
    print(f"ingest + chunk / floor: {full_s / floor_s:.2f}x (target: at most 3x)")
    print(f"corpus job, first run: {first:.2f}s; no-change re-run: {rerun:.2f}s "
          f"({rerun / first:.2f}x of the first)")


if __name__ == "__main__":
    main()
