"""The questions asset: test questions to answer, labelled validation questions to score on, and
labelled blend and train questions to learn from (see :mod:`pipeline.questions.training_pool`)."""

from dagster import AssetExecutionContext, Config, MaterializeResult
from pydantic import Field

from assets.incremental import run_step, versioned_asset
from pipeline.paths import QUESTIONS
from pipeline.questions import question_sets
from pipeline.questions.question_sets import QuestionSets
from resources import WAREHOUSE_POOL, Warehouse


class QuestionsConfig(Config):
    test_path: str = Field(
        default=str(QUESTIONS / "extra_500.csv"),
        description="Questions to answer, in any accepted format (Kaggle CSV id,prompt,A..E; "
        "ARC/OpenBookQA JSON lines, MMLU CSV or JSON, SciQ, Parquet, Arrow: see "
        "docs/how-it-works.md); "
        "answers, if given, are scored too. Point it at the competition's test.csv to make a "
        "submission.")
    test_allow_empty_options: bool = Field(
        default=True, description="Accept an empty option cell in the test file. On by default "
        "because the default test set (extra_500) has one; validation is always strict.")
    test_limit: int | None = Field(
        default=None, description="Answer only the first N test questions (the sample run "
        "answers 200 of extra_500); null answers the whole file.")
    validation_path: str = Field(
        default=str(QUESTIONS / "stem_1k.csv"),
        description="Labelled questions to score on (any accepted format); never used for "
        "training.")
    validation_split: bool = Field(
        default=True, description="Keep only the validation side of the fixed stem_1k split "
        "(the train side is for training); false takes the whole file.")
    train_paths: list[str] = Field(
        default_factory=lambda: [str(QUESTIONS / "stem_1k.csv")],
        description="Labelled files (any accepted format) to learn from, cleaned (bad rows, "
        "duplicates and any test or validation question dropped and reported); of stem_1k only "
        "the train side is used. By default only the set whose source pages the sample corpus "
        "holds: a question whose context cannot hold its answer teaches a reader and the blend "
        "noise. With full "
        "Wikipedia, add extra_500.csv and generated_6k.csv.")
    blend_size: int = Field(
        default=150, description="Pooled questions held out from training, on which the "
        "blend of the readers is fitted.")
    train_size: int | None = Field(
        default=300, description="Pooled questions the multiple-choice reader is fine-tuned "
        "on (null: all the rest). Each is retrieved for like any question, so it costs time.")
    teacher_paths: list[str] = Field(
        default_factory=list, description="More question CSVs for the teacher alone (the "
        "`teacher` role), labelled or not, e.g. thousands of generated questions: the heavy "
        "reader labels them (teacher_logits) and the distilled student learns from its "
        "answers. Test, validation, blend and train prompts are dropped from them.")
    teacher_size: int | None = Field(
        default=None, description="At most this many of the teacher's questions, in a fixed "
        "order that survives growing a file (null: all).")
    blend_paths: list[str] = Field(
        default_factory=list, description="Labelled questions of the test set's own kind (e.g. "
        "its validation split) to fit the blend and the cascade's rule on, instead of the "
        "first blend_size of the training pool. The blend's weights hold only for questions "
        "like the ones they were fitted on.")
    formats: dict[str, str] = Field(
        default_factory=dict, description="A file's format by path, where detection from the "
        "extension and fields should not decide: kaggle_csv, mmlu_csv, arc, mmlu or sciq.")
    show_passages: bool = Field(
        default=False, description="Let the readers see a set's own gold passage (SciQ's "
        "`support`) first in every context. Off by default: it answers the question, so a "
        "score with it on measures reading, not retrieval.")
    limit: int | None = Field(
        default=None, description="At most this many questions of each role, in file order "
        "(for quick runs).")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="questions", kinds={"duckdb"})
def questions(context: AssetExecutionContext, config: QuestionsConfig,
              warehouse: Warehouse) -> MaterializeResult:
    """The questions of a run, validated row by row and tagged with their role: test (to
    answer), validation (to score on), blend and train (to learn from) and teacher (for the
    teacher alone to label). A question file replaced at the same path is read again (its
    sha256 is part of the fingerprint)."""
    sets = QuestionSets(**config.model_dump())
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: question_sets.build(db, sets, context.log.info, context.log.warning),
            describe=lambda: question_sets.describe(db), state=sets.file_contents,
            stored=lambda: question_sets.stored_version(db))
