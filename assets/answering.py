"""Answering assets: the trained reader, per-(reader, ranking) logits, the blend, the submission
and the score, with the check that warns when the score regresses."""

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assets.incremental import Work, run_step
from assets.questions import questions
from assets.retrieval import ranking_edit_distance, ranking_es, ranking_semantic
from pipeline import blend, logits, scoring
from pipeline.answering import TRAIN_RANKING, ReadingList, reading_list
from pipeline.blend import average_precisions
from pipeline.embeddings import Embedder
from pipeline.metrics import estimate
from pipeline.models import ModelNotFoundError, ResolvedModel, weights_sha256
from pipeline.paths import work_dir
from pipeline.questions import LETTERS
from pipeline.readers import multiple_choice
from pipeline.readers.causal_lm import CausalLMReader
from pipeline.readers.lexical import LexicalReader
from pipeline.readers.similarity import SimilarityReader
from pipeline.semantic import VectorCache
from pipeline.tables import content_version, markdown_preview
from resources import ModelStore, ReaderSettings, Warehouse

RANKING_ASSETS = {"es": ranking_es, "edit_distance": ranking_edit_distance,
                  "semantic": ranking_semantic}
READERS = ("lexical", "similarity", "multiple_choice", "causal_lm")


def _resolve(models: ModelStore, reference: str, context: AssetExecutionContext
             ) -> ResolvedModel:
    try:
        return models.resolve(reference, log=context.log.info)
    except ModelNotFoundError as exc:
        raise Failure(str(exc)) from exc


# ----------------------------------------------------------------------------------------------
# The trained reader.


class TrainReaderConfig(Config):
    base_model: str = Field(
        default=multiple_choice.DEFAULT_MODEL,
        description="Encoder to fine-tune (hub id or path); microsoft/deberta-v3-large on a GPU.")
    max_length: int = Field(default=multiple_choice.DEFAULT_MAX_LENGTH,
                            description="Tokens of (question + context, option) per pair.")
    epochs: float = Field(default=1.0, description="Passes over the train questions.")
    max_steps: int | None = Field(default=None, description="Stop after this many steps.")
    batch_size: int = Field(default=8, description="Questions per micro-batch.")
    grad_accum: int = Field(default=1, description="Micro-batches per optimizer step.")
    lr: float = 5e-5
    warmup: float = 0.1
    seed: int = 0
    device: str = Field(default="auto", description="torch device; auto: a GPU if there is one.")


TRAINED_DDL = """CREATE TABLE IF NOT EXISTS trained_readers (
    reader VARCHAR, path VARCHAR, weights_sha256 VARCHAR, base_model VARCHAR,
    base_weights_sha256 VARCHAR, max_length INTEGER, examples INTEGER, steps INTEGER,
    losses DOUBLE[], seconds DOUBLE, trained_at TIMESTAMPTZ)"""


def trained_reader_path(db: duckdb.DuckDBPyConnection) -> tuple[Path, int] | None:
    """Folder and max_length of the latest fine-tuned multiple-choice reader, if any."""
    db.execute(TRAINED_DDL)
    row = db.execute("SELECT path, max_length FROM trained_readers "
                     "WHERE reader = 'multiple_choice' ORDER BY trained_at DESC LIMIT 1"
                     ).fetchone()
    return (Path(row[0]), row[1]) if row else None


