"""The cascade as a step: escalate the questions the cheap blend is least sure of, read them
with the heavy reader (or reuse cached readings), combine, and write ``answer_scores``.

The escalation rule and the combination are fitted on the blend questions only
(:mod:`pipeline.answering.cascade`). What is fitted there holds only for questions like the
blend questions: a question of a kind (file format and number of options, see
:func:`pipeline.questions.question_table.kind_of`) that no blend question has is *unfamiliar*,
and the cheap blend's weights, its confidence and the combination say nothing about it. With
``unfamiliar="heavy"`` (the default) every unfamiliar test and validation question is read by the
heavy reader, whatever the share, and answered by it alone; ``"blend"`` treats them like the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import duckdb
import numpy as np

from pipeline.answering import cascade, logit_table, option_scores
from pipeline.answering.blend import log_softmax
from pipeline.answering.blend_step import ROLES_BLENDED
from pipeline.answering.reading_list import reading_list
from pipeline.models import ResolvedModel
from pipeline.questions.question import MAX_OPTIONS
from pipeline.steps import Work
from pipeline.tables import content_version

HEAVY_SOURCE = "heavy"  # the heavy reader, on llama.cpp or transformers
Unfamiliar = Literal["heavy", "blend"]
UNFAMILIAR_POLICIES = ("heavy", "blend")


def unfamiliar_ids(db: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Per scored role, the questions whose kind no blend question has (file order)."""
    rows = db.execute(
        "SELECT role, id FROM questions WHERE role IN ('test', 'validation') AND kind NOT IN "
        "(SELECT DISTINCT kind FROM questions WHERE role = 'blend') ORDER BY role, row, id"
    ).fetchall()
    out: dict[str, list[str]] = {role: [] for role in ROLES_BLENDED}
    for role, qid in rows:
        out[role].append(qid)
    return out


Cheap = dict[str, tuple[list[str], np.ndarray]]  # per role: ids, log-probabilities


def cheap_scores(db: duckdb.DuckDBPyConnection) -> Cheap:
    """Per blended role, the cheap blend's ids and calibrated log-probabilities."""
    return {role: option_scores.read_scores(db, "blended_scores", role)[:2]
            for role in ROLES_BLENDED}


def blend_answers(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(db.execute("SELECT id, answer FROM questions WHERE role = 'blend'").fetchall())


def choose(cheap: Cheap, rule: cascade.EscalationRule, share: float,
           strangers: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per role, the ids the heavy reader reads: the unfamiliar ones first, then at most
    ``share`` of the familiar ones, least sure first."""
    chosen = {}
    for role, (ids, logp) in cheap.items():
        apart = set(strangers[role])
        familiar = [i for i, qid in enumerate(ids) if qid not in apart]
        escalated = cascade.escalate(logp[familiar], rule, share) if familiar else []
        chosen[role] = [*strangers[role], *(ids[familiar[i]] for i in escalated)]
    return chosen


def answer(cheap: Cheap, answers: dict[str, str], heavy: dict[tuple[str, str], np.ndarray],
           strangers: dict[str, list[str]]
           ) -> tuple[list[tuple[str, str, np.ndarray, bool]], cascade.Combination]:
    """Every role's final scores, ``(role, id, scores, read)``: the cheap blend's where the
    heavy reader did not read, the heavy reader's alone for an unfamiliar question, else the
    combination fitted on the blend questions it read."""
    blend_ids, blend_logp = cheap["blend"]
    read_blend = [q for q in blend_ids if ("blend", q) in heavy]
    position = {q: i for i, q in enumerate(blend_ids)}
    combination = cascade.fit_combination(
        np.array([blend_logp[position[q]] for q in read_blend]).reshape(-1, MAX_OPTIONS),
        np.array([heavy[("blend", q)] for q in read_blend]).reshape(-1, MAX_OPTIONS),
        [answers[q] for q in read_blend])
    rows = []
    for role, (ids, logp) in cheap.items():
        apart = set(strangers[role])
        for qid, scores in zip(ids, logp, strict=True):
            read = heavy.get((role, qid))
            if read is None:
                final = scores
            elif qid in apart:
                final = log_softmax(read[None, :])[0]
            else:
                final = cascade.combine(scores[None, :], read[None, :], combination)[0]
            rows.append((role, qid, final, read is not None))
    return rows, combination


def build(db: duckdb.DuckDBPyConnection, share: float, ranking: str,
          settings: cascade.HeavySettings, model: ResolvedModel | None,
          log: Callable[[str], None] = print, unfamiliar: Unfamiliar = "heavy") -> Work:
    """Escalate at most ``share`` of each role's familiar questions (and, by ``unfamiliar``,
    every unfamiliar one), read those under ``ranking``'s contexts, and store every role's final
    scores (the cheap blend's where nothing was read)."""
    if unfamiliar not in UNFAMILIAR_POLICIES:
        raise ValueError(f"unfamiliar must be one of {UNFAMILIAR_POLICIES}, not {unfamiliar!r}")
    cheap = cheap_scores(db)
    answers = blend_answers(db)
    blend_ids, blend_logp = cheap["blend"]
    rule = cascade.fit_rule(blend_logp, [answers[q] for q in blend_ids])
    strangers = unfamiliar_ids(db) if unfamiliar == "heavy" else {r: [] for r in cheap}
    chosen = choose(cheap, rule, share, strangers)
    reading = cascade.HeavyReading(db, settings, model, log)
    heavy = reading.read({role: reading_list(db, ranking, roles=(role,)) for role in chosen},
                         chosen)
    rows, combination = answer(cheap, answers, heavy, strangers)
    option_scores.write_scores(db, "answer_scores", rows)
    keys = sorted(heavy)
    logit_table.write_logits(db, HEAVY_SOURCE, ranking, keys,
                             np.array([heavy[k] for k in keys]).reshape(-1, MAX_OPTIONS))
    unread = {role: sum((role, q) not in heavy for q in ids) for role, ids in strangers.items()}
    if any(unread.values()):
        log(f"the time budget left unfamiliar questions unread, answered by the cheap blend "
            f"fitted on other kinds of question: {unread}")
    return Work(content_version(db, "answer_scores", option_scores.COLUMNS),
                undone=reading.over_time, metadata={
        "rule_measure": rule.measure, **{f"rule_auc_{m}": round(v, 4)
                                         for m, v in rule.auc.items()},
        "share": share, "unfamiliar_policy": unfamiliar,
        **{f"{role}_unfamiliar": len(ids) for role, ids in strangers.items() if role != "blend"},
        **{f"{role}_unfamiliar_unread": n for role, n in unread.items() if role != "blend"},
        "combination_cheap": round(combination.cheap, 4),
        "combination_heavy": round(combination.heavy, 4),
        "combination_fitted": combination.fitted, **reading.metadata(),
        **({} if model is None else model.metadata())})


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    counts = dict(db.execute("SELECT role, count(*) FILTER (WHERE escalated) FROM answer_scores "
                             "GROUP BY role").fetchall())
    return {f"{role}_escalated": n for role, n in sorted(counts.items())}
