"""Answering assets: the trained reader, per-(reader, ranking) logits, the blend, the cascade,
the submission and the score, with the check that warns when the score regresses
(:mod:`pipeline.answering`)."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset_check,
)
from pydantic import Field

from assets.incremental import run_step, versioned_asset
from assets.questions import questions
from assets.rankings import RANKINGS
from pipeline.answering import (
    blend_step,
    cascade_step,
    cheap_readers,
    distillation,
    logit_table,
    reader_training,
    score_step,
    scorecard,
    submission_file,
    teacher,
)
from pipeline.answering.cascade import DEFAULT_SHARE
from pipeline.answering.readers import multiple_choice
from pipeline.models import ResolvedModel
from pipeline.paths import work_dir
from pipeline.questions.roles import TRAIN_RANKING
from resources import WAREHOUSE_POOL, HeavyReader, ModelStore, ReaderSettings, Warehouse

TRAINING = reader_training.TrainSettings()
SOURCES = [logit_table.source_name(reader, ranking)
           for reader in cheap_readers.READERS for ranking in RANKINGS]


class TrainReaderConfig(Config):
    """How the multiple-choice reader is fine-tuned; the defaults are the domain's
    (:class:`pipeline.answering.reader_training.TrainSettings`), defined once there."""

    kind: str = Field(default=TRAINING.kind, description="dual_encoder (options against "
                      "context sentences: the CPU default) or cross_encoder "
                      "(AutoModelForMultipleChoice over question + option and context pairs: "
                      "the GPU recipe).")
    base_model: str = Field(
        default=multiple_choice.DEFAULT_MODEL,
        description="Encoder to fine-tune (hub id or path).")
    max_length: int = Field(default=TRAINING.max_length,
                            description="dual_encoder: tokens of one (prompt + option) text "
                            "(context sentences are cut at 64); cross_encoder: tokens of a "
                            "whole (question + option, context) pair.")
    epochs: float = Field(default=TRAINING.epochs, description="Passes over the train "
                          "questions; the best evaluation on the blend questions (untrained "
                          "included) is kept.")
    max_steps: int | None = Field(default=TRAINING.max_steps,
                                  description="Stop after this many steps.")
    batch_size: int = Field(default=TRAINING.batch_size,
                            description="Questions per micro-batch.")
    grad_accum: int = Field(default=TRAINING.grad_accum,
                            description="Micro-batches per optimizer step.")
    lr: float = Field(default=TRAINING.lr, description="The encoder's peak learning rate.")
    head_lr: float = Field(default=TRAINING.head_lr, description="The learning rate of the "
                           "layers the checkpoint lacks (the similarity scale, the "
                           "multiple-choice head).")
    warmup: float = TRAINING.warmup
    seed: int = TRAINING.seed
    device: str = Field(default=TRAINING.device,
                        description="torch device; auto: a GPU if there is one.")
    precision: str = Field(default=TRAINING.precision, description="What training computes "
                           "in: auto is float32 on a CPU, bfloat16 on a GPU that has it, else "
                           "float16 with a gradient scaler.")
    gradient_checkpointing: bool = Field(
        default=TRAINING.gradient_checkpointing,
        description="Recompute activations in the backward pass: long contexts on one GPU.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, RANKINGS[TRAIN_RANKING]],
                 kinds={"pytorch", "duckdb"})
def trained_reader(context: AssetExecutionContext, config: TrainReaderConfig,
                   warehouse: Warehouse, models: ModelStore) -> MaterializeResult:
    """The multiple-choice encoder fine-tuned on the train questions with their contexts under
    the training ranking, scored on the blend questions after every epoch (the best epoch is
    kept). Never trained on validation, blend or test questions; retrained only when those
    questions, their contexts, the base weights or the settings change."""
    base = models.resolve(config.base_model, log=context.log.info)
    settings = reader_training.TrainSettings(**config.model_dump(exclude={"base_model"}))
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: reader_training.train(db, base, settings,
                                                  work_dir() / "readers" / "multiple_choice",
                                                  context.log.info),
            describe=lambda: reader_training.describe(db),
            state=lambda: reader_training.state(db, base),
            inputs=lambda: reader_training.training_inputs(db))


def heavy_state(heavy_reader: HeavyReader, model: ResolvedModel | None) -> dict[str, Any]:
    """What the heavy reader's readings depend on: its weights, the setup it reads them with
    (the runtime, device type and precision that `auto` resolves to here) and the settings
    that change an answer (not threads or batch size)."""
    settings = heavy_reader.settings()
    return {"heavy_reader": model.key if model else None,
            **(settings.cache_settings(settings.setup(model)) if model else {})}


class TeacherLogitsConfig(Config):
    roles: list[str] = Field(default_factory=lambda: list(teacher.POOL_ROLES), description=(
        "The pool: train questions, and teacher (the extra files of questions.teacher_paths, "
        "labelled or not)."))
    max_questions: int | None = Field(default=0, description=(
        "Label at most the first N of the pool (train questions first); null: all. 0, the "
        "default, leaves distillation out: on two CPU cores the teacher's minutes buy more "
        "as the cascade's (docs/how-it-works.md); config/distillation.yaml turns it on."))
    max_seconds: float | None = Field(default=None, description="Stop reading new questions "
                                      "after this many seconds (cached ones are free).")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, RANKINGS[TRAIN_RANKING]],
                 kinds={"duckdb", "llama.cpp"})
def teacher_logits(context: AssetExecutionContext, config: TeacherLogitsConfig,
                   warehouse: Warehouse, models: ModelStore, heavy_reader: HeavyReader
                   ) -> MaterializeResult:
    """The teacher's five-letter distribution (the heavy reader, Qwen2.5-Coder-1.5B by default)
    over the distillation pool with the contexts the student trains on: each question read
    once and cached, at most `max_questions` or `max_seconds` a run, with a progress line."""
    model = models.resolve(heavy_reader.model, log=context.log.info)
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: teacher.build(db, model,
                                              heavy_reader.settings(config.max_seconds),
                                              config.max_questions, config.roles,
                                              context.log.info),
            describe=lambda: teacher.describe(db), state=heavy_state(heavy_reader, model),
            inputs=lambda: teacher.pool_inputs(db, config.roles),
            stored=lambda: teacher.stored_version(db))


class StudentReaderConfig(TrainReaderConfig):
    gold_weights: list[float] = Field(default_factory=lambda: [0.5], description="Weights of "
                                      "the gold answers' cross-entropy to try (the rest is KL "
                                      "to the teacher); each is a student trained.")
    temperatures: list[float] = Field(default_factory=lambda: [1.0, 2.0], description="Teacher "
                                      "temperatures to try with each gold weight.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, RANKINGS[TRAIN_RANKING], trained_reader,
                                               teacher_logits], kinds={"pytorch", "duckdb"})
def student_reader(context: AssetExecutionContext, config: StudentReaderConfig,
                   warehouse: Warehouse, models: ModelStore) -> MaterializeResult:
    """The multiple-choice reader the blend reads: the best on the blend questions of the
    gold-only student (`trained_reader`) and the students distilled from the teacher, one per
    (gold weight, temperature), trained on gold answers and the teacher's distribution (none
    when distillation is off). Validation never chooses."""
    base = models.resolve(config.base_model, log=context.log.info)
    settings = reader_training.TrainSettings(**config.model_dump(
        exclude={"base_model", "gold_weights", "temperatures"}))
    wanted = distillation.mixes(config.gold_weights, config.temperatures)
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: distillation.build(db, base, settings, wanted,
                                               work_dir() / "readers" / "distilled",
                                               context.log.info),
            describe=lambda: distillation.describe(db),
            state=lambda: distillation.state(db, base),
            inputs=lambda: distillation.inputs(db))


class ScorecardConfig(Config):
    ranking: str = Field(default="semantic", description="Whose validation contexts are read.")
    teacher_questions: int | None = Field(default=0, description=(
        "Validation questions the teacher reads (the first N; null: all; 0, the default: "
        "none, distillation being off; config/distillation.yaml reads 50)."))


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, RANKINGS["semantic"], teacher_logits,
                                               student_reader], kinds={"duckdb", "pytorch"})
def distillation_scorecard(context: AssetExecutionContext, config: ScorecardConfig,
                           warehouse: Warehouse, models: ModelStore,
                           heavy_reader: HeavyReader) -> MaterializeResult:
    """The teacher, the gold-only student, the distilled student and the distilled student in
    int8 on the validation questions: MAP@3 with its interval, accuracy, seconds and tokens a
    question, and size on disk (measured here, never chosen on)."""
    model = None if config.teacher_questions == 0 else models.resolve(heavy_reader.model,
                                                                       log=context.log.info)
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: scorecard.build(db, config.ranking, model, heavy_reader.settings(),
                                            config.teacher_questions, context.log.info),
            describe=lambda: scorecard.describe(db),
            state=heavy_state(heavy_reader, model),
            inputs=lambda: scorecard.inputs(db, config.ranking))


def logits_asset(reader: str, ranking: str) -> AssetsDefinition:
    """The asset holding ``reader``'s five logits per question under ``ranking``'s contexts."""
    deps = [questions, RANKINGS[ranking], *([student_reader] if reader == "multiple_choice"
                                            else [])]

    @versioned_asset(pool=WAREHOUSE_POOL,
                     name=f"logits_{reader}_{ranking}", group_name="answering", deps=deps,
                     kinds={"duckdb"} if reader == "lexical" else {"duckdb", "pytorch"},
                     description=f"Five logits per question from the {reader} reader, reading the "
                     f"{ranking} ranking's contexts: test, validation and blend questions, each "
                     "(question, context) read once and cached.")
    def _logits(context: AssetExecutionContext, warehouse: Warehouse, readers: ReaderSettings,
                models: ModelStore) -> MaterializeResult:
        readers.configure_torch()
        scorer = cheap_readers.CheapReader(
            reader, readers.state(reader), lambda: models.resolve(readers.similarity_model,
                                                                  log=context.log.info),
            readers.similarity_top_k, readers.multiple_choice_batch_size, readers.device,
            context.log.info)
        with warehouse.get_connection() as db:
            # The reader's identity, weights by sha256 included, is its state: a model
            # replaced at the same name or path is read with again.
            return run_step(
                context, db, None, compute=lambda: cheap_readers.build(db, scorer, ranking),
                describe=lambda: cheap_readers.describe(db, reader, ranking),
                state=lambda: scorer.identity(db),
                stored=lambda: cheap_readers.stored_version(db, reader, ranking))

    return _logits


LOGITS = [logits_asset(reader, ranking)
          for reader in cheap_readers.READERS for ranking in RANKINGS]


class BlendConfig(Config):
    folds: int = Field(default=5, description="Cross-validation folds on the blend questions "
                       "(the method with the best out-of-fold MAP@3 is chosen).")
    seed: int = 0
    exclude: list[str] = Field(default_factory=list, description="Sources (reader@ranking, "
                               "e.g. similarity@search) left out of the blend; they are still "
                               "scored. Deselect their logits assets to skip them too.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, *LOGITS], kinds={"duckdb", "scikitlearn"})
def blend_weights(context: AssetExecutionContext, config: BlendConfig,
                  warehouse: Warehouse) -> MaterializeResult:
    """The cheap readers blended: per-question z-scored logits weighted by a conditional
    logit, by MAP@3-searched weights, by a learned ranker (with the lexical signals and
    retrieval scores as extra features) or equally, whichever scores best out of fold on the
    blend questions. Validation only measures the choice."""
    with warehouse.get_connection() as db:
        return run_step(
            context, db, config,
            compute=lambda: blend_step.build(db, SOURCES, config.exclude, config.folds,
                                             config.seed, context.log.info),
            describe=lambda: blend_step.describe(db))


class CascadeConfig(Config):
    """When the heavy reader is asked and whose contexts it reads; which model reads and how
    is the `heavy_reader` resource's, shared with the teacher and the scorecard."""

    ranking: str = Field(default="semantic", description="Whose packed contexts it reads.")
    share: float = Field(default=DEFAULT_SHARE, ge=0.0, le=1.0, description="At most "
                         "this share of each role's questions is escalated, least sure first "
                         "(1.0 on a GPU: every question).")
    max_seconds: float | None = Field(default=None, description="Stop reading new questions "
                                      "after this many seconds (cached ones are free).")
    unfamiliar: str = Field(
        default="heavy", description="Test and validation questions of a kind (file format and "
        "option count) that no blend question has: `heavy` reads every one with the heavy "
        "reader and answers with it alone (the cheap blend's weights were fitted on other "
        "questions); `blend` treats them like the rest.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, blend_weights, *RANKINGS.values()],
                 kinds={"duckdb", "llama.cpp"})
