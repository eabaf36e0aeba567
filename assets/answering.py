"""Answering assets: the trained reader, per-(reader, ranking) logits, the blend, the submission
and the score, with the check that warns when the score regresses."""

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
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

from assets.incremental import Work, code_version, run_step
from assets.questions import questions
from assets.retrieval import ranking_edit_distance, ranking_es, ranking_semantic
from pipeline import answer_scores, blend, cascade, logits, reading_cache, scoring
from pipeline.answering import TRAIN_RANKING, ReadingList, reading_list
from pipeline.blend import average_precisions
from pipeline.embeddings import Embedder
from pipeline.metrics import estimate
from pipeline.models import ModelNotFoundError, ResolvedModel, weights_sha256
from pipeline.paths import work_dir
from pipeline.questions import LETTERS
from pipeline.readers import heavy, multiple_choice
from pipeline.readers.lexical import SIGNAL_NAMES, LexicalReader
from pipeline.readers.similarity import SimilarityReader
from pipeline.semantic import VectorCache
from pipeline.source_version import source_version
from pipeline.tables import content_version, markdown_preview
from resources import ModelStore, ReaderSettings, Warehouse

RANKING_ASSETS = {"es": ranking_es, "edit_distance": ranking_edit_distance,
                  "semantic": ranking_semantic}
# The cheap readers: each reads every scored question under every ranking. The heavy reader
# (a causal LM) reads only what the cascade escalates.
READERS = ("lexical", "similarity", "multiple_choice")

CODE_VERSION = code_version(__name__)


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
        description="Encoder to fine-tune (hub id or path): a sentence-transformers model.")
    max_length: int = Field(default=multiple_choice.DEFAULT_MAX_LENGTH,
                            description="Tokens of one (prompt + option) text; context "
                            "sentences are cut at 64.")
    epochs: float = Field(default=1.0, description="Passes over the train questions; the best "
                          "evaluation on the blend questions (untrained included) is kept.")
    max_steps: int | None = Field(default=None, description="Stop after this many steps.")
    batch_size: int = Field(default=8, description="Questions per micro-batch.")
    grad_accum: int = Field(default=1, description="Micro-batches per optimizer step.")
    lr: float = Field(default=2e-5, description="The encoder's peak learning rate.")
    head_lr: float = Field(default=1e-2, description="The similarity scale's learning rate.")
    warmup: float = 0.1
    seed: int = 0
    device: str = Field(default="auto", description="torch device; auto: a GPU if there is one.")


TRAINED_DDL = """CREATE TABLE IF NOT EXISTS trained_readers (
    reader VARCHAR, path VARCHAR, weights_sha256 VARCHAR, base_model VARCHAR,
    base_weights_sha256 VARCHAR, max_length INTEGER, examples INTEGER, steps INTEGER,
    losses DOUBLE[], seconds DOUBLE, trained_at TIMESTAMPTZ, curve JSON, best_epoch DOUBLE)"""


def trained_reader_path(db: duckdb.DuckDBPyConnection) -> tuple[Path, int] | None:
    """Folder and max_length of the latest fine-tuned multiple-choice reader, if any."""
    db.execute(TRAINED_DDL)
    for column in ("curve JSON", "best_epoch DOUBLE"):  # warehouses from before the curve
        db.execute(f"ALTER TABLE trained_readers ADD COLUMN IF NOT EXISTS {column}")
    row = db.execute("SELECT path, max_length FROM trained_readers "
                     "WHERE reader = 'multiple_choice' ORDER BY trained_at DESC LIMIT 1"
                     ).fetchone()
    return (Path(row[0]), row[1]) if row else None


def _trained_state(db: duckdb.DuckDBPyConnection, base: ResolvedModel) -> dict[str, Any]:
    """Whether the recorded weights are still on disk (deleted weights must be trained again),
    and the base model's weights by hash, not by name."""
    trained = trained_reader_path(db)
    return {"weights_present": bool(trained and trained[0].is_dir()),
            "base_weights_sha256": base.weights_sha256}