def _trained_state(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Whether the recorded weights are still on disk: deleted weights must be trained again."""
    trained = trained_reader_path(db)
    return {"weights_present": bool(trained and trained[0].is_dir())}


@asset(group_name="answering", deps=[questions, RANKING_ASSETS[TRAIN_RANKING]],
       code_version="2")
def trained_reader(context: AssetExecutionContext, config: TrainReaderConfig,
                   warehouse: Warehouse, models: ModelStore) -> MaterializeResult:
    """The multiple-choice encoder fine-tuned on the train questions with their contexts under
    the training ranking. Never trained on validation, blend or test questions."""
    with warehouse.get_connection() as db:

        def compute() -> Work:
            examples = reading_list(db, TRAIN_RANKING, roles=("train",)).pairs()
            if not examples:
                raise Failure("no train questions: set questions.train_paths and train_size")
            base = _resolve(models, config.base_model, context)
            folder = work_dir() / "readers" / "multiple_choice"
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="training-", dir=folder))
            try:
                report = multiple_choice.train(
                    base, examples, staging, epochs=config.epochs, max_steps=config.max_steps,
                    batch_size=config.batch_size, grad_accum=config.grad_accum, lr=config.lr,
                    warmup=config.warmup, max_length=config.max_length, seed=config.seed,
                    log=context.log.info, device=config.device)
                digest = weights_sha256(staging)
                final = folder / digest[:16]
                if not final.exists():
                    os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            db.execute("INSERT INTO trained_readers VALUES "
                       "('multiple_choice', ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                       [str(final), digest, base.reference, base.weights_sha256,
                        config.max_length, report.examples, report.steps, report.losses,
                        report.seconds])
            return Work(digest, {"training_seconds": round(report.seconds, 1),
                                 "examples": report.examples, "epochs": report.epochs_run,
                                 **base.metadata()})

        def describe() -> dict[str, Any]:
            row = db.execute(
                "SELECT path, weights_sha256, base_model, examples, steps, losses FROM "
                "trained_readers WHERE reader = 'multiple_choice' ORDER BY trained_at DESC "
                "LIMIT 1").fetchone()
            if row is None:
                return {}
            losses = row[5] or []
            tail = losses[-10:]
            return {"path": row[0], "weights_sha256": row[1], "base_model": row[2],
                    "train_questions": row[3], "steps": row[4],
                    "first_loss": round(losses[0], 4) if losses else None,
                    "last_losses_mean": round(float(np.mean(tail)), 4) if tail else None,
                    "loss_curve": MetadataValue.json([round(x, 4) for x in losses])}

        return run_step(context, db, config, compute, describe, lambda: _trained_state(db))


# ----------------------------------------------------------------------------------------------
# Logits, one asset per (reader, ranking).


def _score(reader: str, items: ReadingList, db: duckdb.DuckDBPyConnection,
           settings: ReaderSettings, models: ModelStore,
           context: AssetExecutionContext) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``(n, 5)`` logits of one reader over ``items``, and metadata about the model used."""
    settings.configure_torch()
    pairs = items.pairs()
    if reader == "lexical":
        return LexicalReader().score_many(pairs), {}
    if reader == "similarity":
        model = _resolve(models, settings.similarity_model, context)
        # Through the embedding cache: a sentence met in several contexts, rankings or runs is
        # embedded once.
        encoder = VectorCache(db, Embedder(model, device=settings.device), context.log.info)
        scorer = SimilarityReader(encoder, top_k=settings.similarity_top_k)
        return scorer.score_many(pairs), model.metadata()
    if reader == "causal_lm":
        model = _resolve(models, settings.causal_lm_model, context)
        lm = CausalLMReader(model, max_context_tokens=settings.causal_lm_context_tokens,
                            permutations=settings.causal_lm_permutations,
                            device=settings.device)
        return lm.score_many(pairs).logits, model.metadata()
    trained = trained_reader_path(db)
    if trained is None or not trained[0].is_dir():
        raise Failure("the multiple-choice reader is not trained: materialise trained_reader")
    path, max_length = trained
    scorer = multiple_choice.MultipleChoiceReader(
        path, batch_size=settings.multiple_choice_batch_size, max_length=max_length,
        device=settings.device)
    return scorer.score_many(pairs), {"model_path": str(path),
                                      "model_weights_sha256": weights_sha256(path)}


def validation_map(db: duckdb.DuckDBPyConnection, role: str, source: str
                   ) -> dict[str, float | int]:
    """MAP@3 of one source on one labelled role, with its interval (empty without questions)."""
    try:
        labelled = logits.read_role(db, role, [source])
    except LookupError:
        return {}
    if not labelled.question_ids or any(a is None for a in labelled.answers):
        return {}
    est = estimate(average_precisions(labelled.sources[source], labelled.answers))
    return {f"{role}_map_at_3": round(est.value, 4), f"{role}_map_at_3_low": round(est.low, 4),
            f"{role}_map_at_3_high": round(est.high, 4), f"{role}_questions": est.n}


def logits_asset(reader: str, ranking: str) -> AssetsDefinition:
    """The asset holding ``reader``'s five logits per question under ``ranking``'s contexts."""
    source = logits.source_name(reader, ranking)
    deps = [questions, RANKING_ASSETS[ranking],
            *([trained_reader] if reader == "multiple_choice" else [])]

    @asset(name=f"logits_{reader}_{ranking}", group_name="answering", deps=deps,
           code_version="1",
           description=f"Logits of the {reader} reader on the {ranking} ranking's contexts, "
           "for the test, validation and blend questions.")
    def _logits(context: AssetExecutionContext, warehouse: Warehouse, readers: ReaderSettings,
                models: ModelStore) -> MaterializeResult:
        with warehouse.get_connection() as db:

            def compute() -> Work:
                items = reading_list(db, ranking)
                scored, model_metadata = _score(reader, items, db, readers, models, context)
                logits.write_logits(db, reader, ranking, items.keys, scored)
                context.log.info(f"{source}: {len(items.keys)} questions scored")
                return Work(content_version(
                    db, f"(SELECT * FROM reader_logits WHERE reader = '{reader}' "
                        f"AND ranking = '{ranking}')", logits.VERSION_COLUMNS),
                    {**model_metadata, "questions_scored": len(items.keys)})

            def describe() -> dict[str, Any]:
                return {"source": source, **validation_map(db, "validation", source),
                        **validation_map(db, "blend", source)}

            return run_step(context, db, None, compute, describe, readers.state(reader))

    return _logits


# ----------------------------------------------------------------------------------------------
# Blend, submission and score.


BLEND_DDL = """CREATE TABLE IF NOT EXISTS blend_weights (source VARCHAR, weight DOUBLE,
    method VARCHAR)"""
BLENDED_DDL = """CREATE TABLE IF NOT EXISTS blended_scores (role VARCHAR, question_id VARCHAR,
    A DOUBLE, B DOUBLE, C DOUBLE, D DOUBLE, E DOUBLE)"""


class BlendConfig(Config):
    folds: int = Field(default=5, description="Cross-validation folds of the learned ranker.")
    seed: int = 0


def blend_asset(sources: Sequence[str], logits_assets: Sequence[AssetsDefinition]
                ) -> AssetsDefinition:
    """Blend weights over ``sources``, fitted on the blend questions and checked on validation.
    """

    @asset(name="blend_weights", group_name="answering", deps=[questions, *logits_assets],
           code_version="2")
    def blend_weights(context: AssetExecutionContext, config: BlendConfig,
                      warehouse: Warehouse) -> MaterializeResult:
        """Non-negative weights over the (reader, ranking) logits, maximising MAP@3 on the blend
        questions, against a learned ranker fitted with cross-validation on the same questions;
        whichever scores better on validation blends the test questions."""
        with warehouse.get_connection() as db:

            def compute() -> Work:
                try:
                    fit = logits.read_role(db, "blend", sources)
                    valid = logits.read_role(db, "validation", sources)
                    test = logits.read_role(db, "test", sources)
                except LookupError as exc:
                    raise Failure(str(exc)) from exc
                if not valid.question_ids:
                    raise Failure("no validation questions: a blend cannot be checked")
                choice = blend.choose_blend(fit.sources, fit.answers, valid.sources,
                                            valid.answers, folds=config.folds, seed=config.seed)
                _write_blend(db, choice, {"validation": valid, "test": test})
                context.log.info(f"blend: {choice.method}, validation MAP@3 "
                                 f"{choice.validation_map}")
                return Work(content_version(db, "blended_scores",
                                            f"role, question_id, {', '.join(LETTERS)}"),
                            {"method": choice.method,
                             **{f"validation_map_at_3_{k}": round(v, 4)
                                for k, v in choice.validation_map.items()},
                             **{f"fit_map_at_3_{k}": round(v, 4)
                                for k, v in choice.fit_map.items()},
                             "blend_questions": len(fit.question_ids)})

            def describe() -> dict[str, Any]:
                return {"weights": MetadataValue.md(markdown_preview(
                    db, "SELECT source, round(weight, 4) AS weight, method FROM blend_weights "
                        "ORDER BY weight DESC")),
                        "dagster/row_count": db.execute(
                            "SELECT count(*) FROM blended_scores").fetchone()[0]}

            return run_step(context, db, config, compute, describe)

    return blend_weights


def _write_blend(db: duckdb.DuckDBPyConnection, choice: blend.BlendChoice,
                 roles: dict[str, logits.LabelledLogits]) -> None:
    db.execute(BLEND_DDL)
    db.execute(BLENDED_DDL)
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute("DELETE FROM blend_weights")
        db.execute("DELETE FROM blended_scores")
        for source, weight in choice.weights.items():
            db.execute("INSERT INTO blend_weights VALUES (?, ?, ?)",
                       [source, weight, choice.method])
        for role, labelled in roles.items():
            if not labelled.question_ids:
                continue
            scores = choice.scores(labelled.sources)
            db.executemany("INSERT INTO blended_scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [[role, qid, *map(float, row)]
                            for qid, row in zip(labelled.question_ids, scores, strict=True)])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def read_blended(db: duckdb.DuckDBPyConnection, role: str) -> tuple[list[str], np.ndarray]:
    """Question ids of ``role`` in file order, and their blended scores."""
    rows = db.execute(
        f"SELECT q.id, {', '.join('b.' + x for x in LETTERS)} FROM questions q "
        "JOIN blended_scores b ON b.role = q.role AND b.question_id = q.id "
        "WHERE q.role = ? ORDER BY q.row, q.id", [role]).fetchall()
    return [r[0] for r in rows], np.array([r[1:] for r in rows], dtype=np.float64).reshape(
        -1, len(LETTERS))


