"""After a command-line run: the minutes each step took, longest first, and where the submission
and the score are (``make run`` calls ``python -m assets.run_summary`` when the job ends).

Dagster's own output is one line per event, hundreds of them; this is the few lines a person
reads at the end: which steps the time went to (from the run's step statistics, as the UI's
timeline shows them), the submission file and the MAP@3 with its interval, as the latest
materialisations of ``submission`` and ``score`` recorded them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from dagster import AssetKey, DagsterInstance, DagsterRun


def materialization_metadata(instance: DagsterInstance, asset: str, run_id: str | None = None,
                             search: int = 50) -> dict[str, Any]:
    """The metadata values of ``asset``'s latest materialisation, or of its materialisation in
    run ``run_id`` (among the latest ``search``); {} if none."""
    records = instance.fetch_materializations(AssetKey(asset),
                                              limit=1 if run_id is None else search).records
    for record in records:
        if record.asset_materialization and run_id in (None, record.run_id):
            return {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return {}


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds each finished step of run ``run_id`` took, as the UI's timeline shows them."""
    return {s.step_key: s.end_time - s.start_time
            for s in instance.get_run_step_stats(run_id)
            if s.start_time is not None and s.end_time is not None}


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def summary(instance: DagsterInstance, run: DagsterRun, top: int = 10) -> list[str]:
    """The lines of ``run``'s summary."""
    seconds = step_seconds(instance, run.run_id)
    longest = sorted(seconds.items(), key=lambda item: item[1], reverse=True)
    lines = [f"run {run.run_id} of {run.job_name}: {run.status.value}, {len(seconds)} steps, "
             f"{_duration(sum(seconds.values()))} in steps; the longest:"]
    lines += [f"  {_duration(spent):>9}  {step}" for step, spent in longest[:top]]
    submission = materialization_metadata(instance, "submission")
    score = materialization_metadata(instance, "score")
    if "path" in submission:
        rows = submission.get("dagster/row_count", "?")
        lines.append(f"submission: {submission['path']} ({rows} questions)")
    if "map_at_3" in score:
        lines.append(f"score: MAP@3 {score['map_at_3']} (95% interval "
                     f"{score['map_at_3_low']} to {score['map_at_3_high']}) on "
                     f"{score['validation_questions']} validation questions"
                     + (f"; test {score['test_map_at_3']}" if "test_map_at_3" in score else ""))
    return lines


def main(log: Callable[[str], None] = print) -> int:
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            log("no run recorded in this instance")
            return 0
        for line in summary(instance, runs[0]):
            log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