def _training_data(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """What the reader learns and is evaluated from: the train and blend questions with their
    contexts under the training ranking. Not the whole questions table, so a new test file or
    an edited validation question never retrains it."""
    return {"train_and_blend": content_version(
        db, f"(SELECT q.role, q.id, q.prompt, q.A, q.B, q.C, q.D, q.E, q.answer, c.context "
            f"FROM questions q LEFT JOIN packed_contexts c ON c.role = q.role AND "
            f"c.question_id = q.id AND c.ranking = '{TRAIN_RANKING}' "
            f"WHERE q.role IN ('train', 'blend'))",
        "role, id, prompt, A, B, C, D, E, answer, context")}


def _curve_table(curve: list[dict[str, Any]]) -> str:
    lines = ["| epoch | steps | train loss | blend accuracy | blend MAP@3 |",
             "|---|---|---|---|---|"]
    for point in curve:
        lines.append("| " + " | ".join("" if point[k] is None else f"{point[k]:.4g}"
                                       for k in ("epoch", "steps", "train_loss", "accuracy",
                                                 "map_at_3")) + " |")
    return "\n".join(lines)


@asset(group_name="answering", deps=[questions, RANKING_ASSETS[TRAIN_RANKING]],
       code_version=CODE_VERSION)
def trained_reader(context: AssetExecutionContext, config: TrainReaderConfig,
                   warehouse: Warehouse, models: ModelStore) -> MaterializeResult:
    """The multiple-choice encoder fine-tuned on the train questions with their contexts under
    the training ranking, scored on the blend questions after every epoch (the best epoch is
    kept). Never trained on validation, blend or test questions."""
    base = _resolve(models, config.base_model, context)
    with warehouse.get_connection() as db:

        def compute() -> Work:
            examples = reading_list(db, TRAIN_RANKING, roles=("train",)).pairs()
            if not examples:
                raise Failure("no train questions: set questions.train_paths and train_size")
            held_out = reading_list(db, TRAIN_RANKING, roles=("blend",)).pairs()
            folder = work_dir() / "readers" / "multiple_choice"
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="training-", dir=folder))
            try:
                report = multiple_choice.train(
                    base, examples, staging, eval_examples=held_out, epochs=config.epochs,
                    max_steps=config.max_steps, batch_size=config.batch_size,
                    grad_accum=config.grad_accum, lr=config.lr, head_lr=config.head_lr,
                    warmup=config.warmup, max_length=config.max_length, seed=config.seed,
                    log=context.log.info, device=config.device)
                digest = weights_sha256(staging)
                final = folder / digest[:16]
                if not final.exists():
                    os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            curve = [vars(point) for point in report.curve]
            db.execute("INSERT INTO trained_readers VALUES "
                       "('multiple_choice', ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?)",
                       [str(final), digest, base.reference, base.weights_sha256,
                        config.max_length, report.examples, report.steps, report.losses,
                        report.seconds, json.dumps(curve), report.best_epoch])
            return Work(digest, {"training_seconds": round(report.seconds, 1),
                                 "examples": report.examples, "epochs": report.epochs_run,
                                 **base.metadata()})

        def describe() -> dict[str, Any]:
            row = db.execute(
                "SELECT path, weights_sha256, base_model, examples, steps, losses, curve, "
                "best_epoch FROM trained_readers WHERE reader = 'multiple_choice' "
                "ORDER BY trained_at DESC LIMIT 1").fetchone()
            if row is None:
                return {}
            losses = row[5] or []
            curve = json.loads(row[6]) if row[6] else []
            best = next((p for p in curve if p["epoch"] == row[7]), None)
            return {"path": row[0], "weights_sha256": row[1], "base_model": row[2],
                    "train_questions": row[3], "steps": row[4], "best_epoch": row[7],
                    "blend_accuracy": best["accuracy"] if best else None,
                    "blend_map_at_3": best["map_at_3"] if best else None,
                    "learning_curve": MetadataValue.md(_curve_table(curve)),
                    "loss_curve": MetadataValue.json([round(x, 4) for x in losses])}

        return run_step(context, db, config, compute, describe,
                        lambda: _trained_state(db, base), inputs=lambda: _training_data(db))