class SubmissionConfig(Config):
    path: str = Field(default_factory=lambda: str(work_dir() / "submission.csv"),
                      description="Where submission.csv is written.")


def submission_asset(blend_weights: AssetsDefinition) -> AssetsDefinition:
    @asset(name="submission", group_name="answering", deps=[questions, blend_weights],
           code_version="1")
    def submission(context: AssetExecutionContext, config: SubmissionConfig,
                   warehouse: Warehouse) -> MaterializeResult:
        """submission.csv: ``id,prediction`` with the blend's three best letters per test
        question, best first, in the test file's order."""
        path = Path(config.path)
        with warehouse.get_connection() as db:

            def compute() -> Work:
                ids, scores = read_blended(db, "test")
                expected = db.execute("SELECT count(*) FROM questions WHERE role = 'test'"
                                      ).fetchone()[0]
                if len(ids) != expected:
                    raise Failure(f"the blend covers {len(ids)} of {expected} test questions; "
                                  "materialise blend_weights again")
                text = "id,prediction\n" + "".join(
                    f"{qid},{prediction}\n"
                    for qid, prediction in zip(ids, blend.predictions(scores), strict=True))
                _write_atomically(path, text)
                context.log.info(f"wrote {len(ids)} predictions to {path}")
                return Work(_text_version(text), {"path": str(path)})

            def describe() -> dict[str, Any]:
                if not path.is_file():
                    return {"path": str(path)}
                lines = path.read_text().splitlines()
                return {"path": MetadataValue.path(str(path)),
                        "dagster/row_count": len(lines) - 1,
                        "preview": MetadataValue.md("```\n" + "\n".join(lines[:6]) + "\n```")}

            # The file's content is part of the state: a deleted or edited file is rewritten.
            return run_step(context, db, config, compute, describe,
                            lambda: {"file": _file_version(path)})

    return submission


