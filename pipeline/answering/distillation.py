"""The distilled student: the multiple-choice reader trained on the teacher's answers as well as
the gold ones, and the choice of the student the blend reads.

Why: the heavy reader (the teacher) is far stronger than the multiple-choice encoder and far too
slow to read every question on a CPU; a student that learns its distribution (Hinton et al.'s
knowledge distillation: cross-entropy on the gold answer mixed with the KL divergence to the
teacher's softened distribution) could give every question a better reader at the cheap
reader's cost, and learns from questions nobody labelled.

Every mix (``gold_weight`` of cross-entropy, the rest KL at ``temperature``) is trained from the
same base encoder with the same settings as the gold-only student (``trained_reader``), and every
one is scored on the blend questions after each epoch. The **student** the blend reads is the
candidate with the best blend MAP@3, the gold-only student included: the mix and the temperature
are chosen on the blend questions, never on validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipeline.answering import reader_training, teacher
from pipeline.answering.readers import multiple_choice
from pipeline.answering.reading_list import reading_list
from pipeline.models import ResolvedModel
from pipeline.paths import recorded_path, stored_path
from pipeline.questions.roles import TRAIN_RANKING
from pipeline.steps import Markdown, StepError, Work

STUDENTS_DDL = """CREATE TABLE IF NOT EXISTS students (
    chosen_at TIMESTAMPTZ, kind VARCHAR, path VARCHAR, weights_sha256 VARCHAR,
    max_length INTEGER, gold_weight DOUBLE, temperature DOUBLE, blend_map_at_3 DOUBLE,
    candidates JSON)"""
LATEST = "FROM students ORDER BY chosen_at DESC LIMIT 1"


@dataclass(frozen=True)
class Mix:
    """One distillation objective: ``gold_weight`` of cross-entropy on the gold answer, the rest
    KL divergence to the teacher at ``temperature``."""

    gold_weight: float
    temperature: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.gold_weight < 1.0:
            raise StepError(f"a distillation mix needs a gold weight in [0, 1), not "
                            f"{self.gold_weight} (1 is the gold-only student: trained_reader)")
        if self.temperature <= 0:
            raise StepError(f"a teacher temperature must be positive, not {self.temperature}")

    @property
    def name(self) -> str:
        return f"distilled gold {self.gold_weight:g} T {self.temperature:g}"


@dataclass(frozen=True)
class Candidate:
    """A student that could be chosen, and how it did on the blend questions."""

    kind: str
    path: str
    weights_sha256: str
    max_length: int
    gold_weight: float
    temperature: float | None
    blend_map_at_3: float | None
    blend_accuracy: float | None
    curve: list[dict[str, Any]]
    seconds: float


def mixes(gold_weights: Sequence[float], temperatures: Sequence[float]) -> list[Mix]:
    """Every (gold weight, temperature) pair, in the order given."""
    return [Mix(w, t) for w in gold_weights for t in temperatures]


def training_examples(db: duckdb.DuckDBPyConnection
                      ) -> tuple[list[multiple_choice.Example], list[Any]]:
    """The pool's questions that carry a target (a gold answer, the teacher's distribution or
    both), with their training contexts, and the teacher's row for each (None: none)."""
    labels = teacher.labels(db)
    items = teacher.pool(db)
    examples, rows = [], []
    for key, question, context in zip(items.keys, items.questions, items.contexts, strict=True):
        row = labels.get(key)
        if row is None and question.answer is None:
            continue
        examples.append((question, context))
        rows.append(row)
    return examples, rows


def _gold_candidate(db: duckdb.DuckDBPyConnection) -> Candidate:
    described = reader_training.describe(db)
    trained = reader_training.latest(db)
    if trained is None or not trained[0].is_dir():
        raise StepError("the gold-only student is not trained: materialise trained_reader")
    return Candidate("gold", stored_path(trained[0]), trained[2], trained[1], 1.0, None,
                     described.get("blend_map_at_3"), described.get("blend_accuracy"),
                     [], 0.0)