# ----------------------------------------------------------------------------------------------
# Logits, one asset per (reader, ranking).


def _score(reader: str, items: ReadingList, db: duckdb.DuckDBPyConnection,
           settings: ReaderSettings, models: ModelStore, context: AssetExecutionContext
           ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """The ``(n, 5)`` logits of one cheap reader over ``items``, its per-option signals (the
    learned ranker's extra features) and metadata about the model used."""
    settings.configure_torch()
    pairs = items.pairs()
    if reader == "lexical":
        lexical = LexicalReader()
        return lexical.score_many(pairs), lexical.signals_many(pairs), {}
    if reader == "similarity":
        model = _resolve(models, settings.similarity_model, context)
        # Through the embedding cache: a sentence met in several contexts, rankings or runs is
        # embedded once.
        encoder = VectorCache(db, Embedder(model, device=settings.device), context.log.info)
        scorer = SimilarityReader(encoder, top_k=settings.similarity_top_k)
        return scorer.score_many(pairs), {}, model.metadata()
    trained = trained_reader_path(db)
    if trained is None or not trained[0].is_dir():
        raise Failure("the multiple-choice reader is not trained: materialise trained_reader")
    path, max_length = trained
    scorer = multiple_choice.MultipleChoiceReader(
        path, batch_size=settings.multiple_choice_batch_size, max_length=max_length,
        device=settings.device)
    return scorer.score_many(pairs), {}, {"model_path": str(path),
                                          "model_weights_sha256": weights_sha256(path)}


# The code each cheap reader's logits come from: its module (and what it imports) and the
# dispatch above. Computed once at import, like the assets' own code versions.
READER_CODE = {reader: source_version(f"pipeline.readers.{reader}") for reader in READERS}
SCORING_CODE = hashlib.sha256(inspect.getsource(_score).encode()).hexdigest()[:16]


def _reader_identity(reader: str, db: duckdb.DuckDBPyConnection, settings: ReaderSettings,
                     models: ModelStore, context: AssetExecutionContext) -> dict[str, Any]:
    """What one cheap reader's logits depend on besides the question and its context: the
    code that computes them, its settings and its weights (by hash), never device or threads."""
    identity: dict[str, Any] = {
        "reader": reader, "code": READER_CODE[reader], "scoring": SCORING_CODE,
        **settings.state(reader)}
    if reader == "similarity":
        identity["weights"] = _resolve(models, settings.similarity_model,
                                       context).weights_sha256
    elif reader == "multiple_choice":
        row = db.execute("SELECT weights_sha256, max_length FROM trained_readers WHERE reader = "
                         "'multiple_choice' ORDER BY trained_at DESC LIMIT 1").fetchone()
        if row is None:
            raise Failure("the multiple-choice reader is not trained: materialise "
                          "trained_reader")
        identity["weights"], identity["max_length"] = row
    return identity


def _score_cached(reader: str, items: ReadingList, db: duckdb.DuckDBPyConnection,
                  settings: ReaderSettings, models: ModelStore, context: AssetExecutionContext
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any], int]:
    """:func:`_score` through the reading cache: only (question, context) pairs this reader
    has not read before are read; returns the logits, the signals, model metadata and how many
    pairs were read now."""
    identity = _reader_identity(reader, db, settings, models, context)
    outputs = ["logits", *(SIGNAL_NAMES if reader == "lexical" else ())]
    keys = {name: reading_cache.reader_key(identity.get("weights", "none"),
                                           {**identity, "output": name}) for name in outputs}
    item_keys = [reading_cache.item_key(q, c) for q, c in items.pairs()]
    cached = {name: reading_cache.lookup(db, key, sorted(set(item_keys)))
              for name, key in keys.items()}
    missing = sorted({i for i, item in enumerate(item_keys)
                      if any(item not in cached[name] for name in outputs)})
    metadata: dict[str, Any] = {}
    if missing:
        subset = ReadingList([items.keys[i] for i in missing],
                             [items.questions[i] for i in missing],
                             [items.contexts[i] for i in missing])
        scored, signals, metadata = _score(reader, subset, db, settings, models, context)
        for name, values in {"logits": scored, **signals}.items():
            reading_cache.store_many(db, keys[name], [item_keys[i] for i in missing], values)
            cached[name].update(zip((item_keys[i] for i in missing), values, strict=True))
    arrays = {name: np.array([cached[name][item] for item in item_keys],
                             dtype=np.float64).reshape(-1, len(LETTERS)) for name in outputs}
    signals = {name: arrays[name] for name in outputs[1:]}
    return arrays["logits"], signals, metadata, len(missing)


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
           code_version=CODE_VERSION,
           description=f"Logits of the {reader} reader on the {ranking} ranking's contexts, "
           "for the test, validation and blend questions.")
    def _logits(context: AssetExecutionContext, warehouse: Warehouse, readers: ReaderSettings,
                models: ModelStore) -> MaterializeResult:
        with warehouse.get_connection() as db:

            def compute() -> Work:
                items = reading_list(db, ranking)
                scored, signals, model_metadata, read = _score_cached(
                    reader, items, db, readers, models, context)
                logits.write_logits(db, reader, ranking, items.keys, scored)
                for name, values in signals.items():
                    logits.write_logits(db, logits.signal_name(reader, name), ranking,
                                        items.keys, values)
                context.log.info(f"{source}: {read} questions read, "
                                 f"{len(items.keys) - read} taken from the reading cache")
                return Work(_logits_version(db, reader, ranking), {
                    **model_metadata, "questions_read": read,
                    "questions_reused": len(items.keys) - read,
                    "signals": ", ".join(signals) or "none"})

            def describe() -> dict[str, Any]:
                return {"source": source, **validation_map(db, "validation", source),
                        **validation_map(db, "blend", source)}

            # The reader's identity, weights by sha256 included: a model replaced at the same
            # name or path is read with again.
            return run_step(context, db, None, compute, describe,
                            lambda: _reader_identity(reader, db, readers, models, context),
                            stored=lambda: _logits_version(db, reader, ranking))

    return _logits


