"""The fine-tuned multiple-choice reader: trained on the train questions, kept on disk by the
sha256 of its weights, recorded in the ``trained_readers`` table with its learning curve."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.answering.readers import multiple_choice
from pipeline.answering.reading_list import reading_list
from pipeline.models import ResolvedModel, weights_sha256
from pipeline.paths import recorded_path, stored_path
from pipeline.questions.roles import TRAIN_RANKING
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import content_version, option_columns

DDL = """CREATE TABLE IF NOT EXISTS trained_readers (
    reader VARCHAR, path VARCHAR, weights_sha256 VARCHAR, base_model VARCHAR,
    base_weights_sha256 VARCHAR, max_length INTEGER, examples INTEGER, steps INTEGER,
    losses DOUBLE[], seconds DOUBLE, trained_at TIMESTAMPTZ, curve JSON, best_epoch DOUBLE)"""
LATEST = "FROM trained_readers WHERE reader = 'multiple_choice' ORDER BY trained_at DESC LIMIT 1"


@dataclass(frozen=True)
class TrainSettings:
    """How the reader is fine-tuned (see ``multiple_choice.train``)."""

    kind: str = "dual_encoder"
    max_length: int = multiple_choice.DEFAULT_MAX_LENGTH
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-5
    head_lr: float = 1e-2
    warmup: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    gradient_checkpointing: bool = False


def latest(db: duckdb.DuckDBPyConnection) -> tuple[Path, int, str] | None:
    """Folder, max_length and weights sha256 of the latest fine-tuned reader, if any."""
    db.execute(DDL)
    for column in ("curve JSON", "best_epoch DOUBLE"):  # warehouses from before the curve
        db.execute(f"ALTER TABLE trained_readers ADD COLUMN IF NOT EXISTS {column}")
    row = db.execute(f"SELECT path, max_length, weights_sha256 {LATEST}").fetchone()
    return (recorded_path(row[0]), row[1], row[2]) if row else None


def state(db: duckdb.DuckDBPyConnection, base: ResolvedModel) -> dict[str, Any]:
    """Whether the recorded weights are still on disk (deleted weights must be trained again),
    and the base model's weights by hash, not by name."""
    trained = latest(db)
    return {"weights_present": bool(trained and trained[0].is_dir()),
            "base_weights_sha256": base.weights_sha256}


def training_inputs(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """What the reader learns and is evaluated from: the train and blend questions with their
    contexts under the training ranking. Not the whole questions table, so a new test file or
    an edited validation question never retrains it."""
    return {"train_and_blend": content_version(
        db, f"(SELECT q.role, q.id, q.prompt, {option_columns('q.')}, q.answer, c.context "
            f"FROM questions q LEFT JOIN packed_contexts c ON c.role = q.role AND "
            f"c.question_id = q.id AND c.ranking = '{TRAIN_RANKING}' "
            f"WHERE q.role IN ('train', 'blend'))",
        f"role, id, prompt, {option_columns()}, answer, context")}


def train_into(folder: Path, train: Callable[[Path], multiple_choice.TrainReport]
               ) -> tuple[multiple_choice.TrainReport, Path, str]:
    """Run ``train`` into a staging folder inside ``folder``, then keep its weights as
    ``folder``/<sha256[:16]> (a reader trained again to the same weights is stored once);
    the report, the kept folder and the weights' sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="training-", dir=folder))
    try:
        report = train(staging)
        digest = weights_sha256(staging)
        final = folder / digest[:16]
        if not final.exists():
            os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report, final, digest


def train(db: duckdb.DuckDBPyConnection, base: ResolvedModel, settings: TrainSettings,
          folder: Path, log: Callable[[str], None] = print) -> Work:
    """Fine-tune ``base`` on the train questions, evaluating on the blend questions after
    every epoch; keep the best weights in ``folder``/<sha256> and record them."""
    examples = reading_list(db, TRAIN_RANKING, roles=("train",)).pairs()
    if not examples:
        raise StepError("no train questions: set questions.train_paths and train_size")
    held_out = reading_list(db, TRAIN_RANKING, roles=("blend",)).pairs()
    report, final, digest = train_into(folder, lambda staging: multiple_choice.train(
        base, examples, staging, eval_examples=held_out, log=log, **asdict(settings)))
    latest(db)  # the table, as it now stands
    db.execute("INSERT INTO trained_readers VALUES "
               "('multiple_choice', ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?)",
               [stored_path(final), digest, base.reference, base.weights_sha256,
                settings.max_length, report.examples, report.steps, report.losses, report.seconds,
                json.dumps([vars(point) for point in report.curve]), report.best_epoch])
    return Work(digest, {"kind": settings.kind, "training_seconds": round(report.seconds, 1),
                         "examples": report.examples, "epochs": report.epochs_run,
                         **base.metadata()})


def _curve_table(curve: list[dict[str, Any]]) -> str:
    lines = ["| epoch | steps | train loss | blend accuracy | blend MAP@3 |",
             "|---|---|---|---|---|"]
    for point in curve:
        lines.append("| " + " | ".join("" if point[k] is None else f"{point[k]:.4g}"
                                       for k in ("epoch", "steps", "train_loss", "accuracy",
                                                 "map_at_3")) + " |")
    return "\n".join(lines)


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = db.execute("SELECT path, weights_sha256, base_model, examples, steps, losses, curve, "
                     f"best_epoch {LATEST}").fetchone()
    if row is None:
        return {}
    curve = json.loads(row[6]) if row[6] else []
    best = next((p for p in curve if p["epoch"] == row[7]), None)
    return {"path": row[0], "weights_sha256": row[1], "base_model": row[2],
            "train_questions": row[3], "steps": row[4], "best_epoch": row[7],
            "blend_accuracy": best["accuracy"] if best else None,
            "blend_map_at_3": best["map_at_3"] if best else None,
            "learning_curve": Markdown(_curve_table(curve)),
            "loss_curve": [round(x, 4) for x in row[5] or []]}
