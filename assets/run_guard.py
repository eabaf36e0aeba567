"""Before a command-line run: the warehouse pool in place, and runs whose process died marked
failed with their warehouse slot given back (``make run`` calls ``python -m assets.run_guard``).

Why the pool first: Dagster creates a pool's limit the first time a step claims it, and two
runs started at the same moment on a new instance can both create it and both get a slot; set
once before, the limit holds from the first step.

Why the runs: a run killed outright (SIGKILL, a closed terminal, the machine's OOM killer)
cannot say that it ended, so Dagster keeps it as STARTED (the UI shows it running for good) and
keeps the concurrency slot of its step in the ``warehouse`` pool, and every later run would wait
for that slot forever. The daemon's run monitoring handles runs the web UI launched; runs of
``dagster job execute`` have no monitor, so a run on this machine that is STARTED but whose
process is gone is reported failed here, and its slots freed. A run whose process is alive is
left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from resources import WAREHOUSE_POOL


def run_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The process that started ``run_id`` (its RUN_START event's), if recorded."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event else None


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live Dagster process here (a reused pid of another program is
    not)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True  # no /proc: alive as far as we can tell
    return b"dagster" in command


def fail_abandoned(instance: DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark every STARTED run whose process is gone as failed (freeing its concurrency
    slots); the ids of those runs."""
    failed = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        pid = run_pid(instance, run.run_id)
        if pid is None or pid == os.getpid() or alive(pid):
            continue
        instance.report_run_failed(run, f"the run's process (pid {pid}) is gone: it was "
                                   "killed before it could finish; marked failed by "
                                   "assets.run_guard")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log(f"run {run.run_id} of {run.job_name} lost its process (pid {pid}): marked failed")
        failed.append(run.run_id)
    return failed


def ensure_pool(instance: DagsterInstance) -> None:
    """The warehouse pool's limit, set to the instance's default (one step) if it has none."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits and \
            WAREHOUSE_POOL not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)


def main() -> int:
    with DagsterInstance.get() as instance:
        ensure_pool(instance)
        fail_abandoned(instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