def _logits_version(db: duckdb.DuckDBPyConnection, reader: str, ranking: str) -> str:
    return content_version(
        db, f"(SELECT * FROM reader_logits WHERE split_part(reader, '.', 1) = '{reader}' AND "
            f"ranking = '{ranking}')", logits.VERSION_COLUMNS)


# ----------------------------------------------------------------------------------------------
# The cheap blend, the cascade, the submission and the score.


BLEND_DDL = """CREATE OR REPLACE TABLE blend_weights (source VARCHAR, weight DOUBLE,
    method VARCHAR)"""
ROLES_BLENDED = ("test", "validation", "blend")


class BlendConfig(Config):
    folds: int = Field(default=5, description="Cross-validation folds on the blend questions "
                       "(the method with the best out-of-fold MAP@3 is chosen).")
    seed: int = 0
    exclude: list[str] = Field(default_factory=list, description="Sources (reader@ranking, "
                               "e.g. similarity@es) left out of the blend; they are still "
                               "scored. Deselect their logits assets to skip them too.")


def _role_inputs(db: duckdb.DuckDBPyConnection, role: str, sources: Sequence[str]
                 ) -> tuple[logits.LabelledLogits, dict[str, np.ndarray]]:
    """A role's logits of every source, and the extra per-option features of the ranker."""
    labelled = logits.read_role(db, role, sources)
    signals = logits.read_role(db, role, logits.signal_sources(db)).sources
    return labelled, {**signals, **logits.retrieval_features(db, role, labelled.question_ids)}


