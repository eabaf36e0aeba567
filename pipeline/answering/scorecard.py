"""The distillation scorecard: the teacher, the gold-only student, the distilled student and the
compressed (int8) student side by side on the validation questions.

For each: MAP@3 with its 95% bootstrap interval, accuracy, seconds a question, tokens read a
question (the teacher's prompt tokens; the student's option and context-sentence tokens) and
size on disk. The students read every validation question; the teacher, at several seconds a
question on a CPU, reads the first ``teacher_questions`` of them through the reading cache (the
same readings the cascade makes with the same settings). Validation answers are only measured
here: nothing is chosen on them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import distillation, reading_cache
from pipeline.answering.cascade import HeavyReading
from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.readers import multiple_choice
from pipeline.answering.reading_list import reading_list
from pipeline.metrics import average_precisions, estimate, top1_hits
from pipeline.models import ResolvedModel
from pipeline.paths import recorded_path
from pipeline.steps import Markdown, Work
from pipeline.tables import content_version, option_columns

DDL = """CREATE OR REPLACE TABLE distillation_scorecard (
    reader VARCHAR, questions INTEGER, map_at_3 DOUBLE, map_at_3_low DOUBLE,
    map_at_3_high DOUBLE, accuracy DOUBLE, seconds_per_question DOUBLE,
    tokens_per_question DOUBLE, size_mb DOUBLE, weights VARCHAR)"""
COLUMNS = ("reader, questions, map_at_3, map_at_3_low, map_at_3_high, accuracy, "
           "seconds_per_question, tokens_per_question, size_mb, weights")


@dataclass(frozen=True)
class Row:
    reader: str
    questions: int
    map_at_3: float
    map_at_3_low: float
    map_at_3_high: float
    accuracy: float
    seconds_per_question: float | None
    tokens_per_question: float | None
    size_mb: float
    weights: str


def _measured(reader: str, logits: np.ndarray, answers: list[str], seconds: float | None,
              tokens: float | None, size_mb: float, weights: str) -> Row:
    est = estimate(average_precisions(logits, answers))
    right = top1_hits(logits, answers)
    return Row(reader, est.n, est.value, est.low, est.high, float(right.mean()), seconds,
               tokens, size_mb, weights)


def folder_mb(folder: Path) -> float:
    """Size of a reader's weight files (safetensors) in MB."""
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e6


def quantized_mb(scorer: Any) -> float:
    """Size of an int8-quantised scorer's state, as torch saves it, in MB."""
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "student.pt"
        torch.save(scorer.state_dict(), path)
        return path.stat().st_size / 1e6


def student_rows(path: Path, max_length: int, items: list[multiple_choice.Example],
                 answers: list[str], name: str, weights: str, batch_size: int = 8
                 ) -> list[Row]:
    """The student at ``path`` in fp32 and (for the distilled one) int8, each timed over the
    same questions in this process, one after the other."""
    rows = []
    runtimes = ("fp32", "int8") if name == "distilled" else ("fp32",)
    for runtime in runtimes:
        reader = multiple_choice.MultipleChoiceReader(path, batch_size=batch_size,
                                                      device="cpu", max_length=max_length,
                                                      runtime=runtime)
        started = time.perf_counter()
        logits = reader.score_many(items)
        seconds = (time.perf_counter() - started) / max(len(items), 1)
        tokens = multiple_choice.tokens_read(reader.tokenizer, items, max_length) / len(items)
        size = folder_mb(path) if runtime == "fp32" else quantized_mb(reader.scorer)
        label = f"{name} student" if runtime == "fp32" else f"{name} student, int8"
        rows.append(_measured(label, logits, answers, seconds, tokens, size, weights))
    return rows


