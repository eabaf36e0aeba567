"""Embedding benchmark: the pipeline's embed path against plain ``SentenceTransformer.encode``.

On the same ~500-character chunks of the sample corpus, in this one process (so the ratios hold
on a noisy shared machine), medians of several repeats:

- texts/s of plain ``SentenceTransformer(dir, device="cpu").encode(texts, batch_size)``;
- texts/s of ``embed_missing`` into a fresh DuckDB file (encode + sort + batched writes), and of
  ``Embedder.encode`` alone; ratios against plain (target: at least 0.9x);
- texts/s of the int8 runtime (dynamic quantisation of the Linear layers), and how much it
  changes the vectors: mean cosine between fp32 and int8 vectors of a corpus, and whether the
  top-10 neighbours of query sentences over that corpus stay the same;
- texts/s of ONNX Runtime (the same weights exported, fp32 and int8 dynamically quantised by
  ``onnxruntime.quantization``), with the same cosine and top-10 checks, when ``onnxruntime``
  and ``onnx`` are installed (``.venv/bin/pip install onnxruntime onnx``: not project
  dependencies, since neither is adopted, docs/benchmarks.md);
- texts/s of ``encode`` called batch by batch in the given order, against one call (which sorts
  all texts by length before batching, as ``SentenceTransformer.encode`` does);
- how fast DuckDB reads vectors back into a float32 matrix, stored as ``FLOAT[n]``, ``FLOAT[]``
  or ``BLOB``, as a plain scan and in a given order (what ``load_matrix`` does).

    .venv/bin/python bench/embeddings.py          # all-MiniLM-L6-v2: 3.5-5 minutes on 2 cores
    .venv/bin/python bench/embeddings.py --mpnet  # all-mpnet-base-v2, smaller sizes: 5-8 minutes
    .venv/bin/python bench/embeddings.py --model PATH_OR_HUB_ID --texts 128 --corpus 1000
"""

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Imported after setting HF_HUB_OFFLINE, which huggingface_hub reads on import.
import duckdb
import numpy as np
import pyarrow as pa
import torch
from sentence_transformers import SentenceTransformer

from pipeline.corpus.article_table import sync_articles
from pipeline.corpus.chunk_table import sync_chunks
from pipeline.corpus.dumps import discover_shards
from pipeline.models import resolve
from pipeline.paths import SAMPLE_DUMP, work_dir
from pipeline.retrieval.dense import load_matrix, top_k
from pipeline.retrieval.embeddings import Embedder, embed_missing


def corpus_texts(folder: Path, count: int, queries: int) -> tuple[dict[str, str], list[str]]:
    """``count`` distinct chunks of 450-512 characters, and ``queries`` query sentences: the
    first sentence of chunks of other pages. Read from the project's warehouse when it holds
    the chunks, else from the sample dump ingested into a scratch warehouse."""
    path = work_dir() / "warehouse.duckdb"
    db = None
    if path.exists():
        try:
            db = duckdb.connect(str(path), read_only=True)
            db.execute("SELECT 1 FROM wiki_chunks LIMIT 1").fetchall()
        except duckdb.Error:
            db = None
    if db is None:
        db = duckdb.connect(str(folder / "corpus.duckdb"))
        sync_articles(db, discover_shards(str(SAMPLE_DUMP)), "bench", log=lambda _: None)
        sync_chunks(db, 512, 1, "bench")
    rows = db.execute("""SELECT content_hash, any_value(text), any_value(page_id) FROM wiki_chunks
        WHERE length(text) BETWEEN 450 AND 512 GROUP BY content_hash
        ORDER BY hash(content_hash) LIMIT ?""", [count]).fetchall()
    pages = {r[2] for r in rows}
    others = db.execute("""SELECT page_id, text FROM wiki_chunks WHERE ordinal = 0
        ORDER BY hash(page_id)""").fetchall()
    db.close()
    sentences = []
    for page_id, text in others:
        first = text.split(". ")[0].strip()
        if page_id not in pages and 40 <= len(first) <= 300:
            sentences.append(first)
        if len(sentences) == queries:
            break
    return {h: t for h, t, _ in rows}, sentences


