"""The whole pipeline on a tiny corpus: readers, blend, submission, score, caching and lineage."""

import csv
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import DagsterInstance, Definitions, RunConfig, materialize

from assets.answering import SubmissionConfig, TrainReaderConfig, answering_assets
from assets.corpus import ChunkConfig, DumpConfig, dump_files, wiki_articles, wiki_chunks
from assets.lineage import lineage
from assets.questions import QuestionsConfig, questions
from assets.retrieval import (
    candidate_passages,
    chunk_embeddings,
    lexical_index,
    ranking_edit_distance,
    ranking_es,
    ranking_semantic,
)
from resources import (
    ContextBudget,
    LexicalSearch,
    ModelStore,
    ReaderSettings,
    SentenceEmbedders,
    Warehouse,
)
from tests.conftest import FIXTURES

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ANSWERING, ANSWERING_CHECKS = answering_assets(["semantic"])
ASSETS = [dump_files, wiki_articles, wiki_chunks, questions, lexical_index, chunk_embeddings,
          candidate_passages, ranking_es, ranking_edit_distance, ranking_semantic, *ANSWERING]
SOURCES = {f"{reader}@{ranking}" for reader in ("lexical", "similarity", "multiple_choice")
           for ranking in ("es", "edit_distance", "semantic")} | {"causal_lm@semantic"}
UPSTREAM_OF_CHUNKS = {"dump_files", "wiki_articles", "questions"}


class Pipeline:
    def __init__(self, root: Path, instance: DagsterInstance) -> None:
        self.root, self.instance = root, instance
        self.dump = root / "dump"
        self.dump.mkdir()
        for shard in ("tiny-00000.json.gz", "tiny-00001.json.bz2"):
            shutil.copy(FIXTURES / shard, self.dump)
        self.database = root / "warehouse.duckdb"
        self.submission = root / "out" / "submission.csv"

    def resources(self) -> dict[str, Any]:
        return {"warehouse": Warehouse(database=str(self.database)),
                "lexical_search": LexicalSearch(path=str(self.root / "index")),
                "models": ModelStore(store=str(self.root / "models")),
                "context_budget": ContextBudget(tokens=128),
                "embedders": SentenceEmbedders(option_model=MINILM),
                "readers": ReaderSettings(causal_lm_permutations=2,
                                          causal_lm_context_tokens=96)}

    def run(self, max_chars: int = 512) -> dict[str, dict[str, Any]]:
        result = materialize(
            [*ASSETS, *ANSWERING_CHECKS], instance=self.instance, resources=self.resources(),
            run_config=RunConfig({
                "dump_files": DumpConfig(location=str(self.dump)),
                "wiki_chunks": ChunkConfig(max_chars=max_chars),
                "questions": QuestionsConfig(
                    test_path=str(FIXTURES / "retrieval" / "test.csv"),
                    validation_path=str(FIXTURES / "answering" / "validation.csv"),
                    validation_split=False,
                    train_paths=[str(FIXTURES / "answering" / "pool.csv")],
                    blend_size=14, train_size=None),
                "trained_reader": TrainReaderConfig(max_steps=3, batch_size=4, max_length=128),
                "submission": SubmissionConfig(path=str(self.submission))}))
        self.checks = result.get_asset_check_evaluations()
        return {asset.key.path[-1]: {
            k: v.value for k, v in
            result.asset_materializations_for_node(asset.key.path[-1])[0].metadata.items()}
            for asset in ASSETS}

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.database), read_only=True) as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    with DagsterInstance.ephemeral() as instance:
        built = Pipeline(tmp_path_factory.mktemp("answering"), instance)
        built.first = built.run()
        built.first_checks = built.checks
        yield built


def test_training_pool_is_cleaned_and_kept_apart(pipeline: Pipeline) -> None:
    meta = pipeline.first["questions"]
    assert meta["validation_questions"] == 5 and meta["test_questions"] == 2
    assert meta["pool_dropped"] == {"empty option B": 1, "duplicate question": 1,
                                    "a test or validation question": 1}
    assert meta["blend_questions"] == 14 and meta["train_questions"] == 36 - 14
    roles = dict(pipeline.query("SELECT role, count(*) FROM questions GROUP BY role"))
    assert roles == {"test": 2, "validation": 5, "blend": 14, "train": 22}
    overlap = pipeline.query("SELECT count(*) FROM questions a JOIN questions b "
                             "ON a.prompt = b.prompt AND a.role = 'train' AND b.role <> 'train'")
    assert overlap == [(0,)]


