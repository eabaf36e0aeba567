"""Retrieval assets on a tiny corpus: index, candidates, rankings and what re-runs recompute."""

import shutil
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, Failure

from assets.rankings import rankings_checks
from assets.retrieval import retrieval_checks
from pipeline.retrieval.embeddings import Embedder
from resources import VectorSearch
from tests.assets.counted_work import Counted
from tests.assets.harness import RANKINGS, RETRIEVAL, Pipeline, run_once
from tests.conftest import FIXTURES
from tests.elasticsearch_server import ElasticsearchTarget


def retrieval_pipeline(root: Path, instance: DagsterInstance) -> Pipeline:
    """The stages up to the rankings on one fixture shard, with questions whose source
    passages it holds."""
    return Pipeline(root, instance, assets=RETRIEVAL, shards=("tiny-00000.json.gz",),
                    validation=FIXTURES / "retrieval" / "validation.csv", train_paths=())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    with DagsterInstance.ephemeral() as instance:
        yield run_once(retrieval_pipeline(tmp_path_factory.mktemp("retrieval"), instance))


def test_each_question_gets_its_source_article_in_context(pipeline: Pipeline) -> None:
    chunks = pipeline.first["wiki_chunks"]["dagster/row_count"]
    assert pipeline.first["lexical_index"]["chunks_indexed"] == chunks
    assert pipeline.first["chunk_embeddings"]["chunks_embedded"] == pipeline.distinct_chunk_texts()
    assert len(pipeline.first_checks) == len(retrieval_checks) + len(rankings_checks)
    assert all(check.passed for check in pipeline.first_checks)
    semantic = pipeline.first["ranking_semantic"]
    assert semantic["prompt_model_requested"] == "sentence-transformers/msmarco-bert-base-dot-v5"
    assert semantic["prompt_model_fallback"] == "yes", "msmarco is not to be had here"
    for ranking in RANKINGS:
        contexts = pipeline.contexts(ranking)
        assert contexts["t1"][1][0] == "ABC islands"
        assert contexts["t2"][1][0] == "Aaron Copland"
        assert "Dean of American Music" in contexts["t2"][0]
        assert contexts["v1"][1][0] == "Abiogenesis"
        assert all(0 < tokens <= 128 for _, _, tokens in contexts.values())


def test_rerun_does_nothing_and_a_new_budget_repacks_only_the_rankings(
        pipeline: Pipeline, work: Counted) -> None:
    tables = pipeline.table_versions()
    pipeline.run()
    assert sum(work.take().values()) == 0
    assert pipeline.table_versions() == tables
    pipeline.run(tokens=64)
    counts = work.take()
    questions = pipeline.query("SELECT count(*) FROM questions")[0][0]
    assert counts["ranked"] == len(RANKINGS) * questions
    assert (counts["retrieved"], counts["indexed"]) == (0, 0)
    changed = {name for name, version in pipeline.table_versions().items()
               if tables.get(name) != version}
    assert "packed_contexts" in changed and "candidate_passages" not in changed
    assert all(tokens <= 64 for _, _, tokens in pipeline.contexts("search").values())


def test_a_deleted_index_is_rebuilt_although_nothing_upstream_changed(
        pipeline: Pipeline, work: Counted) -> None:
    shutil.rmtree(pipeline.index)
    rebuilt = pipeline.run()
    assert work.take()["indexed"] == pipeline.first["wiki_chunks"]["dagster/row_count"]
    assert rebuilt["lexical_index"]["rebuilt"] is True
    assert pipeline.contexts("search")["t1"][1][0] == "ABC islands"


def test_a_new_shard_indexes_and_embeds_only_its_chunks(pipeline: Pipeline) -> None:
    before = pipeline.run()
    texts_before = pipeline.distinct_chunk_texts()
    shutil.copy(FIXTURES / "tiny-00001.json.bz2", pipeline.dump)
    after = pipeline.run()
    added = after["wiki_chunks"]["dagster/row_count"] - before["wiki_chunks"]["dagster/row_count"]
    assert added > 0
    # Vectors are per distinct text: a new chunk whose text is already known is not embedded.
    assert after["chunk_embeddings"]["chunks_embedded"] == (
        pipeline.distinct_chunk_texts() - texts_before) > 0
    assert after["chunk_embeddings"]["chunks_already_embedded"] == texts_before
    # More than half the chunks are new: building a fresh index beats updating in place.
    assert after["lexical_index"]["rebuilt"] is True
    assert after["lexical_index"]["chunks_indexed"] == after["wiki_chunks"]["dagster/row_count"]


def test_the_large_corpus_configuration_embeds_only_candidates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With chunk_embeddings.whole_corpus off and no dense retrieval, the only chunks ever
    embedded are candidates of some question (counted at the embedder)."""
    embedded: list[str] = []
    original = Embedder.encode

    def counted(self, texts):
        embedded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(Embedder, "encode", counted)
    with DagsterInstance.ephemeral() as instance:
        built = retrieval_pipeline(tmp_path, instance)
        first = built.run(whole_corpus=False, dense_k=0)
        chunks = {text for (text,) in built.query("SELECT text FROM wiki_chunks")}
        candidates = {text for (text,) in built.query("SELECT text FROM candidate_passages")}
    assert first["chunk_embeddings"]["chunks_embedded"] == 0
    embedded_chunks = set(embedded) & chunks
    assert embedded_chunks, "the semantic ranking embedded no candidate"
    assert embedded_chunks <= candidates, "a chunk that is no candidate was embedded"
    assert len(embedded_chunks) < len(chunks), "the whole corpus was embedded"
    assert all(check.passed for check in built.checks)


def test_dense_retrieval_over_a_partly_embedded_corpus_fails_clearly(tmp_path: Path) -> None:
    with DagsterInstance.ephemeral() as instance:
        built = retrieval_pipeline(tmp_path, instance)
        with pytest.raises(Failure, match=r"chunk_embeddings\.whole_corpus: true, or dense_k: 0"):
            built.run(whole_corpus=False, dense_k=10)


def test_dense_retrieval_on_an_elasticsearch_knn_index_finds_the_exact_search_candidates(
        tmp_path: Path, elasticsearch: ElasticsearchTarget, work: Counted) -> None:
    """The same run with the vectors in the warehouse and in a cluster's kNN index: every
    chunk's vector is written there, and the questions get the same candidates."""
    prefix = f"test-vectors-{uuid.uuid4().hex[:8]}"
    candidates = {}
    with DagsterInstance.ephemeral() as instance:
        for backend in ("duckdb", "elasticsearch"):
            (tmp_path / backend).mkdir()
            built = retrieval_pipeline(tmp_path / backend, instance)
            built.vector_search = VectorSearch(backend=backend, url=elasticsearch.url,
                                               index_prefix=prefix, **elasticsearch.options)
            first = built.run()
            candidates[backend] = built.query(
                "SELECT role, question_id, passage_id FROM candidate_passages ORDER BY ALL")
        chunks = first["wiki_chunks"]["dagster/row_count"]
        assert first["chunk_embeddings"]["vectors_written"] == chunks
        assert first["chunk_embeddings"]["vectors_held"] == chunks
        assert work.take()["vectors_written"] == chunks  # counted where they are written
        built.run()
        assert sum(work.take().values()) == 0
    with built.vector_search.elasticsearch("") as index:  # its client, to clean up
        index.client.indices.delete(index=first["chunk_embeddings"]["vector_index"])
    assert candidates["elasticsearch"] == candidates["duckdb"]
