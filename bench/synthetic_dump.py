"""Bounded memory, proven: ingest and chunk synthetic dumps of 1x, 10x and 100x the sample.

A synthetic dump is in the real CirrusSearch format (gzip shards of action and document lines)
and made of the sample's real text recombined: copy k of every article gets a new page id, its
title marked with k, and its text from the second half of another article joined to its own
first half, so no two copies chunk alike. Each copy is one shard (10x: 10 shards). Every size
is ingested and chunked into a fresh warehouse in a fresh process (spawned), which reports its
peak resident memory (``ru_maxrss``) and throughput. Prints a table and the 100x/10x ratios
(target: memory within 1.5x, throughput flat).

    .venv/bin/python bench/synthetic_dump.py [--factors 1 10 100] [--workers 1]

The dumps are written under a temporary folder (100x: about 300 MB compressed) and deleted.
"""

import argparse
import gzip
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from pipeline.corpus.article_table import sync_articles
from pipeline.corpus.chunk_table import sync_chunks
from pipeline.corpus.dumps import discover_shards, open_shard
from pipeline.paths import SAMPLE_DUMP
from resources import Warehouse

PAGE_ID_STRIDE = 100_000_000


def sample_pairs() -> list[tuple[dict, dict]]:
    """The sample's (action, document) pairs, in dump order."""
    pairs = []
    for shard in discover_shards(str(SAMPLE_DUMP)):
        with open_shard(shard.path) as stream:
            lines = [json.loads(line) for line in stream]
        pairs += list(zip(lines[::2], lines[1::2], strict=True))
    return pairs


def write_dump(folder: Path, factor: int, pairs: list[tuple[dict, dict]]) -> int:
    """``factor`` shards, one recombined copy of the sample each; returns the bytes written."""
    folder.mkdir(parents=True)
    texts = [document.get("text") or "" for _, document in pairs]
    for copy in range(factor):
        path = folder / f"enwiki-synthetic-content-{copy:05d}.json.gz"
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
            for index, (action, document) in enumerate(pairs):
                other = texts[(index + 7919 * (copy + 1)) % len(texts)]
                text = document.get("text") or ""
                page_id = int(document.get("page_id") or 0) + copy * PAGE_ID_STRIDE
                action = json.loads(json.dumps(action))
                next(iter(action.values()))["_id"] = str(page_id)
                out.write(json.dumps(action) + "\n")
                out.write(json.dumps({
                    **document, "page_id": page_id,
                    "title": f"{document.get('title')} ({copy})",
                    "text": text[: len(text) // 2] + other[len(other) // 2:],
                }) + "\n")
    return sum(p.stat().st_size for p in folder.iterdir())


def ingest(dump: str, database: str, workers: int, memory_limit: str,
           queue: multiprocessing.Queue) -> None:
    """In a fresh process: ingest and chunk ``dump``; put the figures and peak RSS."""
    started = time.perf_counter()
    with duckdb.connect(database, config={"memory_limit": memory_limit}) as db:
        articles = sync_articles(db, discover_shards(dump), "bench", workers=workers,
                                 log=lambda _: None)
        chunks = sync_chunks(db, 512, 1, "bench")
    queue.put({"seconds": time.perf_counter() - started,
               "documents": articles.documents_parsed,
               "mb": articles.uncompressed_bytes / 1e6, "chunks": chunks.chunks_written,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def measure(dump: Path, database: Path, workers: int, memory_limit: str) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=ingest, args=(str(dump), str(database), workers,
                                                   memory_limit, queue))
    process.start()
    result = queue.get()
    process.join()
    # Worker processes parse in their own memory; report the largest child too.
    result["children_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--memory-limit", default=Warehouse.model_fields["memory_limit"].default,
                        help="DuckDB's memory_limit (default: the Warehouse resource's)")
    args = parser.parse_args()
    pairs = sample_pairs()
    results = {}
    with tempfile.TemporaryDirectory(prefix="synthetic-dump-") as root:
        for factor in args.factors:
            dump = Path(root) / f"x{factor}"
            size = write_dump(dump, factor, pairs)
            results[factor] = {**measure(dump, Path(root) / f"x{factor}.duckdb", args.workers,
                                         args.memory_limit), "compressed_mb": size / 1e6}
            for path in dump.iterdir():
                path.unlink()
            (Path(root) / f"x{factor}.duckdb").unlink()
            r = results[factor]
            print(f"{factor:>4}x: {r['compressed_mb']:8.1f} MB gz, {r['mb']:8.1f} MB text, "
                  f"{r['documents']:>9,} docs, {r['chunks']:>9,} chunks, {r['seconds']:7.1f} s, "
                  f"{r['documents'] / r['seconds']:8.0f} docs/s, "
                  f"{r['mb'] / r['seconds']:5.1f} MB/s, peak RSS {r['peak_mb']:6.0f} MB",
                  flush=True)
    if 10 in results and 100 in results:
        small, large = results[10], results[100]
        rate = {f: r["documents"] / r["seconds"] for f, r in results.items()}
        print(f"100x / 10x: peak RSS {large['peak_mb'] / small['peak_mb']:.2f}x, "
              f"throughput {rate[100] / rate[10]:.2f}x")


if __name__ == "__main__":
    main()
