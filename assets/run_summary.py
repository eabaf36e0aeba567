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

from dagster import AssetKey, DagsterInstance, DagsterRun


def _latest(instance: DagsterInstance, asset: str) -> dict[str, object]:
    """The metadata values of ``asset``'s latest materialisation ({} if none)."""
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    if not records:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def summary(instance: DagsterInstance, run: DagsterRun, top: int = 10) -> list[str]:
    """The lines of ``run``'s summary."""
    stats = [s for s in instance.get_run_step_stats(run.run_id)
             if s.start_time is not None and s.end_time is not None]
    stats.sort(key=lambda s: s.end_time - s.start_time, reverse=True)
    total = sum(s.end_time - s.start_time for s in stats)
    lines = [f"run {run.run_id} of {run.job_name}: {run.status.value}, {len(stats)} steps, "
             f"{_duration(total)} in steps; the longest:"]
    lines += [f"  {_duration(s.end_time - s.start_time):>9}  {s.step_key}"
              for s in stats[:top]]
    submission, score = _latest(instance, "submission"), _latest(instance, "score")
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