class OnnxEncoder:
    """The sentence-transformers model's transformer exported to ONNX and run by ONNX Runtime,
    mean-pooled and normalised as the model's own pooling does (``quantised``: weights and
    activations int8, per channel, by ``onnxruntime.quantization.quantize_dynamic``)."""

    def __init__(self, st: SentenceTransformer, folder: Path, threads: int, batch_size: int,
                 quantised: bool) -> None:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic

        if st[1].get_config_dict().get("pooling_mode") != "mean" or len(st) > 3:
            raise ValueError("ONNX contender written for mean-pooled models only")
        self.tokenizer, self.max_length = st[0].tokenizer, st.max_seq_length
        self.batch_size = batch_size
        sample = self.tokenizer(["a sentence", "another one"], padding=True, return_tensors="pt")
        self.names = list(sample.keys())
        path = folder / "model.onnx"
        if not path.exists():
            names = self.names

            class Hidden(torch.nn.Module):
                """The transformer's last hidden state from positional inputs (ONNX's)."""

                def __init__(self, transformer: torch.nn.Module) -> None:
                    super().__init__()
                    self.transformer = transformer

                def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                    return self.transformer(
                        **dict(zip(names, inputs, strict=True))).last_hidden_state

            axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]}
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(Hidden(st[0].auto_model), tuple(sample[n] for n in names),
                                  str(path), input_names=names, output_names=["hidden"],
                                  dynamic_axes=axes, opset_version=17, dynamo=False)
        if quantised:
            int8 = folder / "model.int8.onnx"
            quantize_dynamic(str(path), str(int8), weight_type=QuantType.QInt8,
                             per_channel=True)
            path = int8
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])
        self.dimension = int(st.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, longest texts batched first (as ``SentenceTransformer.encode``)."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dimension), np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="np")
            hidden = self.session.run(None, {n: batch[n].astype(np.int64)
                                             for n in self.names})[0]
            mask = batch["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[chosen] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def onnx_contenders(st: SentenceTransformer, folder: Path, threads: int, batch_size: int
                    ) -> dict[str, OnnxEncoder]:
    """ONNX Runtime fp32 and int8, or none (saying why) when it is not installed."""
    try:
        import onnx  # noqa: F401  (quantize_dynamic needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        print("ONNX Runtime not installed: its rows are skipped "
              "(.venv/bin/pip install onnxruntime onnx)")
        return {}
    return {f"ONNX Runtime {kind}": OnnxEncoder(st, folder, threads, batch_size,
                                                quantised=kind == "int8")
            for kind in ("fp32", "int8")}


