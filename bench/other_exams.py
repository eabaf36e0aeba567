"""Public exams the defaults were never fitted on, answered through the whole pipeline.

For each benchmark file (ARC-Easy, OpenBookQA, SciQ, MMLU dev+validation: JSON lines in their
own formats, all labelled, none used to fit or choose anything), run the answer job with that
file as the test set (its first ``--questions``), then compare on those questions, from the
warehouse the run left:

* the cheap blend alone (fitted on the Kaggle-style blend questions),
* the confidence cascade as if these questions were like the blend questions, at 25 % and 50 %
  (the rule and the combination the run fitted on the blend questions),
* the heavy reader alone (Qwen2.5-Coder-1.5B, which the default policy reads every question of
  an unfamiliar kind with),
* the pipeline's answers (the default policy),

with top-1 accuracy and MAP@3 (95 % bootstrap intervals) per set, the Kaggle-style validation
MAP@3 of the same run, and the submission rows that name an option their question does not
have. The validation, blend and train questions are the default ones (stem_1k): only the test
file changes, and the readings of the heavy reader are cached, so later sets reuse the
validation and blend readings.

    .venv/bin/python bench/other_exams.py [--questions 100] [--sets arc_easy_validation ...]
    .venv/bin/python bench/other_exams.py --evaluate-only   # the warehouse as it is
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np

from pipeline.answering import blend, cascade, option_scores
from pipeline.answering.cascade_step import HEAVY_SOURCE
from pipeline.metrics import average_precisions, estimate, top1_hits
from pipeline.paths import work_dir
from pipeline.questions.question import LETTERS, MAX_OPTIONS
from pipeline.tables import option_columns

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"
SETS = ("arc_easy_validation", "openbookqa_validation", "sciq_validation",
        "mmlu_stem_dev_validation")
SHARES = (0.25, 0.5)
# A first run on a fresh working area spends most of its time on the teacher and the
# distillation scorecard, neither of which the answers of a test file depend on.
RUN_CONFIG = """ops:
  questions: {{config: {{test_path: "{test}", test_limit: {limit}}}}}
  teacher_logits: {{config: {{max_questions: 0}}}}
  distillation_scorecard: {{config: {{teacher_questions: 0}}}}
"""


def run(test: Path, limit: int) -> None:
    """The answer job with ``test`` as the test file, through make (the README's command); its
    log goes to ``var/other_exams-<set>.log``."""
    log = work_dir() / f"other_exams-{test.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write(RUN_CONFIG.format(test=test, limit=limit))
    print(f"make run RUN_CONFIG=... (test_path {test.name}, test_limit {limit}); log: {log}",
          flush=True)
    try:
        with open(log, "w") as out:
            subprocess.run(["make", "run", f"RUN_CONFIG={config.name}"], cwd=ROOT, check=True,
                           stdout=out, stderr=subprocess.STDOUT)
    finally:
        os.unlink(config.name)


def _heavy(db: duckdb.DuckDBPyConnection, role: str, ids: list[str]) -> np.ndarray:
    rows = dict((r[0], r[1:]) for r in db.execute(
        f"SELECT question_id, {option_columns()} FROM reader_logits WHERE reader = ? AND "
        "role = ?", [HEAVY_SOURCE, role]).fetchall())
    return np.array([rows.get(qid, [None] * MAX_OPTIONS) for qid in ids], dtype=np.float64)


def policies(db: duckdb.DuckDBPyConnection) -> tuple[list, dict[str, np.ndarray]]:
    """The test questions (id, set, options, answer) and each policy's scores of them."""
    questions = db.execute("SELECT id, source, options, answer FROM questions WHERE role = "
                           "'test' ORDER BY row, id").fetchall()
    ids, cheap, _ = option_scores.read_scores(db, "blended_scores", "test")
    final_ids, final, _ = option_scores.read_scores(db, "answer_scores", "test")
    assert ids == final_ids == [q[0] for q in questions]
    blend_ids, blend_logp, _ = option_scores.read_scores(db, "blended_scores", "blend")
    answers = dict(db.execute("SELECT id, answer FROM questions WHERE role = 'blend'").fetchall())
    rule = cascade.fit_rule(blend_logp, [answers[q] for q in blend_ids])
    blend_heavy = _heavy(db, "blend", blend_ids)
    read = ~np.isnan(blend_heavy).all(axis=1)
    read_answers = [answers[q] for q, r in zip(blend_ids, read, strict=True) if r]
    combination = cascade.fit_combination(blend_logp[read], blend_heavy[read], read_answers)
    heavy = _heavy(db, "test", ids)
    out = {"cheap blend": cheap}
    for share in SHARES:
        scores = cheap.copy()
        for i in cascade.escalate(cheap, rule, share):
            if not np.isnan(heavy[i]).all():
                scores[i] = cascade.combine(cheap[i][None], heavy[i][None], combination)[0]
        out[f"cascade {share:.0%}"] = scores
    if not np.isnan(heavy).all(axis=1).any():
        out["heavy reader alone"] = heavy
    out["pipeline (default policy)"] = final
    return questions, out


def phantom_rows(scores: np.ndarray, counts: np.ndarray) -> int:
    """Prediction rows naming a letter past their question's options."""
    return sum(any(LETTERS.index(x) >= n for x in p.split())
               for p, n in zip(blend.predictions(scores), counts, strict=True))


def evaluate(db: duckdb.DuckDBPyConnection) -> None:
    questions, scored = policies(db)
    counts = np.array([q[2] for q in questions])
    validation = db.execute("SELECT map_at_3, low, high FROM scores WHERE name = 'blend'"
                            ).fetchone()
    for source in sorted({q[1] for q in questions}):
        keep = [i for i, q in enumerate(questions) if q[1] == source]
        gold = [questions[i][3] for i in keep]
        options = sorted({questions[i][2] for i in keep})
        print(f"\n{source}: {len(keep)} questions, {options[0]}-{options[-1]} options; "
              f"Kaggle-style validation MAP@3 of this run {validation[0]:.3f} "
              f"[{validation[1]:.3f}, {validation[2]:.3f}]")
        print(f"  {'policy':28}{'accuracy':>22}{'MAP@3':>22}{'phantom rows':>14}")
        for name, scores in scored.items():
            acc = estimate(top1_hits(scores[keep], gold))
            ap = estimate(average_precisions(scores[keep], gold))
            print(f"  {name:28}{acc.value:8.3f} [{acc.low:.3f}, {acc.high:.3f}]"
                  f"{ap.value:8.3f} [{ap.low:.3f}, {ap.high:.3f}]"
                  f"{phantom_rows(scores[keep], counts[keep]):14d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100, help="questions of each set")
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    warehouse = work_dir() / "warehouse.duckdb"
    for name in [] if args.evaluate_only else args.sets:
        run(BENCHMARKS / f"{name}.jsonl", args.questions)
        with duckdb.connect(str(warehouse), read_only=True) as db:
            evaluate(db)
        sys.stdout.flush()
    if args.evaluate_only:
        with duckdb.connect(str(warehouse), read_only=True) as db:
            evaluate(db)


if __name__ == "__main__":
    main()
