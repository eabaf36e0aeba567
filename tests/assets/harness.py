"""The one small pipeline of the asset tests: the fixture dump and questions with small real
models, run in-process with Dagster's ``materialize`` (the retrieval stages alone, or every
asset), or as the run config of ``dagster job execute`` (:meth:`Pipeline.job_config`)."""

import shutil
from pathlib import Path
from typing import Any

import duckdb
from dagster import AssetsDefinition, DagsterInstance, materialize

from assets.answering import answering_assets, answering_checks
from assets.corpus import dump_files, wiki_articles, wiki_chunks
from assets.questions import questions
from assets.rankings import RANKINGS as RANKING_ASSETS
from assets.rankings import ranking_edit_distance, ranking_search, ranking_semantic, rankings_checks
from assets.retrieval import candidate_passages, chunk_embeddings, lexical_index, retrieval_checks
from pipeline.tables import table_versions
from resources import (
    ContextBudget,
    HeavyReader,
    LexicalSearch,
    ModelStore,
    ReaderSettings,
    SentenceEmbedders,
    VectorSearch,
    Warehouse,
)
from tests.conftest import FIXTURES

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the heavy reader of the tests: small and real
SHARDS = ("tiny-00000.json.gz", "tiny-00001.json.bz2")
RETRIEVAL = [dump_files, wiki_articles, wiki_chunks, questions, lexical_index, chunk_embeddings,
             candidate_passages, ranking_search, ranking_edit_distance, ranking_semantic]
ASSETS = [*RETRIEVAL, *answering_assets]
RANKINGS = tuple(RANKING_ASSETS)  # the rankings' names, as the assets define them
SOURCES = {f"{reader}@{ranking}" for reader in ("lexical", "similarity", "multiple_choice")
           for ranking in RANKINGS}
TEST = FIXTURES / "retrieval" / "test.csv"
VALIDATION = FIXTURES / "answering" / "validation.csv"
POOL = FIXTURES / "answering" / "pool.csv"
TEACHER_BUDGET = 6  # of the 22 train questions
SCORECARD_TEACHER_QUESTIONS = 3  # of the 5 validation questions
UPSTREAM_OF_CHUNKS = {"dump_files", "wiki_articles", "questions"}


