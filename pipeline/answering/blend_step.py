"""The cheap blend as a step: fit on the blend questions, score every scored role, store.

The method (conditional logit, MAP@3-searched weights, a learned ranker or equal weights) is
chosen by cross-validation on the blend questions (:func:`pipeline.answering.blend.choose_blend`);
validation only measures the choice, and the measurement is reported, never used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import blend, logit_table, option_scores
from pipeline.metrics import average_precisions
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import content_version, markdown_preview, row_count

DDL = "CREATE OR REPLACE TABLE blend_weights (source VARCHAR, weight DOUBLE, method VARCHAR)"
ROLES_BLENDED = ("test", "validation", "blend")
Inputs = tuple[logit_table.LabelledLogits, dict[str, np.ndarray]]


def role_inputs(db: duckdb.DuckDBPyConnection, role: str, sources: Sequence[str]) -> Inputs:
    """A role's logits of every source, and the extra per-option features of the ranker."""
    labelled = logit_table.read_role(db, role, sources)
    signals = logit_table.read_role(db, role, logit_table.signal_sources(db)).sources
    retrieval = logit_table.retrieval_features(db, role, labelled.question_ids)
    if labelled.sources:
        absent = np.isnan(next(iter(labelled.sources.values())))
        retrieval = {name: np.where(absent, np.nan, array) for name, array in retrieval.items()}
    return labelled, {**signals, **retrieval}


def build(db: duckdb.DuckDBPyConnection, sources: Sequence[str], exclude: Sequence[str],
          folds: int, seed: int, log: Callable[[str], None] = print) -> Work:
    """Blend ``sources`` less ``exclude``; write ``blended_scores`` and ``blend_weights``."""
    unknown = sorted(set(exclude) - set(sources))
    if unknown:
        raise StepError(f"blend_weights.exclude names unknown sources {unknown}; the sources "
                        f"are {list(sources)}")
    blended = [source for source in sources if source not in exclude]
    if not blended:
        raise StepError("blend_weights.exclude leaves no source to blend")
    try:
        roles = {role: role_inputs(db, role, blended) for role in ROLES_BLENDED}
    except LookupError as exc:
        raise StepError(str(exc)) from exc
    fit, fit_extra = roles["blend"]
    choice = blend.choose_blend(fit.sources, fit.answers, fit_extra, folds=folds, seed=seed)
    rows = [("blend", qid, scores, False) for qid, scores in zip(
        fit.question_ids, choice.oof_log_probabilities, strict=True)]
    for role in ("test", "validation"):
        labelled, extra = roles[role]
        if labelled.question_ids:
            rows += [(role, qid, scores, False) for qid, scores in zip(
                labelled.question_ids, choice.fitted.log_probabilities(labelled.sources, extra),
                strict=True)]
    option_scores.write_scores(db, "blended_scores", rows)
    db.execute(DDL)
    # The learned ranker has no weights: its sources are listed with none.
    db.executemany("INSERT INTO blend_weights VALUES (?, ?, ?)",
                   [[source, choice.weights.get(source), choice.method] for source in blended])
    measured = measure_methods(choice, roles["blend"], roles["validation"])
    log(f"blend: {choice.method} (out-of-fold MAP@3 on the blend questions {choice.cv_map})")
    return Work(content_version(db, "blended_scores", option_scores.COLUMNS), {
        "method": choice.method, "temperature": round(choice.fitted.temperature, 4),
        **{f"cv_map_at_3_{k}": round(v, 4) for k, v in choice.cv_map.items()},
        **{f"validation_map_at_3_{k}": round(v, 4) for k, v in measured.items()},
        "blend_questions": len(fit.question_ids)})


def measure_methods(choice: blend.BlendChoice, fit: Inputs, valid: Inputs) -> dict[str, float]:
    """Validation MAP@3 of every candidate method refitted on all blend questions: reported so
    the choice can be judged, never used to make it."""
    (fit_logits, fit_extra), (valid_logits, valid_extra) = fit, valid
    if not valid_logits.question_ids or any(a is None for a in valid_logits.answers):
        return {}
    measured = {}
    for method in choice.cv_map:
        fitted = choice.fitted if method == choice.method else blend.fit_method(
            method, fit_logits.sources, fit_logits.answers, fit_extra)
        measured[method] = float(average_precisions(
            fitted.scores(valid_logits.sources, valid_extra), valid_logits.answers).mean())
    return measured


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    return {"weights": Markdown(markdown_preview(
        db, "SELECT source, round(weight, 4) AS weight, method FROM blend_weights "
            "ORDER BY weight DESC")), "row_count": row_count(db, "blended_scores")}