def cascade(context: AssetExecutionContext, config: CascadeConfig, warehouse: Warehouse,
            models: ModelStore, heavy_reader: HeavyReader) -> MaterializeResult:
    """The confidence cascade: the heavy reader (a 1.5B causal LM by default) reads the
    questions the cheap blend is least sure of, at most `share` of each role, and joins the
    blend for those; the rule and the combination are fitted on the blend questions. Questions
    of a kind no blend question has are read by the heavy reader alone (`unfamiliar`)."""
    settings = heavy_reader.settings(config.max_seconds)
    with warehouse.get_connection() as db:
        strangers = config.unfamiliar == "heavy" and any(
            cascade_step.unfamiliar_ids(db).values())
        model = models.resolve(heavy_reader.model, log=context.log.info) \
            if config.share > 0 or strangers else None
        return run_step(
            context, db, config,
            compute=lambda: cascade_step.build(db, config.share, config.ranking, settings,
                                               model, context.log.info,
                                               config.unfamiliar),  # type: ignore[arg-type]
            describe=lambda: cascade_step.describe(db),
            state=heavy_state(heavy_reader, model))


class SubmissionConfig(Config):
    # The file's content at this path is the step's state: a new path without the file
    # rewrites it, a copied working area that has it does not.
    OUTPUT_LOCATIONS: ClassVar[frozenset[str]] = frozenset({"path"})
    path: str = Field(default_factory=lambda: str(work_dir() / "submission.csv"),
                      description="Where submission.csv is written.")


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, cascade], kinds={"csv"})
def submission(context: AssetExecutionContext, config: SubmissionConfig,
               warehouse: Warehouse) -> MaterializeResult:
    """submission.csv: `id,prediction` with the three best letters per test question
    (after the cascade), best first, in the test file's order."""
    path = Path(config.path)
    with warehouse.get_connection() as db:
        # The file's content is part of the state: a deleted or edited file is rewritten.
        return run_step(
            context, db, config,
            compute=lambda: submission_file.build(db, path, context.log.info),
            describe=lambda: submission_file.describe(path),
            state=lambda: {"file": submission_file.file_version(path)})