def _text_version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _file_version(path: Path) -> str | None:
    return _text_version(path.read_text()) if path.is_file() else None


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: a reader never sees half a submission."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


SCORE_DDL = """CREATE OR REPLACE TABLE scores (name VARCHAR, map_at_3 DOUBLE, low DOUBLE,
    high DOUBLE, questions INTEGER)"""
GOLD_DDL = "CREATE OR REPLACE TABLE score_gold_ranks (question_id VARCHAR, gold_rank INTEGER)"


def score_asset(sources: Sequence[str], blend_weights: AssetsDefinition,
                logits_assets: Sequence[AssetsDefinition]) -> AssetsDefinition:
    @asset(name="score", group_name="answering",
           deps=[questions, blend_weights, *logits_assets], code_version="1")
    def score(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        """MAP@3 on the validation questions with a 95% bootstrap interval: of the blend and of
        every (reader, ranking) source, and each question's rank of its correct answer."""
        with warehouse.get_connection() as db:

            def compute() -> Work:
                ids, blended = read_blended(db, "validation")
                labelled = logits.read_role(db, "validation", sources)
                if ids != labelled.question_ids:
                    raise Failure("blended scores and logits cover different validation "
                                  "questions; materialise blend_weights again")
                result = scoring.score(ids, labelled.answers, blended, labelled.sources)
                db.execute(SCORE_DDL)
                db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)",
                               [[name, e.value, e.low, e.high, e.n]
                                for name, e in result.estimates.items()])
                db.execute(GOLD_DDL)
                db.executemany("INSERT INTO score_gold_ranks VALUES (?, ?)",
                               list(result.gold_ranks.items()))
                return Work(content_version(db, "scores", "name, map_at_3, low, high") + "/"
                            + content_version(db, "score_gold_ranks", "question_id, gold_rank"))

            def describe() -> dict[str, Any]:
                return score_metadata(db)

            return run_step(context, db, None, compute, describe)

    return score


