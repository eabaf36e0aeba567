"""The whole pipeline on a tiny corpus, run in-process with Dagster's ``materialize``: shared by
the answering and caching tests."""

import shutil
from pathlib import Path
from typing import Any

import duckdb
from dagster import DagsterInstance, RunConfig, materialize

from assets.answering import (
    BlendConfig,
    CascadeConfig,
    DistilledReaderConfig,
    ScorecardConfig,
    SubmissionConfig,
    TeacherLogitsConfig,
    TrainReaderConfig,
    answering_assets,
    answering_checks,
)
from assets.corpus import ChunkConfig, DumpConfig, dump_files, wiki_articles, wiki_chunks
from assets.questions import QuestionsConfig, questions
from assets.rankings import ranking_edit_distance, ranking_es, ranking_semantic
from assets.retrieval import candidate_passages, chunk_embeddings, lexical_index
from pipeline.tables import table_versions
from resources import (
    ContextBudget,
    LexicalSearch,
    ModelStore,
    ReaderSettings,
    SentenceEmbedders,
    Teacher,
    VectorSearch,
    Warehouse,
)
from tests.conftest import FIXTURES

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ANSWERING, ANSWERING_CHECKS = answering_assets, answering_checks
ASSETS = [dump_files, wiki_articles, wiki_chunks, questions, lexical_index, chunk_embeddings,
          candidate_passages, ranking_es, ranking_edit_distance, ranking_semantic, *ANSWERING]
SOURCES = {f"{reader}@{ranking}" for reader in ("lexical", "similarity", "multiple_choice")
           for ranking in ("es", "edit_distance", "semantic")}
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the heavy reader of the tests: small and real
VALIDATION = FIXTURES / "answering" / "validation.csv"
TEST = FIXTURES / "retrieval" / "test.csv"
TEACHER_BUDGET = 6  # of the 22 train questions
SCORECARD_TEACHER_QUESTIONS = 3  # of the 5 validation questions
UPSTREAM_OF_CHUNKS = {"dump_files", "wiki_articles", "questions"}


class Pipeline:
    """A dump folder, a warehouse and a Dagster instance that persist across runs."""

    def __init__(self, root: Path, instance: DagsterInstance, dump: Path | None = None) -> None:
        """A pipeline in ``root``, reading the fixture dump copied into it, or ``dump``."""
        self.root, self.instance = root, instance
        self.dump = dump or root / "dump"
        if dump is None:
            self.dump.mkdir()
            for shard in ("tiny-00000.json.gz", "tiny-00001.json.bz2"):
                shutil.copy(FIXTURES / shard, self.dump)
        self.database = root / "warehouse.duckdb"
        self.submission = root / "out" / "submission.csv"
        self.similarity_model = MINILM

    def resources(self) -> dict[str, Any]:
        return {"warehouse": Warehouse(database=str(self.database)),
                "lexical_search": LexicalSearch(path=str(self.root / "index")),
                "vector_search": VectorSearch(),
                "models": ModelStore(store=str(self.root / "models")),
                "context_budget": ContextBudget(tokens=128),
                "embedders": SentenceEmbedders(option_model=MINILM),
                "readers": ReaderSettings(similarity_model=self.similarity_model),
                "teacher": Teacher(model=SMOLLM, context_tokens=48)}

    def run(self, max_chars: int = 512, validation: Path | None = None,
            test: Path | None = None, train_device: str = "auto",
            blend_exclude: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        """Materialise every asset; the metadata of each, by asset name."""
        result = materialize(
            [*ASSETS, *ANSWERING_CHECKS], instance=self.instance, resources=self.resources(),
            run_config=RunConfig({
                "dump_files": DumpConfig(location=str(self.dump)),
                "wiki_chunks": ChunkConfig(max_chars=max_chars),
                "questions": QuestionsConfig(
                    test_path=str(test or TEST),
                    validation_path=str(validation or VALIDATION),
                    validation_split=False,
                    train_paths=[str(FIXTURES / "answering" / "pool.csv")],
                    blend_size=14, train_size=None),
                "trained_reader": TrainReaderConfig(max_steps=3, batch_size=4, max_length=128,
                                                    device=train_device),
                "teacher_logits": TeacherLogitsConfig(max_questions=TEACHER_BUDGET),
                "distilled_reader": DistilledReaderConfig(
                    max_steps=3, batch_size=4, max_length=128, device=train_device,
                    gold_weights=[0.5], temperatures=[2.0]),
                "distillation_scorecard": ScorecardConfig(
                    teacher_questions=SCORECARD_TEACHER_QUESTIONS),
                "blend_weights": BlendConfig(exclude=list(blend_exclude)),
                "cascade": CascadeConfig(model=SMOLLM, share=0.5, context_tokens=64),
                "submission": SubmissionConfig(path=str(self.submission))}))
        self.checks = result.get_asset_check_evaluations()
        return {asset.key.path[-1]: {
            k: v.value for k, v in
            result.asset_materializations_for_node(asset.key.path[-1])[0].metadata.items()}
            for asset in ASSETS}

    def table_versions(self) -> dict[str, str]:
        """Every warehouse table's content version: compared around a run, what it wrote."""
        with duckdb.connect(str(self.database), read_only=True) as db:
            return table_versions(db)

    def query(self, sql: str, read_only: bool = True) -> list[tuple]:
        with duckdb.connect(str(self.database), read_only=read_only) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []


