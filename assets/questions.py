"""The questions asset: test questions to answer, labelled validation questions to score on, and
labelled blend and train questions to learn from (see :mod:`pipeline.training_data`)."""

import hashlib
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets.incremental import Work, code_version, run_step
from pipeline.paths import QUESTIONS
from pipeline.question_table import VERSION_COLUMNS, write_questions
from pipeline.questions import Question, QuestionFileError, read_questions, split_questions
from pipeline.tables import content_version, markdown_preview
from pipeline.training_data import read_pool
from resources import Warehouse

CODE_VERSION = code_version(__name__)


class QuestionsConfig(Config):
    test_path: str = Field(
        default=str(QUESTIONS / "extra_500.csv"),
        description="CSV of questions to answer (id,prompt,A..E; an answer column is allowed "
        "and then scored too). Point it at the competition's test.csv to make a submission.")
    test_allow_empty_options: bool = Field(
        default=True, description="Accept an empty option cell in the test file. On by default "
        "because the default test set (extra_500) has one; validation is always strict.")
    test_limit: int | None = Field(
        default=None, description="Answer only the first N test questions (the sample run "
        "answers 200 of extra_500); null answers the whole file.")
    validation_path: str = Field(
        default=str(QUESTIONS / "stem_1k.csv"),
        description="CSV of labelled questions to score on; never used for training.")
    validation_split: bool = Field(
        default=True, description="Keep only the validation side of the fixed stem_1k split "
        "(the train side is for training); false takes the whole file.")
    train_paths: list[str] = Field(
        default_factory=lambda: [str(QUESTIONS / "stem_1k.csv")],
        description="Labelled CSVs to learn from, cleaned (bad rows, duplicates and any test or "
        "validation question dropped and reported); of stem_1k only the train side is used. "
        "By default only the set whose source pages the sample corpus holds: a question whose "
        "context cannot hold its answer teaches a reader and the blend noise. With full "
        "Wikipedia, add extra_500.csv and generated_6k.csv.")
    blend_size: int = Field(
        default=150, description="Pooled questions held out from training, on which the "
        "blend of the readers is fitted.")
    train_size: int | None = Field(
        default=300, description="Pooled questions the multiple-choice reader is fine-tuned "
        "on (null: all the rest). Each is retrieved for like any question, so it costs time.")
    limit: int | None = Field(
        default=None, description="At most this many questions of each role, in file order "
        "(for quick runs).")


def _read(path: str, allow_empty_options: bool = False) -> list[Question]:
    try:
        return read_questions(path, allow_empty_options=allow_empty_options)
    except (QuestionFileError, OSError) as exc:
        raise Failure(f"cannot read questions: {exc}") from exc


def _file_contents(config: QuestionsConfig) -> dict[str, Any]:
    """The sha256 of every question file the config names: a file replaced at the same path
    (how Kaggle hands out its test set) must be read again. They are small; hashing them costs
    milliseconds."""
    paths = [config.test_path, config.validation_path, *config.train_paths]
    return {"files": {path: hashlib.sha256(Path(path).read_bytes()).hexdigest()
                      if Path(path).is_file() else None for path in paths}}


def _limited(size: int | None, limit: int | None) -> int | None:
    if limit is None:
        return size
    return limit if size is None else min(size, limit)


@asset(group_name="questions", compute_kind="duckdb", code_version=CODE_VERSION)
def questions(context: AssetExecutionContext, config: QuestionsConfig,
              warehouse: Warehouse) -> MaterializeResult:
    """Test questions to answer and labelled validation questions, validated row by row."""
    with warehouse.get_connection() as db:

        def compute() -> Work:
            test = _read(config.test_path, config.test_allow_empty_options)
            validation = _read(config.validation_path)
            if config.validation_split:
                validation = split_questions(validation)["validation"]
            # The whole test file stays out of training, answered or not (test_limit).
            held_out = [*test, *validation]
            answered = test[: _limited(config.test_limit, config.limit)]
            if len(answered) < len(test):
                context.log.warning(
                    f"answering {len(answered)} of the {len(test)} questions of "
                    f"{config.test_path} (test_limit {config.test_limit}, limit {config.limit}):"
                    " a submission needs every one; set test_limit: null")
            left_out, test = len(test) - len(answered), answered
            validation = validation[: config.limit]
            try:
                pool = read_pool(config.train_paths, held_out,
                                 blend_size=_limited(config.blend_size, config.limit),
                                 train_size=_limited(config.train_size, config.limit))
            except (QuestionFileError, OSError) as exc:
                raise Failure(f"cannot read training questions: {exc}") from exc
            write_questions(db, [("test", test), ("validation", validation),
                                 ("blend", pool.blend), ("train", pool.train)])
            context.log.info(f"{len(test)} test, {len(validation)} validation, "
                             f"{len(pool.blend)} blend and {len(pool.train)} train questions; "
                             f"cleaning dropped {dict(pool.dropped)}")
            return Work(content_version(db, "questions", VERSION_COLUMNS), {
                "test_path": config.test_path, "validation_path": config.validation_path,
                "test_questions_left_out": left_out,
                "pool_questions_read": pool.read,
                "pool_dropped": MetadataValue.json(dict(pool.dropped)),
                "pool_dropped_examples": MetadataValue.json(pool.examples)})

        def describe() -> dict[str, Any]:
            counts = dict(db.execute(
                "SELECT role, count(*) FROM questions GROUP BY role").fetchall())
            by_set = db.execute(
                "SELECT role, source, count(*), count(gold_title) FROM questions "
                "GROUP BY role, source ORDER BY role, source").fetchall()
            table = ["| role | question set | questions | with a recorded source passage |",
                     "|---|---|---|---|"] + [f"| {r} | {s} | {n} | {g} |" for r, s, n, g in by_set]
            return {
                "dagster/row_count": sum(counts.values()),
                "test_questions": counts.get("test", 0),
                "validation_questions": counts.get("validation", 0),
                "blend_questions": counts.get("blend", 0),
                "train_questions": counts.get("train", 0),
                "questions_by_role_and_set": MetadataValue.md("\n".join(table)),
                "preview": MetadataValue.md(markdown_preview(
                    db, "SELECT role, id, prompt, A, answer FROM questions ORDER BY role, row "
                        "LIMIT 5")),
            }

        return run_step(context, db, config, compute, describe, lambda: _file_contents(config),
                        stored=lambda: content_version(db, "questions", VERSION_COLUMNS))