@versioned_asset(pool=WAREHOUSE_POOL,
                 group_name="answering", deps=[questions, cascade, *LOGITS], kinds={"duckdb"})
def score(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """MAP@3 on the validation questions with a 95% bootstrap interval: of the answers
    (the cascade), of the cheap blend, of every (reader, ranking) source and of the heavy
    reader on the questions it read; each question's rank of its correct answer; and
    MAP@3 of the test answers when the test file is labelled."""
    with warehouse.get_connection() as db:
        return run_step(context, db, None, compute=lambda: score_step.build(db, SOURCES),
                        describe=lambda: score_step.describe(db))


SCORE_HISTORY = 50


@asset_check(pool=WAREHOUSE_POOL,
             asset=score, description="Warns when MAP@3 falls below the interval of the "
             "last score computed from other inputs (a re-run with nothing changed is not "
             "a baseline: it would compare the score with itself).")
def score_within_previous_interval(context: AssetCheckExecutionContext) -> AssetCheckResult:
    records = context.instance.fetch_materializations(AssetKey("score"),
                                                      limit=SCORE_HISTORY).records
    events = [r for r in records if r.asset_materialization]
    if not events:
        return AssetCheckResult(passed=True, metadata={"compared_with": "none"})
    now = events[0].asset_materialization.metadata
    baseline = previous_score(now, [e.asset_materialization.metadata for e in events[1:]])
    if baseline is None:
        return AssetCheckResult(passed=True, metadata={
            "compared_with": "none: no earlier score from other inputs"})
    index, before = baseline
    value, low = now["map_at_3"].value, before["map_at_3_low"].value
    return AssetCheckResult(
        passed=value >= low, severity=AssetCheckSeverity.WARN,
        metadata={"map_at_3": value, "previous_map_at_3": before["map_at_3"].value,
                  "previous_low": low,
                  "compared_with": f"the last score from other inputs (run "
                                   f"{events[index + 1].run_id}, fingerprint "
                                   f"{before['fingerprint'].value})"},
        description=None if value >= low else
        f"MAP@3 {value:.4f} is below the previous interval (low {low:.4f}); "
        "run `make lineage` to see what changed upstream")


def previous_score(now: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]
                   ) -> tuple[int, Mapping[str, Any]] | None:
    """The latest of the ``earlier`` score metadata (newest first) computed from other inputs
    than ``now``: its fingerprint (code, config and inputs) differs."""
    for index, before in enumerate(earlier):
        if before["fingerprint"].value != now["fingerprint"].value:
            return index, before
    return None


answering_assets = [trained_reader, teacher_logits, student_reader, distillation_scorecard,
                    *LOGITS, blend_weights, cascade, submission, score]
answering_checks = [score_within_previous_interval]
