"""The two-stage semantic ranking with a real embedder."""

from pathlib import Path

import duckdb

from pipeline.models import resolve
from pipeline.questions.formats import read_questions
from pipeline.questions.question import Question
from pipeline.rankings.semantic import VectorCache, rank_all
from pipeline.retrieval.candidates import find_candidates, read_candidates
from pipeline.retrieval.embeddings import Embedder
from pipeline.retrieval.search.embedded import TantivyIndex
from pipeline.retrieval.search.sync import sync_index
from tests.conftest import FIXTURES


def _candidates_and_embedder(db: duckdb.DuckDBPyConnection, tmp_path: Path,
                             asked: list[tuple[str, Question]]) -> tuple[dict, Embedder]:
    """The asked questions' lexical candidates over the tiny corpus, and a real embedder."""
    with TantivyIndex(tmp_path / "index") as index:
        sync_index(db, index)
        find_candidates(db, index.search_many, asked, hits_per_query=10, max_passages=8,
                        max_chunks_per_passage=1)
    embedder = Embedder(resolve("sentence-transformers/all-MiniLM-L6-v2", log=lambda _: None))
    return read_candidates(db), embedder


def test_semantic_ranking_puts_the_source_first_and_embeds_each_text_once(
        tiny_warehouse: duckdb.DuckDBPyConnection, tmp_path) -> None:
    asked = [("test", q) for q in read_questions(FIXTURES / "retrieval" / "test.csv")]
    candidates, embedder = _candidates_and_embedder(tiny_warehouse, tmp_path, asked)
    prompt = VectorCache(tiny_warehouse, embedder, lambda _: None)
    option = VectorCache(tiny_warehouse, embedder, lambda _: None)
    ranked = rank_all(asked, candidates, prompt, option, rerank_top=3)

    assert ranked[("test", "t1")][0].passage.title == "ABC islands"
    assert ranked[("test", "t2")][0].passage.title == "Aaron Copland"
    for key, order in ranked.items():
        assert sorted(r.passage.passage_id for r in order) == sorted(
            p.passage_id for p in candidates[key]), "a ranking reorders, never drops"
        scores = [r.score for r in order]
        assert scores == sorted(scores, reverse=True)
    assert prompt.computed > 0

    again = VectorCache(tiny_warehouse, embedder, lambda _: None)
    rank_all(asked, candidates, again, again, rerank_top=3)
    assert again.computed == 0, "every chunk and question text came from the cache"


def test_questions_of_three_four_and_five_options_are_ranked_with_their_own_options(
        tiny_warehouse: duckdb.DuckDBPyConnection, tmp_path) -> None:
    """Ranked together, each question of a ragged set gets the scores it gets ranked alone:
    its own options' vectors, never a neighbour's (nor none, which would give NaN)."""
    asked = [("test", q) for q in read_questions(FIXTURES / "answering" / "mixed_options.jsonl")]
    asked += [("test", q) for q in read_questions(FIXTURES / "retrieval" / "test.csv")]
    assert [len(q.options) for _, q in asked] == [3, 4, 5, 5, 5]
    candidates, embedder = _candidates_and_embedder(tiny_warehouse, tmp_path, asked)
    cache = VectorCache(tiny_warehouse, embedder, lambda _: None)
    together = rank_all(asked, candidates, cache, cache, rerank_top=3)
    for item in asked:
        alone = rank_all([item], candidates, cache, cache, rerank_top=3)
        key = (item[0], item[1].id)
        assert [(r.passage.passage_id, round(r.score, 6)) for r in together[key]] == [
            (r.passage.passage_id, round(r.score, 6)) for r in alone[key]], key
