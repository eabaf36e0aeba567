"""Dense embeddings of texts, cached in DuckDB by (model key, content hash).

Embedding is the slowest step of the pipeline on a CPU (all-MiniLM-L6-v2 manages a few dozen
chunks a second on two cores, all-mpnet-base-v2 a handful), so no text is embedded twice: the
``text_embeddings`` table keeps one vector per (model key, content hash), and
:func:`embed_missing` encodes only the hashes that have no vector for that model yet. A changed
chunk size or a new dump shard therefore embeds only the chunks it really changed.

The model key (:attr:`Embedder.key`) names the model, its weights hash, its maximum sequence
length and the runtime (``int8`` when dynamically quantised), because each changes the vectors:
new weights never reuse old vectors.

Vectors are stored as ``FLOAT[]``: one table serves models of any dimension, and reading them
back through Arrow into a float32 matrix was measured within about 20 % of ``FLOAT[n]`` for a
plain scan and no slower for a read in a given order (see ``bench/embeddings.py``). Reading
them back and searching them is :mod:`pipeline.retrieval.dense`'s.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.devices import torch_device
from pipeline.models import ResolvedModel
from pipeline.progress import Progress
from pipeline.tables import stream_rows

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBEDDINGS_DDL = "model_key VARCHAR, content_hash VARCHAR, vector FLOAT[]"
MODELS_DDL = """model_key VARCHAR, model_name VARCHAR, model_path VARCHAR, weights_sha256 VARCHAR,
    dimension INTEGER, max_seq_length INTEGER, runtime VARCHAR, created_at TIMESTAMPTZ"""
STAGING = "staging_embed_missing"
Runtime = Literal["fp32", "int8", "int8-partial"]
RUNTIME_KEYS = {"fp32": "", "int8": ":int8", "int8-partial": ":int8p"}


class TextEncoder(Protocol):
    """What :func:`embed_missing` needs of an embedder (tests wrap one to count its work)."""

    key: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def embedder_key(model: ResolvedModel, runtime: Runtime = "fp32",
                 max_seq_length: int | None = None) -> str | None:
    """The key an :class:`Embedder` of ``model`` will have, without loading the model.

    Read from the model's ``sentence_bert_config.json``; ``None`` when it names no sequence
    length (then only loading the model tells).
    """
    if max_seq_length is None:
        config = model.path / "sentence_bert_config.json"
        try:
            max_seq_length = int(json.loads(config.read_text())["max_seq_length"])
        except (OSError, KeyError, ValueError, TypeError):
            return None
    return f"{model.key}:seq{max_seq_length}{RUNTIME_KEYS[runtime]}"


class Embedder:
    """A sentence-transformers model turning texts into unit-length float32 vectors.

    ``device`` is a torch device name or ``"auto"`` (a GPU when there is one); the int8
    runtimes run on the CPU only. ``threads`` sets ``torch.set_num_threads`` (process-wide: torch
    has one intra-op pool).

    ``runtime`` other than ``"fp32"`` quantises Linear layers dynamically to int8
    (``torch.ao.quantization.quantize_dynamic``, weights per output channel, which keeps the
    vectors far closer to fp32 than per-tensor scales): ``"int8"`` every Linear layer (about
    2x faster on a CPU), ``"int8-partial"`` all but the feed-forward down-projections, whose
    inputs have the widest range (about 1.6x, closer to fp32). Each runtime has its own model
    key, so its vectors never mix with fp32 ones. ``bench/embeddings.py`` measures both.
    """

    def __init__(self, model: ResolvedModel, *, batch_size: int = 64, threads: int | None = None,
                 max_seq_length: int | None = None, runtime: Runtime = "fp32",
                 device: str = "cpu") -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if model.file is not None:
            raise ValueError(f"{model.reference} is a GGUF language model, not a sentence "
                             "embedder")
        if runtime not in RUNTIME_KEYS:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIME_KEYS)}, not {runtime!r}")
        if threads:
            torch.set_num_threads(threads)
        self.model = model
        self.batch_size = batch_size
        self.runtime = runtime
        self.st: SentenceTransformer = SentenceTransformer(
            str(model.path), device=str(torch_device(device) if runtime == "fp32" else "cpu"),
            local_files_only=True)
        if max_seq_length:
            self.st.max_seq_length = max_seq_length
        if runtime != "fp32":
            self.st = _quantise(self.st, partial=runtime == "int8-partial")
        self.st.eval()
        self.max_seq_length = int(self.st.max_seq_length)
        self.dimension = int(self.st.get_embedding_dimension())
        self.key = f"{model.key}:seq{self.max_seq_length}{RUNTIME_KEYS[runtime]}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""
        import torch

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with torch.inference_mode():
            vectors = self.st.encode(list(texts), batch_size=self.batch_size,
                                     convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _quantise(model: SentenceTransformer, partial: bool) -> SentenceTransformer:
    """Dynamic int8 quantisation of the Linear layers, weights scaled per output channel.

    ``partial`` leaves the feed-forward down-projections (``*.output.dense`` outside attention)
    in fp32: quantising their activations costs most of the accuracy.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = [name for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear)]
    chosen = [name for name in linear if not (
        partial and name.endswith("output.dense") and "attention" not in name)]
    with warnings.catch_warnings():
        # torch 2.13 announces that torch.ao.quantization moves to torchao; it works as
        # documented until then, and the benchmark checks what it does to the vectors.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, dict.fromkeys(chosen, per_channel_dynamic_qconfig),
                                dtype=torch.qint8)