def build(db: duckdb.DuckDBPyConnection, ranking: str, model: ResolvedModel | None,
          settings: HeavySettings, teacher_questions: int | None,
          log: Callable[[str], None] = print) -> Work:
    """Measure every reader of the distillation on the validation questions under ``ranking``'s
    contexts and replace the ``distillation_scorecard`` table."""
    items = reading_list(db, ranking, roles=("validation",))
    pairs = items.pairs()
    answers = [q.answer for q in items.questions]
    if not pairs or any(a is None for a in answers):
        return _write(db, [], {"note": "no labelled validation questions"})
    rows: list[Row] = []
    if model is not None and teacher_questions != 0:
        chosen = [qid for _, qid in items.keys[:teacher_questions]]
        reading = HeavyReading(db, settings, model, log, name="teacher on validation")
        read = reading.read({"validation": items}, {"validation": chosen})
        kept = [i for i, key in enumerate(items.keys) if key in read]
        item_keys = [reading_cache.item_key(*pairs[i]) for i in kept]
        seconds, tokens = reading_cache.costs(db, reading.key or "", item_keys)
        size = (model.path / model.file).stat().st_size if model.file else sum(
            f.stat().st_size for f in model.path.glob("*.safetensors"))
        rows.append(_measured("teacher", np.array([read[items.keys[i]] for i in kept]),
                              [answers[i] for i in kept], seconds, tokens, size / 1e6,
                              model.weights_sha256))
    found = distillation.candidates(db)
    gold = next((c for c in found if c["kind"] == "gold"), None)
    distilled = max((c for c in found if c["kind"] == "distilled"),
                    key=lambda c: c["blend_map_at_3"] or 0.0, default=None)
    for name, candidate in (("gold-only", gold), ("distilled", distilled)):
        if candidate is not None:
            log(f"scoring the {name} student on {len(pairs)} validation questions")
            rows += student_rows(recorded_path(candidate["path"]), candidate["max_length"], pairs,
                                 answers, name, candidate["weights_sha256"])
    chosen = distillation.student(db)
    return _write(db, rows, {"blend_reads": next(
        (c["kind"] for c in found if chosen and c["weights_sha256"] == chosen[2]), "gold")})


def inputs(db: duckdb.DuckDBPyConnection, ranking: str) -> dict[str, str | None]:
    """What the scorecard measures: the validation questions with their contexts under
    ``ranking``, and the students (by weights). A new test file does not concern it."""
    return {"validation": content_version(
        db, f"(SELECT q.id, q.prompt, {option_columns('q.')}, q.answer, c.context "
            f"FROM questions q LEFT JOIN packed_contexts c ON c.role = q.role AND "
            f"c.question_id = q.id AND c.ranking = '{ranking}' WHERE q.role = 'validation')",
        f"id, prompt, {option_columns()}, answer, context"),
        "students": ",".join(c["weights_sha256"] for c in distillation.candidates(db))}


def _write(db: duckdb.DuckDBPyConnection, rows: list[Row], extra: dict[str, Any]) -> Work:
    db.execute(DDL)
    for row in rows:
        db.execute("INSERT INTO distillation_scorecard VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   list(vars(row).values()))
    return Work(content_version(db, "distillation_scorecard", COLUMNS), extra)


def _key(reader: str) -> str:
    return reader.replace(" student", "").replace(", ", "_").replace("-", "_")


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The scorecard as a table, and each reader's figures as numbers the UI plots."""
    try:
        rows = db.execute(f"SELECT {COLUMNS} FROM distillation_scorecard").fetchall()
    except duckdb.CatalogException:
        return {}
    lines = ["| reader | questions | MAP@3 | 95% interval | accuracy | s / question | "
             "tokens / question | MB on disk |", "|---|---|---|---|---|---|---|---|"]
    plotted: dict[str, Any] = {}
    for r in rows:
        seconds = "" if r[6] is None else f"{r[6]:.3f}"
        tokens = "" if r[7] is None else f"{r[7]:.0f}"
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.3f} to {r[4]:.3f} | {r[5]:.3f} | "
                     f"{seconds} | {tokens} | {r[8]:.1f} |")
        key = _key(r[0])
        plotted |= {f"{key}_map_at_3": round(r[2], 4), f"{key}_accuracy": round(r[5], 4),
                    f"{key}_seconds_per_question": None if r[6] is None else round(r[6], 4),
                    f"{key}_tokens_per_question": None if r[7] is None else round(r[7], 1),
                    f"{key}_size_mb": round(r[8], 1)}
    return {"scorecard": Markdown("\n".join(lines)),
            **{k: v for k, v in plotted.items() if v is not None}}