class Pipeline:
    """A dump folder, a warehouse and a Dagster instance that persist across runs.

    ``assets``: :data:`ASSETS` (the default) or :data:`RETRIEVAL`, the stages up to the
    rankings, with their checks. ``shards``: the fixture shards copied into the dump folder, or
    ``dump``, a folder to read instead. ``train_paths``: the training pool (none for
    retrieval alone)."""

    def __init__(self, root: Path, instance: DagsterInstance, dump: Path | None = None, *,
                 assets: list[AssetsDefinition] = ASSETS, shards: tuple[str, ...] = SHARDS,
                 validation: Path = VALIDATION, train_paths: tuple[Path, ...] = (POOL,)) -> None:
        self.root, self.instance, self.assets = root, instance, assets
        self.validation, self.train_paths = validation, train_paths
        self.dump = dump or root / "dump"
        if dump is None:
            self.dump.mkdir()
            for shard in shards:
                shutil.copy(FIXTURES / shard, self.dump)
        self.database = root / "warehouse.duckdb"
        self.index = root / "index"
        self.submission = root / "out" / "submission.csv"
        self.similarity_model = MINILM
        self.vector_search = VectorSearch()

    def resources(self, tokens: int = 128) -> dict[str, Any]:
        return {"warehouse": Warehouse(database=str(self.database)),
                "lexical_search": LexicalSearch(path=str(self.index)),
                "vector_search": self.vector_search,
                "models": ModelStore(store=str(self.root / "models")),
                "context_budget": ContextBudget(tokens=tokens),
                # MiniLM on both sides keeps the tests fast; MPNet is the recipe's.
                "embedders": SentenceEmbedders(option_model=MINILM),
                "readers": ReaderSettings(similarity_model=self.similarity_model),
                "heavy_reader": HeavyReader(model=SMOLLM, context_tokens=48)}

    def ops_config(self, max_chars: int = 512, validation: Path | None = None,
                   test: Path | None = None, train_device: str = "auto",
                   blend_exclude: tuple[str, ...] = (), whole_corpus: bool = True,
                   dense_k: int = 10, teacher_budget: int | None = TEACHER_BUDGET
                   ) -> dict[str, Any]:
        """Each selected asset's run config (``ops:``), as a YAML file would hold it."""
        training = {"max_steps": 3, "batch_size": 4, "max_length": 128, "device": train_device}
        ops = {
            "dump_files": {"location": str(self.dump)},
            "wiki_chunks": {"max_chars": max_chars},
            "chunk_embeddings": {"whole_corpus": whole_corpus},
            "candidate_passages": {"dense_k": dense_k},
            "questions": {"test_path": str(test or TEST),
                          "validation_path": str(validation or self.validation),
                          "validation_split": False, "test_limit": None,
                          "train_paths": [str(path) for path in self.train_paths],
                          "blend_size": 14, "train_size": None},
            "trained_reader": training,
            "teacher_logits": {"max_questions": teacher_budget},
            "student_reader": {**training, "gold_weights": [0.5], "temperatures": [2.0]},
            "distillation_scorecard": {"teacher_questions": SCORECARD_TEACHER_QUESTIONS},
            "blend_weights": {"exclude": list(blend_exclude)},
            "cascade": {"share": 0.5},
            "submission": {"path": str(self.submission)}}
        names = {key.path[-1] for asset in self.assets for key in asset.keys}
        return {name: {"config": config} for name, config in ops.items() if name in names}

    def job_config(self, **options: Any) -> dict[str, Any]:
        """The run config of ``answer_job`` in a working area of its own (``dagster job
        execute``): the ops' config and the resources' settings that differ from the job's."""
        ops = self.ops_config(**options)
        del ops["submission"]  # the working area's own
        return {"ops": ops, "resources": {
            "context_budget": {"config": {"tokens": 128}},
            "embedders": {"config": {"option_model": MINILM}},
            "heavy_reader": {"config": {"model": SMOLLM, "context_tokens": 48}}}}

    def run(self, tokens: int = 128, **options: Any) -> dict[str, dict[str, Any]]:
        """Materialise the selected assets and their checks (``options``: those of
        :meth:`ops_config`); the metadata of each asset, by name."""
        checks = (answering_checks if self.assets is ASSETS
                  else [*retrieval_checks, *rankings_checks])
        result = materialize([*self.assets, *checks], instance=self.instance,
                             resources=self.resources(tokens),
                             run_config={"ops": self.ops_config(**options)})
        self.checks = result.get_asset_check_evaluations()
        return {asset.key.path[-1]: {
            k: v.value for k, v in
            result.asset_materializations_for_node(asset.key.path[-1])[0].metadata.items()}
            for asset in self.assets}

    def table_versions(self) -> dict[str, str]:
        """Every warehouse table's content version: compared around a run, what it wrote."""
        with duckdb.connect(str(self.database), read_only=True) as db:
            return table_versions(db)

    def query(self, sql: str, read_only: bool = True) -> list[tuple]:
        with duckdb.connect(str(self.database), read_only=read_only) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def distinct_chunk_texts(self) -> int:
        return self.query("SELECT count(DISTINCT content_hash) FROM wiki_chunks")[0][0]

    def contexts(self, ranking: str) -> dict[str, tuple[str, list[str], int]]:
        rows = self.query("SELECT question_id, context, titles, tokens FROM packed_contexts "
                          f"WHERE ranking = '{ranking}'")
        return {qid: (context, titles, tokens) for qid, context, titles, tokens in rows}


def run_once(pipeline: Pipeline) -> Pipeline:
    """Run ``pipeline`` once and keep what that first run reported (``first``: materialisation
    metadata, ``first_checks``: check evaluations) for a module's tests to read."""
    pipeline.first = pipeline.run()
    pipeline.first_checks = pipeline.checks
    return pipeline
