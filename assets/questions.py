"""The questions asset: the test questions to answer and the labelled validation questions."""

from typing import Any

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets.incremental import Work, run_step
from pipeline.paths import QUESTIONS
from pipeline.question_table import VERSION_COLUMNS, write_questions
from pipeline.questions import Question, QuestionFileError, read_questions, split_questions
from pipeline.tables import content_version, markdown_preview
from resources import Warehouse


class QuestionsConfig(Config):
    test_path: str = Field(
        default=str(QUESTIONS / "extra_500.csv"),
        description="CSV of questions to answer (id,prompt,A..E; an answer column is allowed "
        "and then scored too). Point it at the competition's test.csv to make a submission.")
    test_allow_empty_options: bool = Field(
        default=True, description="Accept an empty option cell in the test file. On by default "
        "because the default test set (extra_500) has one; validation is always strict.")
    validation_path: str = Field(
        default=str(QUESTIONS / "stem_1k.csv"),
        description="CSV of labelled questions to score on; never used for training.")
    validation_split: bool = Field(
        default=True, description="Keep only the validation side of the fixed stem_1k split "
        "(the train side is for training); false takes the whole file.")
    limit: int | None = Field(
        default=None, description="At most this many questions of each role, in file order "
        "(for quick runs).")


def _read(path: str, allow_empty_options: bool = False) -> list[Question]:
    try:
        return read_questions(path, allow_empty_options=allow_empty_options)
    except (QuestionFileError, OSError) as exc:
        raise Failure(f"cannot read questions: {exc}") from exc


@asset(group_name="questions", compute_kind="duckdb", code_version="1")
def questions(context: AssetExecutionContext, config: QuestionsConfig,
              warehouse: Warehouse) -> MaterializeResult:
    """Test questions to answer and labelled validation questions, validated row by row."""
    with warehouse.get_connection() as db:

        def compute() -> Work:
            test = _read(config.test_path, config.test_allow_empty_options)
            validation = _read(config.validation_path)
            if config.validation_split:
                validation = split_questions(validation)["validation"]
            if config.limit is not None:
                test, validation = test[: config.limit], validation[: config.limit]
            write_questions(db, [("test", test), ("validation", validation)])
            context.log.info(f"{len(test)} test and {len(validation)} validation questions")
            return Work(content_version(db, "questions", VERSION_COLUMNS),
                        {"test_path": config.test_path,
                         "validation_path": config.validation_path})

        def describe() -> dict[str, Any]:
            counts = dict(db.execute(
                "SELECT role, count(*) FROM questions GROUP BY role").fetchall())
            return {
                "dagster/row_count": sum(counts.values()),
                "test_questions": counts.get("test", 0),
                "validation_questions": counts.get("validation", 0),
                "preview": MetadataValue.md(markdown_preview(
                    db, "SELECT role, id, prompt, A, answer FROM questions ORDER BY role, row "
                        "LIMIT 5")),
            }

        return run_step(context, db, config, compute, describe)