def blend_asset(sources: Sequence[str], logits_assets: Sequence[AssetsDefinition]
                ) -> AssetsDefinition:
    """The cheap blend over ``sources``, chosen and fitted on the blend questions only."""

    @asset(name="blend_weights", group_name="answering", deps=[questions, *logits_assets],
           code_version=CODE_VERSION)
    def blend_weights(context: AssetExecutionContext, config: BlendConfig,
                      warehouse: Warehouse) -> MaterializeResult:
        """The cheap readers blended: per-question z-scored logits weighted by a conditional
        logit, by MAP@3-searched weights, by a learned ranker (with the lexical signals and
        retrieval scores as extra features) or equally, whichever scores best out of fold on
        the blend questions. Validation only measures the choice."""
        with warehouse.get_connection() as db:

            def compute() -> Work:
                unknown = sorted(set(config.exclude) - set(sources))
                if unknown:
                    raise Failure(f"blend_weights.exclude names unknown sources {unknown}; "
                                  f"the sources are {list(sources)}")
                blended = [source for source in sources if source not in config.exclude]
                if not blended:
                    raise Failure("blend_weights.exclude leaves no source to blend")
                try:
                    roles = {role: _role_inputs(db, role, blended) for role in ROLES_BLENDED}
                except LookupError as exc:
                    raise Failure(str(exc)) from exc
                fit, fit_extra = roles["blend"]
                choice = blend.choose_blend(fit.sources, fit.answers, fit_extra,
                                            folds=config.folds, seed=config.seed)
                rows = [("blend", qid, scores, False) for qid, scores in zip(
                    fit.question_ids, choice.oof_log_probabilities, strict=True)]
                for role in ("test", "validation"):
                    labelled, extra = roles[role]
                    if labelled.question_ids:
                        rows += [(role, qid, scores, False) for qid, scores in zip(
                            labelled.question_ids,
                            choice.fitted.log_probabilities(labelled.sources, extra),
                            strict=True)]
                answer_scores.write_scores(db, "blended_scores", rows)
                db.execute(BLEND_DDL)
                # The learned ranker has no weights: its sources are listed with none.
                db.executemany("INSERT INTO blend_weights VALUES (?, ?, ?)",
                               [[source, choice.weights.get(source), choice.method]
                                for source in blended])
                measured = _measure_methods(choice, fit, fit_extra, *roles["validation"])
                context.log.info(f"blend: {choice.method} (out-of-fold MAP@3 on the blend "
                                 f"questions {choice.cv_map})")
                return Work(content_version(db, "blended_scores", answer_scores.COLUMNS), {
                    "method": choice.method, "temperature": round(choice.fitted.temperature, 4),
                    **{f"cv_map_at_3_{k}": round(v, 4) for k, v in choice.cv_map.items()},
                    **{f"validation_map_at_3_{k}": round(v, 4) for k, v in measured.items()},
                    "blend_questions": len(fit.question_ids)})

            def describe() -> dict[str, Any]:
                return {"weights": MetadataValue.md(markdown_preview(
                    db, "SELECT source, round(weight, 4) AS weight, method FROM blend_weights "
                        "ORDER BY weight DESC")),
                        "dagster/row_count": db.execute(
                            "SELECT count(*) FROM blended_scores").fetchone()[0]}

            return run_step(context, db, config, compute, describe)

    return blend_weights


