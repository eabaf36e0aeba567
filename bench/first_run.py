"""What a first run's minutes buy: minutes from a fresh clone against MAP@3, per candidate default.

A first run per candidate would take hours; this composes each candidate from what the working
area measured, so its figures are measurements, not guesses:

- the wall minutes of the latest successful ``answer_job`` run in the instance
  (``$DAGSTER_HOME``, as ``make run`` left it) and of its steps; the minutes of a cold install
  (``--install-minutes``: 6.8 measured) and of downloading and assembling the heavy reader
  (``--models-minutes``: 2.1 measured, for a base run that found it assembled), from
  docs/benchmarks.md;
- the heavy reader's seconds a question and the cascade's fixed cost (loading the model), from
  that run's cascade step;
- for each cascade candidate (the share of test and validation questions the heavy reader reads,
  the same for both so that the validation score estimates the submission's, and the share of
  blend questions it reads to fit the combination), MAP@3 on validation and on the labelled test
  questions, replayed with the cascade's own functions over heavy readings of every question
  (read through the cascade's per-question cache: the first call reads what the run did not,
  about 3.3 s each on two cores; a later call reads nothing);
- distillation: the minutes of its three steps and the score of the latest successful run in
  the instance that taught (``make run RUN_CONFIG=config/distillation.yaml``), if there is one.

    make run && .venv/bin/python bench/first_run.py [--shares 0 0.1 0.25 0.5 1]
        [--blend-shares 0.25 1] [--install-minutes 6.8]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import duckdb
import numpy as np
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from assets.answering import CascadeConfig
from assets.run_summary import materialization_metadata, step_seconds
from pipeline.answering import cascade, cascade_step
from pipeline.answering.reading_list import reading_list
from pipeline.metrics import Estimate, average_precisions, estimate
from pipeline.models import resolve
from pipeline.paths import work_dir
from resources import HeavyReader

# The heavy reader's wheels downloaded and assembled on a cold clone: the cascade took 10 min
# 57 s on 2026-12-02 for 143 questions at 3.4 s and 0.8 min of loading (docs/benchmarks.md).
COLD_MODELS_MINUTES = 2.1
DISTILLATION_STEPS = ("teacher_logits", "student_reader", "distillation_scorecard")


def step_minutes(instance: DagsterInstance, run: DagsterRun) -> dict[str, float]:
    return {step: spent / 60 for step, spent in step_seconds(instance, run.run_id).items()}


def op_config(run: DagsterRun, op: str) -> dict[str, Any]:
    """The config ``run`` gave ``op`` ({} where it gave none: the code's defaults)."""
    ops = run.run_config.get("ops", {}) if isinstance(run.run_config, dict) else {}
    return ops.get(op, {}).get("config", {}) or {}


def taught(run: DagsterRun) -> bool:
    """Whether ``run``'s config had the teacher label questions (distillation on)."""
    limit = op_config(run, "teacher_logits").get("max_questions", 0)
    return limit is None or limit > 0


def scored(final: dict[tuple[str, str], np.ndarray], role: str, ids: list[str],
           answers: dict[tuple[str, str], str]) -> Estimate | None:
    labelled = [q for q in ids if answers.get((role, q))]
    if not labelled:
        return None
    return estimate(average_precisions(np.array([final[(role, q)] for q in labelled]),
                                       [answers[(role, q)] for q in labelled]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="+", default=[0, 0.1, 0.25, 0.5, 1.0],
                        help="shares of test and validation questions the heavy reader reads")
    parser.add_argument("--blend-shares", type=float, nargs="+", default=[0.25, 1.0],
                        help="shares of blend questions it reads (the combination's fit)")
    parser.add_argument("--install-minutes", type=float, default=6.8,
                        help="a cold install (docs/benchmarks.md: 6 min 46 s)")
    parser.add_argument("--models-minutes", type=float, default=COLD_MODELS_MINUTES,
                        help="downloading and assembling the heavy reader on a cold clone, "
                        "which a base run after `make clean` did not do (0 if it did)")
    args = parser.parse_args()
    # make's default instance, when run outside make.
    os.environ.setdefault("DAGSTER_HOME", str(work_dir() / "dagster_home"))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="answer_job",
                                            statuses=[DagsterRunStatus.SUCCESS]))
        if not runs:
            raise SystemExit("no successful answer_job run in this instance: `make run` first")
        base = runs[0]
        minutes = step_minutes(instance, base)
        stats = instance.get_run_stats(base.run_id)
        wall = (stats.end_time - stats.start_time) / 60
        heavy_meta = materialization_metadata(instance, "cascade", base.run_id)
        teaching = next((r for r in runs if taught(r)), None)
        distillation = None
        if teaching is not None:
            spent = step_minutes(instance, teaching)
            distillation = (teaching.run_id, sum(spent.get(s, 0.0) for s in DISTILLATION_STEPS),
                            materialization_metadata(instance, "score", teaching.run_id))
    if "cascade" not in minutes or not heavy_meta.get("heavy_seconds_per_question"):
        raise SystemExit(f"run {base.run_id} has no cascade step that read a question")
    per_question = float(heavy_meta["heavy_seconds_per_question"])
    read_in_run = int(heavy_meta.get("heavy_read", 0))
    fixed = minutes["cascade"] - read_in_run * per_question / 60
    # The run's wall time (steps, checks and Dagster's own work between them) but the cascade
    # and distillation, which the candidates set.
    others = wall - minutes["cascade"] - sum(minutes.get(s, 0.0) for s in DISTILLATION_STEPS)
    distilled_in_base = sum(minutes.get(s, 0.0) for s in DISTILLATION_STEPS)

    with duckdb.connect(str(work_dir() / "warehouse.duckdb")) as db:
        cheap = cascade_step.cheap_scores(db)
        # Ids repeat across roles (two files numbered alike): answers are kept per role.
        answers = {(role, qid): answer for role, qid, answer in db.execute(
            "SELECT role, id, answer FROM questions WHERE role IN "
            "('blend', 'validation', 'test')").fetchall()}
        strangers = cascade_step.unfamiliar_ids(db)
        everything = {role: ids for role, (ids, _) in cheap.items()}
        heavy_reader = HeavyReader()  # the resource's defaults, as make run reads
        settings, model = heavy_reader.settings(None), resolve(heavy_reader.model)
        ranking = op_config(base, "cascade").get("ranking",
                                                  CascadeConfig.model_fields["ranking"].default)
        reading = cascade.HeavyReading(db, settings, model, name="heavy reader (bench)")
        heavy = reading.read({role: reading_list(db, ranking, roles=(role,))
                              for role in everything}, everything)
    blend_ids, blend_logp = cheap["blend"]
    blend_answers = {q: answers[("blend", q)] for q in blend_ids}
    rule = cascade.fit_rule(blend_logp, [blend_answers[q] for q in blend_ids])

    print(f"base: run {base.run_id}: {wall:.1f} min, of which the "
          f"cascade {minutes['cascade']:.1f} ({read_in_run} questions at {per_question:.2f} s, "
          f"{fixed:.1f} min to load); distillation steps {distilled_in_base:.1f} min; "
          f"install {args.install_minutes:.1f} min, models {args.models_minutes:.1f} min")
    print(f"heavy readings replayed: {len(heavy)} ({reading.read_now} read by this call, "
          f"{reading.reused} from the cache); questions: "
          + ", ".join(f"{role} {len(ids)}" for role, ids in everything.items()))
    print("\n| test and validation share | blend share | heavy questions | minutes from a "
          "clone | validation MAP@3 (95% interval) | test MAP@3 |\n|---|---|---|---|---|---|")
    for blend_share in args.blend_shares:
        for share in args.shares:
            chosen = cascade_step.choose(cheap, rule, share, strangers)
            chosen["blend"] = cascade_step.choose(cheap, rule, blend_share, strangers)["blend"]
            subset = {(role, q): heavy[(role, q)] for role, ids in chosen.items() for q in ids}
            rows, _ = cascade_step.answer(cheap, blend_answers, subset, strangers)
            final = {(role, q): scores for role, q, scores, _ in rows}
            valid = scored(final, "validation", everything["validation"], answers)
            test = scored(final, "test", everything["test"], answers)
            total = (args.install_minutes + args.models_minutes + others
                     + (fixed if subset else 0.0) + len(subset) * per_question / 60)
            valid_text = f"{valid.value:.3f} ({valid.low:.3f}-{valid.high:.3f})" if valid else "-"
            test_text = f"{test.value:.3f}" if test else "-"
            print(f"| {share:.0%} | {blend_share:.0%} | {len(subset)} | {total:.1f} | "
                  f"{valid_text} | {test_text} |")
    if distillation is None:
        print("\ndistillation: no run in this instance taught; `make run "
              "RUN_CONFIG=config/distillation.yaml` and run this again for its row")
    else:
        run_id, spent, score = distillation
        print(f"\ndistillation (run {run_id}): its three steps {spent:.1f} min; that run's "
              f"validation MAP@3 {score.get('map_at_3')}, test {score.get('test_map_at_3')}")


if __name__ == "__main__":
    main()
