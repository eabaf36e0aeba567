"""The cascade as a step: escalate the questions the cheap blend is least sure of, read them
with the heavy reader (or reuse cached readings), combine, and write ``answer_scores``.

The escalation rule and the combination are fitted on the blend questions only
(:mod:`pipeline.answering.cascade`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import cascade, logit_table, option_scores
from pipeline.answering.blend_step import ROLES_BLENDED
from pipeline.answering.reading_list import reading_list
from pipeline.models import ResolvedModel
from pipeline.questions.csv_format import LETTERS
from pipeline.steps import Work
from pipeline.tables import content_version

HEAVY_SOURCE = "causal_lm"


def build(db: duckdb.DuckDBPyConnection, share: float, ranking: str,
          settings: cascade.HeavySettings, model: ResolvedModel | None,
          log: Callable[[str], None] = print) -> Work:
    """Escalate at most ``share`` of each role, read those under ``ranking``'s contexts, and
    store every role's final scores (the cheap blend's where nothing was escalated)."""
    cheap = {role: option_scores.read_scores(db, "blended_scores", role)[:2]
             for role in ROLES_BLENDED}
    answers = dict(db.execute("SELECT id, answer FROM questions WHERE role = 'blend'"
                              ).fetchall())
    blend_ids, blend_logp = cheap["blend"]
    rule = cascade.fit_rule(blend_logp, [answers[q] for q in blend_ids])
    chosen = {role: [ids[i] for i in cascade.escalate(logp, rule, share)]
              for role, (ids, logp) in cheap.items()}
    reading = cascade.HeavyReading(db, settings, model, log)
    heavy = reading.read({role: reading_list(db, ranking, roles=(role,)) for role in chosen},
                         chosen)
    read_blend = [q for q in chosen["blend"] if ("blend", q) in heavy]
    combination = cascade.fit_combination(
        np.array([blend_logp[blend_ids.index(q)] for q in read_blend]).reshape(-1, len(LETTERS)),
        np.array([heavy[("blend", q)] for q in read_blend]).reshape(-1, len(LETTERS)),
        [answers[q] for q in read_blend])
    rows = []
    for role, (ids, logp) in cheap.items():
        for qid, scores in zip(ids, logp, strict=True):
            read = heavy.get((role, qid))
            final = scores if read is None else cascade.combine(
                scores[None, :], read[None, :], combination)[0]
            rows.append((role, qid, final, read is not None))
    option_scores.write_scores(db, "answer_scores", rows)
    keys = sorted(heavy)
    logit_table.write_logits(db, HEAVY_SOURCE, ranking, keys,
                             np.array([heavy[k] for k in keys]).reshape(-1, len(LETTERS)))
    return Work(content_version(db, "answer_scores", option_scores.COLUMNS), {
        "rule_measure": rule.measure, **{f"rule_auc_{m}": round(v, 4)
                                         for m, v in rule.auc.items()},
        "share": share, "combination_cheap": round(combination.cheap, 4),
        "combination_heavy": round(combination.heavy, 4),
        "combination_fitted": combination.fitted, **reading.metadata(),
        **({} if model is None else model.metadata())})


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    counts = dict(db.execute("SELECT role, count(*) FILTER (WHERE escalated) FROM answer_scores "
                             "GROUP BY role").fetchall())
    return {f"{role}_escalated": n for role, n in sorted(counts.items())}