def _measure_methods(choice: blend.BlendChoice, fit: logits.LabelledLogits,
                     fit_extra: dict[str, np.ndarray], valid: logits.LabelledLogits,
                     valid_extra: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation MAP@3 of every candidate method refitted on all blend questions: reported so
    the choice can be judged, never used to make it."""
    if not valid.question_ids or any(a is None for a in valid.answers):
        return {}
    measured = {}
    for method in choice.cv_map:
        fitted = choice.fitted if method == choice.method else blend.fit_method(
            method, fit.sources, fit.answers, fit_extra)
        measured[method] = float(average_precisions(
            fitted.scores(valid.sources, valid_extra), valid.answers).mean())
    return measured


class CascadeConfig(Config):
    model: str = Field(default=heavy.DEFAULT_MODEL, description="The heavy reader: a causal "
                       "LM by hub id or path (a GGUF file runs on llama.cpp on the CPU).")
    runtime: str = Field(default="auto", description="auto, llama.cpp or transformers.")
    ranking: str = Field(default="semantic", description="Whose packed contexts it reads.")
    share: float = Field(default=cascade.DEFAULT_SHARE, ge=0.0, le=1.0, description="At most "
                         "this share of each role's questions is escalated, least sure first "
                         "(1.0 on a GPU: every question).")
    max_seconds: float | None = Field(default=None, description="Stop reading new questions "
                                      "after this many seconds (cached ones are free).")
    context_tokens: int = Field(default=128, description="Context tokens in its prompt (the "
                                "best passage, about): 256 read no better here, at 1.7x the "
                                "cost; see the README).")
    permutations: int = Field(default=1, description="Cyclic rotations of the options "
                              "averaged (1-5): each costs another pass over the options.")
    threads: int | None = Field(default=None, description="CPU threads (default: all).")
    device: str = Field(default="auto", description="torch device of the transformers runtime.")


def _heavy_model(config: CascadeConfig, models: ModelStore,
                 context: AssetExecutionContext) -> ResolvedModel | None:
    return None if config.share == 0 else _resolve(models, config.model, context)


def cascade_asset(blend_weights: AssetsDefinition) -> AssetsDefinition:
    @asset(name="cascade", group_name="answering",
           deps=[questions, blend_weights, *RANKING_ASSETS.values()], code_version=CODE_VERSION)
    def cascade_step(context: AssetExecutionContext, config: CascadeConfig,
                     warehouse: Warehouse, models: ModelStore) -> MaterializeResult:
        """The confidence cascade: the heavy reader (a 1.5B causal LM by default) reads the
        questions the cheap blend is least sure of, at most ``share`` of each role, and joins
        the blend for those; the rule and the combination are fitted on the blend questions."""
        model = _heavy_model(config, models, context)
        with warehouse.get_connection() as db:

            def compute() -> Work:
                run = cascade_run(db, config, model, context)
                return Work(content_version(db, "answer_scores", answer_scores.COLUMNS),
                            run)

            def describe() -> dict[str, Any]:
                counts = dict(db.execute("SELECT role, count(*) FILTER (WHERE escalated) "
                                         "FROM answer_scores GROUP BY role").fetchall())
                return {f"{role}_escalated": n for role, n in sorted(counts.items())}

            return run_step(context, db, config, compute, describe,
                            {"model": model.key if model else None})

    return cascade_step


def cascade_run(db: duckdb.DuckDBPyConnection, config: CascadeConfig,
                model: ResolvedModel | None, context: AssetExecutionContext) -> dict[str, Any]:
    """Escalate, read (or reuse cached readings), combine, and write ``answer_scores``."""
    cheap = {role: answer_scores.read_scores(db, "blended_scores", role)[:2]
             for role in ROLES_BLENDED}
    answers = dict(db.execute("SELECT id, answer FROM questions WHERE role = 'blend'"
                              ).fetchall())
    blend_ids, blend_logp = cheap["blend"]
    rule = cascade.fit_rule(blend_logp, [answers[q] for q in blend_ids])
    chosen = {role: [ids[i] for i in cascade.escalate(logp, rule, config.share)]
              for role, (ids, logp) in cheap.items()}
    settings = cascade.HeavySettings(
        runtime=config.runtime, context_tokens=config.context_tokens,
        permutations=config.permutations, threads=config.threads, device=config.device,
        max_seconds=config.max_seconds)
    reading = cascade.HeavyReading(db, settings, model, context.log.info)
    heavy_logits = reading.read(
        {role: reading_list(db, config.ranking, roles=(role,)) for role in chosen}, chosen)
    combination = cascade.fit_combination(
        np.array([cheap["blend"][1][blend_ids.index(q)] for q in chosen["blend"]
                  if ("blend", q) in heavy_logits]).reshape(-1, len(LETTERS)),
        np.array([heavy_logits[("blend", q)] for q in chosen["blend"]
                  if ("blend", q) in heavy_logits]).reshape(-1, len(LETTERS)),
        [answers[q] for q in chosen["blend"] if ("blend", q) in heavy_logits])
    rows = []
    for role, (ids, logp) in cheap.items():
        for qid, scores in zip(ids, logp, strict=True):
            read = heavy_logits.get((role, qid))
            final = scores if read is None else cascade.combine(
                scores[None, :], read[None, :], combination)[0]
            rows.append((role, qid, final, read is not None))
    answer_scores.write_scores(db, "answer_scores", rows)
    keys = sorted(heavy_logits)
    logits.write_logits(db, "causal_lm", config.ranking, keys,
                        np.array([heavy_logits[k] for k in keys]).reshape(-1, len(LETTERS)))
    return {"rule_measure": rule.measure,
            **{f"rule_auc_{m}": round(v, 4) for m, v in rule.auc.items()},
            "share": config.share, "combination_cheap": round(combination.cheap, 4),
            "combination_heavy": round(combination.heavy, 4),
            "combination_fitted": combination.fitted, **reading.metadata(),
            **({} if model is None else model.metadata())}


class SubmissionConfig(Config):
    path: str = Field(default_factory=lambda: str(work_dir() / "submission.csv"),
                      description="Where submission.csv is written.")


def submission_asset(cascade_step: AssetsDefinition) -> AssetsDefinition:
    @asset(name="submission", group_name="answering", deps=[questions, cascade_step],
           code_version=CODE_VERSION)
    def submission(context: AssetExecutionContext, config: SubmissionConfig,
                   warehouse: Warehouse) -> MaterializeResult:
        """submission.csv: ``id,prediction`` with the three best letters per test question
        (after the cascade), best first, in the test file's order."""
        path = Path(config.path)
        with warehouse.get_connection() as db:

            def compute() -> Work:
                ids, scores, _ = answer_scores.read_scores(db, "answer_scores", "test")
                expected = db.execute("SELECT count(*) FROM questions WHERE role = 'test'"
                                      ).fetchone()[0]
                if len(ids) != expected:
                    raise Failure(f"the answers cover {len(ids)} of {expected} test questions; "
                                  "materialise the cascade again")
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
HEAVY_SOURCE = "causal_lm"


def _heavy_on_escalated(db: duckdb.DuckDBPyConnection, ids: Sequence[str],
                        answers: Sequence[str], cheap: np.ndarray
                        ) -> dict[str, np.ndarray]:
    """The heavy reader and the cheap blend on the validation questions it read (MAP@3 of the
    two on the same questions: what escalating them bought)."""
    rows = dict(db.execute(
        f"SELECT question_id, [{', '.join(LETTERS)}] FROM reader_logits WHERE reader = ? "
        "AND role = 'validation'", [HEAVY_SOURCE]).fetchall())
    keep = [i for i, qid in enumerate(ids) if qid in rows]
    if not keep:
        return {}
    heavy_logits = np.array([rows[ids[i]] for i in keep], dtype=np.float64)
    gold = [answers[i] for i in keep]
    return {f"{HEAVY_SOURCE} (escalated only)": average_precisions(heavy_logits, gold),
            "cheap_blend (same questions)": average_precisions(cheap[keep], gold)}


def score_asset(sources: Sequence[str], cascade_step: AssetsDefinition,
                logits_assets: Sequence[AssetsDefinition]) -> AssetsDefinition:
    @asset(name="score", group_name="answering",
           deps=[questions, cascade_step, *logits_assets], code_version=CODE_VERSION)
    def score(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        """MAP@3 on the validation questions with a 95% bootstrap interval: of the answers
        (the cascade), of the cheap blend, of every (reader, ranking) source and of the heavy
        reader on the questions it read; each question's rank of its correct answer; and
        MAP@3 of the test answers when the test file is labelled."""
        with warehouse.get_connection() as db:

            def compute() -> Work:
                ids, final, _ = answer_scores.read_scores(db, "answer_scores", "validation")
                cheap_ids, cheap, _ = answer_scores.read_scores(db, "blended_scores",
                                                                "validation")
                labelled = logits.read_role(db, "validation", sources)
                if not (ids == cheap_ids == labelled.question_ids):
                    raise Failure("answers, blend and logits cover different validation "
                                  "questions; materialise blend_weights and the cascade again")
                result = scoring.score(ids, labelled.answers, final,
                                       {"cheap_blend": cheap, **labelled.sources})
                estimates = dict(result.estimates)
                for name, values in _heavy_on_escalated(db, ids, labelled.answers,
                                                        cheap).items():
                    estimates[name] = estimate(values)
                test_ids, test_final, _ = answer_scores.read_scores(db, "answer_scores", "test")
                test_answers = [a for (a,) in db.execute(
                    "SELECT answer FROM questions WHERE role = 'test' ORDER BY row, id"
                ).fetchall()]
                if test_ids and all(a is not None for a in test_answers):
                    estimates["test (labelled test file)"] = estimate(
                        average_precisions(test_final, test_answers))
                db.execute(SCORE_DDL)
                db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)",
                               [[name, e.value, e.low, e.high, e.n]
                                for name, e in estimates.items()])
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
    """The score as metadata: MAP@3 and interval of the answers, a table of every source, and
    the gold ranks (what the lineage command compares between two materialisations)."""
    rows = db.execute("SELECT name, map_at_3, low, high, questions FROM scores "
                      "ORDER BY name = 'blend' DESC, map_at_3 DESC").fetchall()
    blend_row = next(r for r in rows if r[0] == "blend")
    ranks = dict(db.execute("SELECT question_id, gold_rank FROM score_gold_ranks").fetchall())
    table = ["| source | MAP@3 | 95% interval | questions |", "|---|---|---|---|"] + [
        f"| {name} | {value:.4f} | {low:.4f} to {high:.4f} | {n} |"
        for name, value, low, high, n in rows]
    by_name = {r[0]: r for r in rows}
    extra = {}
    if "cheap_blend" in by_name:
        extra["cheap_blend_map_at_3"] = round(by_name["cheap_blend"][1], 4)
    test = by_name.get("test (labelled test file)")
    if test:
        extra |= {"test_map_at_3": round(test[1], 4), "test_map_at_3_low": round(test[2], 4),
                  "test_map_at_3_high": round(test[3], 4)}
    return {"map_at_3": round(blend_row[1], 4), "map_at_3_low": round(blend_row[2], 4),
            "map_at_3_high": round(blend_row[3], 4), "validation_questions": blend_row[4],
            **extra,
            "map_at_3_by_source": MetadataValue.json({r[0]: round(r[1], 4) for r in rows}),
            "table": MetadataValue.md("\n".join(table)),
            "gold_ranks": MetadataValue.json(ranks)}