def test_every_source_scores_every_scored_question(pipeline: Pipeline) -> None:
    rows = pipeline.query("SELECT reader || '@' || ranking, role, count(*) FROM reader_logits "
                          "GROUP BY ALL")
    counts = {(source, role): n for source, role, n in rows}
    assert {source for source, _ in counts} == SOURCES
    for source in SOURCES:
        assert counts[(source, "test")] == 2
        assert counts[(source, "validation")] == 5
        assert counts[(source, "blend")] == 14
        assert (source, "train") not in counts, "train questions are never scored"
    trained = pipeline.first["trained_reader"]
    assert trained["steps"] == 3 and trained["train_questions"] == 22
    assert len(trained["loss_curve"]) == 3


def test_submission_has_three_distinct_letters_per_test_question(pipeline: Pipeline) -> None:
    with open(pipeline.submission, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "prediction"]
    assert [r[0] for r in rows[1:]] == ["t1", "t2"]
    for _, prediction in rows[1:]:
        letters = prediction.split(" ")
        assert len(letters) == 3 and len(set(letters)) == 3 and set(letters) <= set("ABCDE")


def test_score_reports_the_blend_and_every_source_with_intervals(pipeline: Pipeline) -> None:
    score = pipeline.first["score"]
    assert score["validation_questions"] == 5
    assert 0 <= score["map_at_3_low"] <= score["map_at_3"] <= score["map_at_3_high"] <= 1
    assert set(score["map_at_3_by_source"]) == SOURCES | {"blend"}
    assert set(score["gold_ranks"]) == {r[0] for r in pipeline.query(
        "SELECT id FROM questions WHERE role = 'validation'")}
    # The validation questions were written from passages of the tiny corpus; the lexical
    # reader on the semantic contexts beats the 0.37 that a random order scores on average.
    assert score["map_at_3_by_source"]["lexical@semantic"] >= 0.5
    blend = pipeline.first["blend_weights"]
    assert blend["method"] in ("weights", "ranker", "equal")
    assert {"validation_map_at_3_equal", "validation_map_at_3_weights"} <= set(blend)
    assert all(check.passed for check in pipeline.first_checks)


def test_rerun_does_nothing_then_a_chunk_size_change_is_traced_by_lineage(
        pipeline: Pipeline) -> None:
    again = pipeline.run()
    recomputed = [name for name, meta in again.items()
                  if name != "dump_files" and meta["up_to_date"] is not True]
    assert recomputed == [], f"a no-change re-run recomputed {recomputed}"
    assert again["score"]["map_at_3"] == pipeline.first["score"]["map_at_3"]
    definitions = Definitions(assets=ASSETS, resources=pipeline.resources())
    unchanged = lineage(pipeline.instance, definitions)
    assert unchanged.changed == [] and unchanged.score.left_top3 == []

    changed = pipeline.run(max_chars=300)
    report = lineage(pipeline.instance, definitions)
    named = {c.asset: c.what for c in report.changed}
    assert "config" in " ".join(named["wiki_chunks"])
    assert not UPSTREAM_OF_CHUNKS & set(named), "assets upstream of the change are not named"
    recomputed = {name for name, meta in changed.items()
                  if name != "dump_files" and meta["up_to_date"] is not True}
    downstream = recomputed - {"wiki_chunks", "score", "submission"}
    assert downstream <= set(named), f"changed but not named: {downstream - set(named)}"
    assert {"lexical_index", "chunk_embeddings", "candidate_passages", "ranking_semantic",
            "trained_reader", "logits_lexical_semantic", "blend_weights"} <= set(named)
    lines = "\n".join(report.lines())
    assert "MAP@3 (before -> after)" in lines and "lexical@semantic" in lines