def neighbours(matrix: np.ndarray, queries: np.ndarray, other_matrix: np.ndarray,
               other_queries: np.ndarray) -> list[str]:
    """How far another encoder's vectors move from fp32's: cosines and top-10 neighbours."""
    idx32, _ = top_k(queries, matrix, 10)
    idx, _ = top_k(other_queries, other_matrix, 10)
    cosines = np.sum(matrix * other_matrix, axis=1)
    pairs = list(zip(idx32, idx, strict=True))
    overlap = np.array([len(set(a) & set(b)) / 10 for a, b in pairs])
    return [f"chunk vectors mean cosine {cosines.mean():.4f} (min {cosines.min():.4f}), queries "
            f"{np.sum(queries * other_queries, axis=1).mean():.4f}",
            f"  top-10 of {len(queries)} query sentences over {len(matrix)} chunks: mean overlap "
            f"{overlap.mean():.3f}, same set {np.mean(overlap == 1):.2f}, same order "
            f"{np.mean([np.array_equal(a, b) for a, b in pairs]):.2f}, same top-1 "
            f"{np.mean(idx32[:, 0] == idx[:, 0]):.2f}, fp32 top-1 within top-10 "
            f"{np.mean([a[0] in b for a, b in pairs]):.2f}"]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def storage(n: int = 50_000, dim: int = 384, repeats: int = 5) -> list[tuple[str, float, float]]:
    """Median seconds to read n vectors back into a float32 matrix: plain scan, given order."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    hashes = [f"{i:032x}" for i in range(n)]
    order = rng.permutation(n)
    flat = pa.array(vectors.reshape(-1))
    columns = {
        f"FLOAT[{dim}]": pa.FixedSizeListArray.from_arrays(flat, dim),
        "FLOAT[]": pa.ListArray.from_arrays(pa.array(np.arange(0, n * dim + 1, dim,
                                                               dtype=np.int32)), flat),
        "BLOB": pa.array([row.tobytes() for row in vectors], pa.binary()),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        db = duckdb.connect(str(Path(tmp) / "storage.duckdb"))
        db.register("want", pa.table({"pos": np.arange(n), "h": [hashes[i] for i in order]}))
        for number, (ddl, column) in enumerate(columns.items()):
            table = f"t{number}"
            db.execute(f"CREATE TABLE {table} (model_key VARCHAR, content_hash VARCHAR, v {ddl})")
            db.register("batch", pa.table({"k": ["m"] * n, "h": hashes, "v": column}))
            db.execute(f"INSERT INTO {table} SELECT * FROM batch")
            db.unregister("batch")
            db.execute("CHECKPOINT")

            def read(query: str, ddl: str = ddl) -> np.ndarray:
                col = db.sql(query).to_arrow_table().column(0).combine_chunks()
                if ddl == "BLOB":
                    offsets = np.frombuffer(col.buffers()[1], np.int32)[:len(col) + 1]
                    data = np.frombuffer(col.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
                    return data.view(np.float32).reshape(-1, dim)
                return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)

            scan = f"SELECT v FROM {table} WHERE model_key = 'm'"
            ordered = (f"SELECT e.v FROM want w JOIN {table} e ON e.model_key = 'm' "
                       "AND e.content_hash = w.h ORDER BY w.pos")
            assert np.array_equal(read(ordered), vectors[order])
            scan_s = statistics.median(timed(lambda q=scan: read(q)) for _ in range(repeats))
            order_s = statistics.median(timed(lambda q=ordered: read(q)) for _ in range(repeats))
            results.append((ddl, scan_s, order_s))
        db.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--mpnet", action="store_true",
                        help="all-mpnet-base-v2, with --texts 48 --corpus 400 unless given")
    parser.add_argument("--texts", type=int, default=None, help="texts per throughput run (256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", type=int, default=None,
                        help="chunks for the int8 ranking check (2000; 0 skips it)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--runtimes", default="int8,int8-partial",
                        help="quantised runtimes to compare with fp32 (comma-separated, or '')")
    args = parser.parse_args()
    if args.mpnet:
        args.model = "sentence-transformers/all-mpnet-base-v2"
    texts_n = args.texts or (48 if args.mpnet else 256)
    corpus_n = args.corpus if args.corpus is not None else (400 if args.mpnet else 2000)
    runtimes = [r for r in args.runtimes.split(",") if r]
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus, queries = corpus_texts(folder, max(corpus_n, texts_n), args.queries)
        texts = list(corpus.values())[:texts_n]
        model = resolve(args.model, log=lambda _: None)
        plain = SentenceTransformer(str(model.path), device="cpu")
        ours = Embedder(model, batch_size=args.batch_size, threads=args.threads)
        quantised = {r: Embedder(model, batch_size=args.batch_size, threads=args.threads,
                                 runtime=r) for r in runtimes}
        print(f"model: {model.reference} ({model.source}, weights {model.weights_sha256[:12]}), "
              f"{ours.dimension}-d, max_seq_length {ours.max_seq_length}; batch "
              f"{args.batch_size}, {torch.get_num_threads()} threads; {len(texts)} texts of "
              f"{statistics.mean(map(len, texts)):.0f} chars on average; medians of "
              f"{args.repeats} runs")
        for encoder in (plain.encode, ours.encode, *(e.encode for e in quantised.values())):
            encoder(texts[:16])  # warm-up: first-call allocations

        def run_ours(repeat: int) -> None:
            with duckdb.connect(str(folder / f"run{repeat}.duckdb")) as db:
                embed_missing(db, ours, {h: corpus[h] for h in list(corpus)[:texts_n]},
                              log=lambda _: None)

        contenders: dict[str, Callable[[int], object]] = {
            "SentenceTransformer.encode": lambda _: plain.encode(texts,
                                                                 batch_size=args.batch_size),
            "embed_missing fp32 (+ DuckDB)": run_ours,
        }
        for runtime, embedder in quantised.items():
            contenders[f"Embedder {runtime}"] = lambda _, e=embedder: e.encode(texts)
        onnx = onnx_contenders(plain, folder, args.threads, args.batch_size)
        for name, encoder in onnx.items():
            encoder.encode(texts[:16])
            contenders[name] = lambda _, e=encoder: e.encode(texts)
        contenders["encode batch by batch, unsorted"] = lambda _: [
            plain.encode(texts[i:i + args.batch_size], batch_size=args.batch_size)
            for i in range(0, len(texts), args.batch_size)]
        runs: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for repeat in range(args.repeats):
            # Rotate the order each repeat, so no contender always runs first (or last).
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                runs[name].append(timed(lambda c=contenders[name], r=repeat: c(r)))
        plain_s = statistics.median(runs["SentenceTransformer.encode"])
        print(f"{'':34}{'seconds':>9}{'texts/s':>9}{'x plain':>9}")
        for name, times in runs.items():
            seconds = statistics.median(times)
            print(f"{name:34}{seconds:9.2f}{len(texts) / seconds:9.1f}{plain_s / seconds:9.2f}")

        if corpus_n:
            hashes = list(corpus)[:corpus_n]
            with duckdb.connect(str(folder / "corpus-embeddings.duckdb")) as db:
                report = embed_missing(db, ours, {h: corpus[h] for h in hashes},
                                       log=lambda _: None)
                started = time.perf_counter()
                matrix = load_matrix(db, ours.key, hashes)
                load_s = time.perf_counter() - started
                q32 = ours.encode(queries)
                started = time.perf_counter()
                top_k(q32, matrix, 10)
                search_s = time.perf_counter() - started
                print(f"corpus run: {len(hashes)} chunks via embed_missing, fp32: "
                      f"{report.texts_per_second:.1f} texts/s; load_matrix "
                      f"{load_s * 1000:.0f} ms; top-10 of {len(queries)} queries "
                      f"{search_s * 1000:.0f} ms")
                for runtime, embedder in quantised.items():
                    report8 = embed_missing(db, embedder, {h: corpus[h] for h in hashes},
                                            log=lambda _: None)
                    lines = neighbours(matrix, q32, load_matrix(db, embedder.key, hashes),
                                       embedder.encode(queries))
                    print(f"{runtime} vs fp32: {report8.texts_per_second:.1f} texts/s on the "
                          f"corpus; {lines[0]}\n{lines[1]}")
                for name, encoder in onnx.items():
                    started = time.perf_counter()
                    vectors = encoder.encode([corpus[h] for h in hashes])
                    rate = len(hashes) / (time.perf_counter() - started)
                    lines = neighbours(matrix, q32, vectors, encoder.encode(queries))
                    print(f"{name} vs fp32: {rate:.1f} texts/s on the corpus; {lines[0]}\n"
                          f"{lines[1]}")

    print("DuckDB read-back of 50,000 x 384 vectors into float32 (median seconds):")
    print(f"{'':12}{'scan':>8}{'ordered':>9}")
    for ddl, scan_s, order_s in storage():
        print(f"{ddl:12}{scan_s:8.3f}{order_s:9.3f}")


if __name__ == "__main__":
    main()