def build(db: duckdb.DuckDBPyConnection, base: ResolvedModel,
          settings: reader_training.TrainSettings, wanted: Sequence[Mix], folder: Path,
          log: Callable[[str], None] = print) -> Work:
    """Train one student per mix on the pool (gold and teacher), score each on the blend
    questions, and record the best of them and the gold-only student as the student."""
    gold = _gold_candidate(db)
    examples, rows = training_examples(db)
    taught = sum(row is not None for row in rows)
    candidates = [gold]
    if taught and wanted:
        held_out = reading_list(db, TRAIN_RANKING, roles=("blend",)).pairs()
        for mix in wanted:
            log(f"training the student {mix.name} on {len(examples)} questions, {taught} with "
                "the teacher's distribution")
            candidates.append(_train(base, settings, mix, examples, rows, held_out, folder,
                                     log))
    elif wanted:
        log("no question carries the teacher's labels (teacher_logits read none): the "
            "gold-only student is the student")
    chosen = max(candidates, key=lambda c: (c.blend_map_at_3 or 0.0, c is gold))
    db.execute(STUDENTS_DDL)
    db.execute("INSERT INTO students VALUES (now(), ?, ?, ?, ?, ?, ?, ?, ?)",
               [chosen.kind, chosen.path, chosen.weights_sha256, chosen.max_length,
                chosen.gold_weight, chosen.temperature, chosen.blend_map_at_3,
                json.dumps([asdict(c) for c in candidates])])
    log(f"the student is {chosen.kind} (blend MAP@3 {chosen.blend_map_at_3})")
    return Work(chosen.weights_sha256, {"teacher_rows": taught,
                                        "training_questions": len(examples),
                                        **base.metadata()})


def _train(base: ResolvedModel, settings: reader_training.TrainSettings, mix: Mix,
           examples: list[multiple_choice.Example], rows: list[Any],
           held_out: list[multiple_choice.Example], folder: Path,
           log: Callable[[str], None]) -> Candidate:
    report, final, digest = reader_training.train_into(
        folder, lambda staging: multiple_choice.train(
            base, examples, staging, eval_examples=held_out, log=log, teacher=rows,
            gold_weight=mix.gold_weight, temperature=mix.temperature, **asdict(settings)))
    best = next((p for p in report.curve if p.epoch == report.best_epoch), None)
    return Candidate("distilled", stored_path(final), digest, settings.max_length, mix.gold_weight,
                     mix.temperature, best.map_at_3 if best else None,
                     best.accuracy if best else None, [vars(p) for p in report.curve],
                     report.seconds)


def student(db: duckdb.DuckDBPyConnection) -> tuple[Path, int, str] | None:
    """Folder, max_length and weights sha256 of the student the blend reads: the latest
    choice, or before any, the gold-only student."""
    db.execute(STUDENTS_DDL)
    row = db.execute(f"SELECT path, max_length, weights_sha256 {LATEST}").fetchone()
    return (recorded_path(row[0]), row[1], row[2]) if row else reader_training.latest(db)


def candidates(db: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The candidates of the latest choice (the gold-only student first)."""
    db.execute(STUDENTS_DDL)
    row = db.execute(f"SELECT candidates {LATEST}").fetchone()
    return json.loads(row[0]) if row else []


def state(db: duckdb.DuckDBPyConnection, base: ResolvedModel) -> dict[str, Any]:
    """Whether every candidate's weights are still on disk, and the base weights by hash."""
    return {"weights_present": all(recorded_path(c["path"]).is_dir() for c in candidates(db)),
            "base_weights_sha256": base.weights_sha256}


def inputs(db: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """What the students learn from and are chosen on: the train and blend questions with
    their contexts, the teacher's labels, and the gold-only student."""
    gold = reader_training.latest(db)
    return {**reader_training.training_inputs(db),
            **teacher.pool_inputs(db, teacher.POOL_ROLES),
            "teacher": teacher.stored_version(db), "gold_student": gold[2] if gold else None}


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    db.execute(STUDENTS_DDL)
    row = db.execute(f"SELECT kind, path, weights_sha256, gold_weight, temperature, "
                     f"blend_map_at_3 {LATEST}").fetchone()
    if row is None:
        return {}
    found = candidates(db)
    lines = ["| student | gold weight | temperature | best epoch's blend accuracy | "
             "blend MAP@3 | training s |", "|---|---|---|---|---|---|"]
    for c in found:
        lines.append(f"| {c['kind']} | {c['gold_weight']:g} | "
                     f"{'' if c['temperature'] is None else format(c['temperature'], 'g')} | "
                     f"{_number(c['blend_accuracy'])} | {_number(c['blend_map_at_3'])} | "
                     f"{c['seconds']:.0f} |")
    curves = ["| student | epoch | train loss | blend MAP@3 |", "|---|---|---|---|"]
    for c in found:
        for p in c["curve"]:
            curves.append(f"| gold {c['gold_weight']:g} T {c['temperature']:g} | {p['epoch']} "
                          f"| {_number(p['train_loss'])} | {_number(p['map_at_3'])} |")
    return {"student": row[0], "path": row[1], "weights_sha256": row[2],
            "gold_weight": row[3], "temperature": row[4], "blend_map_at_3": row[5],
            "candidates": Markdown("\n".join(lines)),
            **({"learning_curves": Markdown("\n".join(curves))} if len(curves) > 2 else {})}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
