"""Candidate passages from a real tantivy index and real MiniLM dense retrieval."""

from pathlib import Path

import duckdb
import pytest

from pipeline.models import resolve
from pipeline.questions.formats import read_questions
from pipeline.rankings.orders import question_text
from pipeline.rankings.semantic import VectorCache
from pipeline.retrieval.candidates import find_candidates, read_candidates
from pipeline.retrieval.dense import DenseIndex
from pipeline.retrieval.embeddings import Embedder, embed_table_missing
from pipeline.retrieval.search.embedded import TantivyIndex
from pipeline.retrieval.search.sync import sync_index
from tests.conftest import FIXTURES

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def asked():
    return [("test", q) for q in read_questions(FIXTURES / "retrieval" / "test.csv")]


@pytest.fixture
def index(tiny_warehouse: duckdb.DuckDBPyConnection, tmp_path: Path):
    with TantivyIndex(tmp_path / "index") as built:
        sync_index(tiny_warehouse, built)
        yield built


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(resolve(MINILM, log=lambda _: None))


def test_lexical_candidates_find_the_source_article(tiny_warehouse, index, asked) -> None:
    stats = find_candidates(tiny_warehouse, index.search_many, asked, hits_per_query=5,
                            max_passages=3, max_chunks_per_passage=1)
    candidates = read_candidates(tiny_warehouse)
    assert stats.questions == 2 and stats.queries >= 12
    assert candidates[("test", "t1")][0].title == "ABC islands"
    assert candidates[("test", "t2")][0].title == "Aaron Copland"
    for passages in candidates.values():
        assert 0 < len(passages) <= 3
        scores = [p.score for p in passages]
        assert scores == sorted(scores, reverse=True)


def test_dense_hits_come_after_the_lexical_passages(tiny_warehouse, index, asked,
                                                    embedder) -> None:
    embed_table_missing(tiny_warehouse, embedder, log=lambda _: None)
    dense = DenseIndex(tiny_warehouse, embedder.key)
    texts = VectorCache(tiny_warehouse, embedder, lambda _: None)

    def dense_search(batch):
        return dense.search(texts.texts([question_text(q) for q in batch]), 8)

    find_candidates(tiny_warehouse, index.search_many, asked, hits_per_query=5, max_passages=2,
                    max_chunks_per_passage=1, dense_search=dense_search)
    nearest = dict(zip([q.id for _, q in asked], dense_search([q for _, q in asked]),
                       strict=True))
    for (_, question_id), passages in read_candidates(tiny_warehouse).items():
        assert len(passages) > 2, "dense retrieval adds passages beyond the lexical ones"
        assert passages[0].score >= passages[1].score > 0
        dense_ids = {chunk_id for chunk_id, _ in nearest[question_id]}
        assert all(dense_ids.intersection(p.chunk_ids) for p in passages[2:])


def test_dense_search_equals_brute_force(tiny_warehouse, embedder) -> None:
    embed_table_missing(tiny_warehouse, embedder, log=lambda _: None)
    dense = DenseIndex(tiny_warehouse, embedder.key)
    query = embedder.encode(["Which islands are in the Caribbean Sea?"])
    scores = dense.matrix @ query[0]
    best = [dense.chunk_ids[i] for i in (-scores).argsort(kind="stable")[:5]]
    assert [chunk_id for chunk_id, _ in dense.search(query, 5)[0]] == best
