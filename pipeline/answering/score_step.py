"""The run's score as a step: MAP@3 on the validation questions, with a 95% bootstrap
interval, of the answers, of the cheap blend, of every (reader, ranking) source and of the
heavy reader on the questions it read; each question's rank of its correct answer; and MAP@3
of the test answers when the test file is labelled. Stored in ``scores`` and
``score_gold_ranks``, which the lineage command compares between two materialisations.

``scores_by_set`` breaks the answers down by question set (a file's stem) for every labelled
role: MAP@3 and top-1 accuracy with their intervals, and how many options the set's questions
have. Exams of four options and of five are not comparable on one number: chance is 0.25
against 0.2 top-1 (0.52 against 0.46 MAP@3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np

from pipeline.answering import logit_table, option_scores, scoring
from pipeline.answering.cascade_step import HEAVY_SOURCE
from pipeline.metrics import average_precisions, estimate, top1_hits
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import content_version, option_columns

SCORE_DDL = """CREATE OR REPLACE TABLE scores (name VARCHAR, map_at_3 DOUBLE, low DOUBLE,
    high DOUBLE, questions INTEGER)"""
GOLD_DDL = "CREATE OR REPLACE TABLE score_gold_ranks (question_id VARCHAR, gold_rank INTEGER)"
BY_SET_DDL = """CREATE OR REPLACE TABLE scores_by_set (role VARCHAR, question_set VARCHAR,
    questions INTEGER, options VARCHAR, map_at_3 DOUBLE, map_low DOUBLE, map_high DOUBLE,
    accuracy DOUBLE, accuracy_low DOUBLE, accuracy_high DOUBLE)"""
LABELLED_TEST = "test (labelled test file)"


def heavy_on_escalated(db: duckdb.DuckDBPyConnection, ids: Sequence[str],
                       answers: Sequence[str], cheap: np.ndarray) -> dict[str, np.ndarray]:
    """The heavy reader and the cheap blend on the validation questions it read (MAP@3 of the
    two on the same questions: what escalating them bought)."""
    rows = dict(db.execute(
        f"SELECT question_id, [{option_columns()}] FROM reader_logits WHERE reader = ? "
        "AND role = 'validation'", [HEAVY_SOURCE]).fetchall())
    keep = [i for i, qid in enumerate(ids) if qid in rows]
    if not keep:
        return {}
    heavy = np.array([rows[ids[i]] for i in keep], dtype=np.float64)
    gold = [answers[i] for i in keep]
    return {f"{HEAVY_SOURCE} (escalated only)": average_precisions(heavy, gold),
            "cheap_blend (same questions)": average_precisions(cheap[keep], gold)}


def build(db: duckdb.DuckDBPyConnection, sources: Sequence[str]) -> Work:
    ids, final, _ = option_scores.read_scores(db, "answer_scores", "validation")
    cheap_ids, cheap, _ = option_scores.read_scores(db, "blended_scores", "validation")
    labelled = logit_table.read_role(db, "validation", sources)
    if not (ids == cheap_ids == labelled.question_ids):
        raise StepError("answers, blend and logits cover different validation questions; "
                        "materialise blend_weights and the cascade again")
    result = scoring.score(ids, labelled.answers, final,
                           {"cheap_blend": cheap, **labelled.sources})
    estimates = dict(result.estimates)
    for name, values in heavy_on_escalated(db, ids, labelled.answers, cheap).items():
        estimates[name] = estimate(values)
    test_ids, test_final, _ = option_scores.read_scores(db, "answer_scores", "test")
    test_answers = [a for (a,) in db.execute(
        "SELECT answer FROM questions WHERE role = 'test' ORDER BY row, id").fetchall()]
    if test_ids and all(a is not None for a in test_answers):
        estimates[LABELLED_TEST] = estimate(average_precisions(test_final, test_answers))
    db.execute(SCORE_DDL)
    db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)",
                   [[name, e.value, e.low, e.high, e.n] for name, e in estimates.items()])
    db.execute(GOLD_DDL)
    db.executemany("INSERT INTO score_gold_ranks VALUES (?, ?)", list(result.gold_ranks.items()))
    db.execute(BY_SET_DDL)
    db.executemany(f"INSERT INTO scores_by_set VALUES ({', '.join('?' * 10)})",
                   by_set(db, "validation") + by_set(db, "test"))
    return Work(content_version(db, "scores", "name, map_at_3, low, high") + "/"
                + content_version(db, "score_gold_ranks", "question_id, gold_rank") + "/"
                + content_version(db, "scores_by_set", "role, question_set, map_at_3, accuracy"))


def by_set(db: duckdb.DuckDBPyConnection, role: str) -> list[list[Any]]:
    """Per question set of a labelled role: questions, option counts, MAP@3 and accuracy with
    their intervals (a role with an unanswered question is not scored)."""
    ids, final, _ = option_scores.read_scores(db, "answer_scores", role)
    rows = db.execute("SELECT id, source, options, answer FROM questions WHERE role = ? "
                      "ORDER BY row, id", [role]).fetchall()
    if not ids or any(r[3] is None for r in rows):
        return []
    out = []
    for source in sorted({r[1] for r in rows}):
        keep = [i for i, r in enumerate(rows) if r[1] == source]
        counts = sorted({rows[i][2] for i in keep})
        gold = [rows[i][3] for i in keep]
        ap = estimate(average_precisions(final[keep], gold))
        hits = estimate(top1_hits(final[keep], gold))
        options = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        out.append([role, source, len(keep), options, ap.value, ap.low, ap.high,
                    hits.value, hits.low, hits.high])
    return out


def describe(db: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """MAP@3 and interval of the answers (numbers the UI plots across runs), a table of every
    source, and the gold ranks (what the lineage command compares)."""
    rows = db.execute("SELECT name, map_at_3, low, high, questions FROM scores "
                      "ORDER BY name = 'blend' DESC, map_at_3 DESC").fetchall()
    by_name = {r[0]: r for r in rows}
    _, value, low, high, questions = by_name["blend"]
    table = ["| source | MAP@3 | 95% interval | questions |", "|---|---|---|---|"] + [
        f"| {name} | {v:.4f} | {lo:.4f} to {hi:.4f} | {n} |" for name, v, lo, hi, n in rows]
    extra: dict[str, Any] = {}
    if "cheap_blend" in by_name:
        extra["cheap_blend_map_at_3"] = round(by_name["cheap_blend"][1], 4)
    if test := by_name.get(LABELLED_TEST):
        extra |= {"test_map_at_3": round(test[1], 4), "test_map_at_3_low": round(test[2], 4),
                  "test_map_at_3_high": round(test[3], 4)}
    ranks = dict(db.execute("SELECT question_id, gold_rank FROM score_gold_ranks").fetchall())
    sets = db.execute("SELECT * FROM scores_by_set ORDER BY role, question_set").fetchall()
    set_table = ["| role | question set | questions | options | MAP@3 | 95% | accuracy | 95% |",
                 "|---|---|---|---|---|---|---|---|"] + [
        f"| {r} | {s} | {n} | {o} | {m:.4f} | {ml:.3f}-{mh:.3f} | {a:.4f} | {al:.3f}-{ah:.3f} |"
        for r, s, n, o, m, ml, mh, a, al, ah in sets]
    return {"map_at_3": round(value, 4), "map_at_3_low": round(low, 4),
            "map_at_3_high": round(high, 4), "validation_questions": questions, **extra,
            "map_at_3_by_source": {r[0]: round(r[1], 4) for r in rows},
            "table": Markdown("\n".join(table)), "by_question_set": Markdown("\n".join(set_table)),
            "gold_ranks": ranks}
