"""Retrieval quality and re-run cost of the pipeline's current warehouse.

Prints, per ranking, recall@1, @5 and @20 of each validation question's gold passage (the corpus
page its question was written from) and the share of questions whose packed context holds it,
with a 95% bootstrap interval; the same for the candidate set; then the wall time of a no-change
re-run of the whole job through ``dagster job execute``, against the persistent instance.

    make run && .venv/bin/python bench/retrieval.py [--no-rerun]
"""

import argparse
import os
import subprocess
import time

import duckdb

from assets.rankings import RANKINGS as RANKING_ASSETS
from pipeline.paths import PROJECT_ROOT, work_dir
from pipeline.rankings.context_table import gold_in_candidates, retrieval_quality

RANKINGS = tuple(RANKING_ASSETS)  # the rankings' names, as the assets define them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=str(work_dir() / "warehouse.duckdb"))
    parser.add_argument("--no-rerun", action="store_true", help="skip the re-run timing")
    args = parser.parse_args()
    with duckdb.connect(args.warehouse, read_only=True) as db:
        share, questions = gold_in_candidates(db)
        if share is None:
            print("no validation question with a gold passage: nothing to measure")
            return
        print(f"validation questions with a gold passage: {questions}; "
              f"gold among the candidates: {share:.3f}")
        print(f"{'ranking':15}{'R@1':>7}{'R@5':>7}{'R@20':>7}{'in context':>12}{'95% CI':>16}")
        for ranking in RANKINGS:
            q = retrieval_quality(db, ranking)
            if not q:
                print(f"{ranking:15}  (not materialised)")
                continue
            print(f"{ranking:15}{q['recall_at_1']:7.3f}{q['recall_at_5']:7.3f}"
                  f"{q['recall_at_20']:7.3f}{q['gold_in_context']:12.3f}"
                  f"   [{q['gold_in_context_low']:.3f}, {q['gold_in_context_high']:.3f}]")
    if not args.no_rerun:
        env = {**os.environ, "DAGSTER_HOME": str(work_dir() / "dagster_home")}
        started = time.perf_counter()
        subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "dagster"), "job", "execute", "-m",
                        "definitions", "-j", "answer_job"], check=True, env=env,
                       cwd=PROJECT_ROOT, capture_output=True)
        print(f"no-change re-run of answer_job: {time.perf_counter() - started:.1f}s wall")


if __name__ == "__main__":
    main()