def ensure_schema(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS text_embeddings ({EMBEDDINGS_DDL})")
    db.execute(f"CREATE TABLE IF NOT EXISTS embedding_models ({MODELS_DDL})")


def register_model(db: duckdb.DuckDBPyConnection, embedder: TextEncoder) -> None:
    """Record what a model key stands for (once), so the table explains its own vectors."""
    ensure_schema(db)
    if _scalar(db, "SELECT count(*) FROM embedding_models WHERE model_key = ?", [embedder.key]):
        return
    model = getattr(embedder, "model", None)
    db.execute("INSERT INTO embedding_models VALUES (?, ?, ?, ?, ?, ?, ?, now())", [
        embedder.key,
        model.name if isinstance(model, ResolvedModel) else None,
        str(model.path) if isinstance(model, ResolvedModel) else None,
        model.weights_sha256 if isinstance(model, ResolvedModel) else None,
        embedder.dimension, getattr(embedder, "max_seq_length", None),
        getattr(embedder, "runtime", None),
    ])


@dataclass
class EmbedReport:
    """What one :func:`embed_missing` call did; ``computed`` is what the incremental tests check."""

    model_key: str
    requested: int = 0  # distinct content hashes asked for
    already_present: int = 0
    computed: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0

    @property
    def texts_per_second(self) -> float:
        return self.computed / self.encode_seconds if self.encode_seconds else 0.0


def embed_missing(db: duckdb.DuckDBPyConnection, embedder: TextEncoder,
                  texts_by_hash: Mapping[str, str], *, write_batch: int = 1024,
                  log: Callable[[str], None] = print) -> EmbedReport:
    """Embed the texts whose content hash has no vector for ``embedder.key`` yet.

    Missing texts are encoded longest first, so each batch pads to similar lengths, and
    written every ``write_batch`` texts: an interrupted run keeps what it finished. A long run
    logs a progress line with the time left (:class:`pipeline.progress.Progress`).
    """
    ensure_schema(db)
    wanted = pa.table({"content_hash": pa.array(list(texts_by_hash), pa.string()),
                       "text": pa.array(list(texts_by_hash.values()), pa.string())})
    db.register("_wanted", wanted)
    try:
        return _embed_staged(db, embedder, "_wanted", write_batch, log)
    finally:
        db.unregister("_wanted")


def embed_table_missing(db: duckdb.DuckDBPyConnection, embedder: TextEncoder, *,
                        table: str = "wiki_chunks", hash_column: str = "content_hash",
                        text_column: str = "text", write_batch: int = 1024,
                        log: Callable[[str], None] = print) -> EmbedReport:
    """:func:`embed_missing` for the texts of a warehouse table, without loading them all into
    Python: the missing ones are selected in SQL and streamed in batches."""
    ensure_schema(db)
    source = f"(SELECT {hash_column} AS content_hash, {text_column} AS text FROM {table})"
    return _embed_staged(db, embedder, source, write_batch, log)


def _embed_staged(db: duckdb.DuckDBPyConnection, embedder: TextEncoder, source: str,
                  write_batch: int, log: Callable[[str], None]) -> EmbedReport:
    started = time.perf_counter()
    register_model(db, embedder)
    report = EmbedReport(embedder.key)
    report.requested = _scalar(db, f"SELECT count(DISTINCT content_hash) FROM {source}")
    # A staging table, not a temporary one: the streaming cursor below is another connection.
    db.execute(f"""CREATE OR REPLACE TABLE {STAGING} AS
        SELECT content_hash, any_value(text) AS text FROM {source} s
        WHERE content_hash IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM text_embeddings e
            WHERE e.model_key = ? AND e.content_hash = s.content_hash)
        GROUP BY content_hash""", [embedder.key])
    try:
        missing = _scalar(db, f"SELECT count(*) FROM {STAGING}")
        report.already_present = report.requested - missing
        if missing:
            bar = Progress(f"embedding with {embedder.key}", missing, log, unit="texts")
            for hashes, texts in _stream(db, write_batch):
                encode_started = time.perf_counter()
                vectors = embedder.encode(texts)
                report.encode_seconds += time.perf_counter() - encode_started
                _write(db, embedder, hashes, vectors)
                report.computed += len(hashes)
                bar.advance(len(hashes))
    finally:
        db.execute(f"DROP TABLE IF EXISTS {STAGING}")
    report.seconds = time.perf_counter() - started
    if report.computed:
        log(f"embedded {report.computed} texts with {embedder.key} in {report.seconds:.1f} s "
            f"({report.texts_per_second:.1f} texts/s); {report.already_present} already had "
            "vectors")
    return report


def _scalar(db: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> int:
    """One value, with the result fully consumed (DuckDB 2 refuses new work on a connection
    whose last result still has rows to fetch)."""
    return db.execute(query, params or []).fetchall()[0][0]


def _stream(db: duckdb.DuckDBPyConnection,
            batch: int) -> Iterable[tuple[list[str], list[str]]]:
    """The staged texts, longest first, ``batch`` at a time (bounded memory)."""
    query = f"SELECT content_hash, text FROM {STAGING} ORDER BY length(text) DESC, content_hash"
    for rows in stream_rows(db, query, batch):
        yield [r[0] for r in rows], [r[1] or "" for r in rows]


def _write(db: duckdb.DuckDBPyConnection, embedder: TextEncoder, hashes: list[str],
           vectors: np.ndarray) -> None:
    if vectors.shape != (len(hashes), embedder.dimension):
        raise ValueError(f"{embedder.key} returned vectors of shape {vectors.shape} for "
                         f"{len(hashes)} texts of dimension {embedder.dimension}")
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    offsets = pa.array(np.arange(0, len(flat) + 1, embedder.dimension, dtype=np.int32))
    batch = pa.table({"content_hash": pa.array(hashes, pa.string()),
                      "vector": pa.ListArray.from_arrays(offsets, flat)})
    db.register("_vectors", batch)
    try:
        # NOT EXISTS keeps the table free of duplicates even if a hash was embedded meanwhile.
        db.execute("""INSERT INTO text_embeddings
            SELECT ?, b.content_hash, b.vector FROM _vectors b
            WHERE NOT EXISTS (SELECT 1 FROM text_embeddings e
                              WHERE e.model_key = ? AND e.content_hash = b.content_hash)""",
                   [embedder.key, embedder.key])
    finally:
        db.unregister("_vectors")
