"""The embedding cache, with the real all-MiniLM-L6-v2 on a few dozen chunks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline.models import ResolvedModel, resolve
from pipeline.retrieval.embeddings import (
    Embedder,
    embed_missing,
    embed_table_missing,
    embedder_key,
)


class Counting:
    """An embedder that counts the texts it is asked to encode (and can pose as another key)."""

    def __init__(self, inner: Embedder, key: str | None = None) -> None:
        self.inner = inner
        self.key = key or inner.key
        self.dimension = inner.dimension
        self.calls: list[int] = []
        self.texts: list[str] = []

    def __getattr__(self, name: str) -> object:  # model, runtime...: those of the real one
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        self.texts.extend(texts)
        return self.inner.encode(texts)


def test_model_key_names_weights_and_sequence_length(embedder: Embedder,
                                                     minilm: ResolvedModel) -> None:
    assert embedder.key == (f"sentence-transformers/all-MiniLM-L6-v2@"
                            f"{minilm.weights_sha256[:16]}:seq256")
    assert embedder.dimension == 384


def test_embedder_gives_unit_vectors_that_mean_something(embedder: Embedder) -> None:
    vectors = embedder.encode(["Photosynthesis turns light into chemical energy in plants.",
                               "Plants convert sunlight into chemical energy.",
                               "The stock market fell sharply on Monday."])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embedder.encode([]).shape == (0, 384)


def test_embed_missing_encodes_only_what_has_no_vector(
        sample_warehouse: duckdb.DuckDBPyConnection, embedder: Embedder,
        chunks: dict[str, str]) -> None:
    db = sample_warehouse
    counting = Counting(embedder)
    hashes = list(chunks)
    first = embed_missing(db, counting, {h: chunks[h] for h in hashes[:24]}, write_batch=10,
                          log=lambda _: None)
    assert (first.requested, first.already_present, first.computed) == (24, 0, 24)
    assert counting.calls == [10, 10, 4]  # batched writes
    assert sorted(counting.texts) == sorted(chunks[h] for h in hashes[:24])
    assert [len(t) for t in counting.texts] == sorted(map(len, counting.texts), reverse=True)

    second = embed_missing(db, counting, chunks, write_batch=10, log=lambda _: None)
    assert (second.requested, second.already_present, second.computed) == (40, 24, 16)
    assert sorted(counting.texts[24:]) == sorted(chunks[h] for h in hashes[24:])

    again = embed_missing(db, counting, chunks, log=lambda _: None)
    assert again.computed == 0 and len(counting.texts) == 40

    other = Counting(embedder, key=embedder.key + ":other-weights")
    assert embed_missing(db, other, chunks, log=lambda _: None).computed == 40
    rows = db.execute("""SELECT model_key, count(*), count(DISTINCT content_hash)
        FROM text_embeddings GROUP BY model_key ORDER BY model_key""").fetchall()
    assert rows == [(embedder.key, 40, 40), (other.key, 40, 40)]
    assert db.execute("SELECT dimension, runtime FROM embedding_models WHERE model_key = ?",
                      [embedder.key]).fetchall() == [(384, "fp32")]


def test_embed_table_missing_embeds_each_distinct_text_once(
        sample_warehouse: duckdb.DuckDBPyConnection, embedder: Embedder) -> None:
    db = sample_warehouse
    db.execute("""CREATE TABLE few_chunks AS SELECT * FROM wiki_chunks
        WHERE page_id IN (SELECT DISTINCT page_id FROM wiki_chunks ORDER BY page_id LIMIT 6)""")
    db.execute("INSERT INTO few_chunks SELECT * FROM few_chunks LIMIT 5")  # repeated texts
    distinct = db.execute("SELECT count(DISTINCT content_hash) FROM few_chunks").fetchall()[0][0]
    assert 5 < distinct <= 50
    counting = Counting(embedder)
    report = embed_table_missing(db, counting, table="few_chunks", log=lambda _: None)
    assert report.computed == len(counting.texts) == distinct
    assert embed_table_missing(db, counting, table="few_chunks").computed == 0
    assert not db.execute("SELECT * FROM duckdb_tables() WHERE table_name LIKE 'staging%'"
                          ).fetchall()


def test_int8_runtime_has_its_own_key_and_close_vectors(minilm: ResolvedModel,
                                                        embedder: Embedder,
                                                        chunks: dict[str, str]) -> None:
    int8 = Embedder(minilm, batch_size=16, runtime="int8-partial")
    assert int8.key == embedder.key + ":int8p"
    texts = list(chunks.values())[:12]
    cosines = np.sum(int8.encode(texts) * embedder.encode(texts), axis=1)
    assert cosines.min() > 0.95
    assert cosines.mean() < 0.99999  # it really runs quantised
    with pytest.raises(ValueError, match="runtime must be one of"):
        Embedder(minilm, runtime="fp16")  # type: ignore[arg-type]


def test_gguf_model_is_refused(tmp_path: Path) -> None:
    gguf = tmp_path / "lm.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="GGUF language model"):
        Embedder(resolve(str(gguf), store=tmp_path, online=False))


def test_the_key_is_known_without_loading_the_model(minilm: ResolvedModel,
                                                     embedder: Embedder) -> None:
    assert embedder_key(minilm) == embedder.key
    assert embedder_key(minilm, "int8") == embedder.key + ":int8"
    assert embedder_key(minilm, max_seq_length=128).endswith(":seq128")