def score_check(score: AssetsDefinition):
    @asset_check(asset=score, description="Warns when MAP@3 falls below the interval of the "
                 "last score computed from other inputs (a re-run with nothing changed is not "
                 "a baseline: it would compare the score with itself).")
    def score_within_previous_interval(context: AssetCheckExecutionContext
                                       ) -> AssetCheckResult:
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

    return score_within_previous_interval


SCORE_HISTORY = 50


def previous_score(now: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]
                   ) -> tuple[int, Mapping[str, Any]] | None:
    """The latest of the ``earlier`` score metadata (newest first) computed from other inputs
    than ``now``: its fingerprint (code, config and inputs) differs."""
    for index, before in enumerate(earlier):
        if before["fingerprint"].value != now["fingerprint"].value:
            return index, before
    return None


def answering_assets() -> tuple[list[AssetsDefinition], list]:
    """Every answering asset and check: the trained reader, the cheap readers' logits on the
    three rankings, the cheap blend, the cascade with the heavy reader, the submission and the
    score. The graph is the same in every environment; what runs is run configuration."""
    pairs = [(reader, ranking) for reader in READERS for ranking in RANKING_ASSETS]
    logits_assets = [logits_asset(reader, ranking) for reader, ranking in pairs]
    sources = [logits.source_name(reader, ranking) for reader, ranking in pairs]
    blend_weights = blend_asset(sources, logits_assets)
    cascade_step = cascade_asset(blend_weights)
    score = score_asset(sources, cascade_step, logits_assets)
    return ([trained_reader, *logits_assets, blend_weights, cascade_step,
             submission_asset(cascade_step), score], [score_check(score)])