def score_metadata(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The score as metadata: MAP@3 and interval of the blend, a table of every source, and
    the gold ranks (what the lineage command compares between two materialisations)."""
    rows = db.execute("SELECT name, map_at_3, low, high, questions FROM scores "
                      "ORDER BY name = 'blend' DESC, map_at_3 DESC").fetchall()
    blend_row = next(r for r in rows if r[0] == "blend")
    ranks = dict(db.execute("SELECT question_id, gold_rank FROM score_gold_ranks").fetchall())
    table = ["| source | MAP@3 | 95% interval |", "|---|---|---|"] + [
        f"| {name} | {value:.4f} | {low:.4f} to {high:.4f} |" for name, value, low, high, _ in rows]
    return {"map_at_3": round(blend_row[1], 4), "map_at_3_low": round(blend_row[2], 4),
            "map_at_3_high": round(blend_row[3], 4), "validation_questions": blend_row[4],
            "map_at_3_by_source": MetadataValue.json({r[0]: round(r[1], 4) for r in rows}),
            "table": MetadataValue.md("\n".join(table)),
            "gold_ranks": MetadataValue.json(ranks)}


def score_check(score: AssetsDefinition):
    @asset_check(asset=score, description="Warns when MAP@3 falls below the interval of the "
                 "previous materialisation of the score.")
    def score_within_previous_interval(context: AssetCheckExecutionContext
                                       ) -> AssetCheckResult:
        records = context.instance.fetch_materializations(AssetKey("score"), limit=2).records
        events = [r.asset_materialization for r in records if r.asset_materialization]
        if len(events) < 2:
            return AssetCheckResult(passed=True, metadata={"previous": "none"})
        now, before = (e.metadata for e in events)
        value, low = now["map_at_3"].value, before["map_at_3_low"].value
        return AssetCheckResult(
            passed=value >= low, severity=AssetCheckSeverity.WARN,
            metadata={"map_at_3": value, "previous_map_at_3": before["map_at_3"].value,
                      "previous_low": low},
            description=None if value >= low else
            f"MAP@3 {value:.4f} is below the previous interval (low {low:.4f}); "
            "run `make lineage` to see what changed upstream")

    return score_within_previous_interval


def answering_assets(causal_lm_rankings: Sequence[str]) -> tuple[list[AssetsDefinition], list]:
    """Every answering asset and check: logits of the lexical, similarity and multiple-choice
    readers on the three rankings, of the causal LM on ``causal_lm_rankings``, and the blend,
    submission and score over all of them."""
    pairs = [(reader, ranking) for reader in READERS[:3] for ranking in RANKING_ASSETS]
    pairs += [("causal_lm", ranking) for ranking in causal_lm_rankings]
    unknown = set(causal_lm_rankings) - set(RANKING_ASSETS)
    if unknown:
        raise ValueError(f"unknown rankings {sorted(unknown)}; use {sorted(RANKING_ASSETS)}")
    logits_assets = [logits_asset(reader, ranking) for reader, ranking in pairs]
    sources = [logits.source_name(reader, ranking) for reader, ranking in pairs]
    blend_weights = blend_asset(sources, logits_assets)
    score = score_asset(sources, blend_weights, logits_assets)
    return ([trained_reader, *logits_assets, blend_weights, submission_asset(blend_weights),
             score], [score_check(score)])
