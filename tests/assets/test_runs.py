"""Runs from the command line, as users start them, against the project's instance config:
two at once queue for the warehouse instead of colliding, and a killed run is marked failed
and does not hold the warehouse for the next."""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from assets.run_guard import fail_abandoned
from pipeline.paths import PROJECT_ROOT

JOB = '''
import os, time
from dagster import Definitions, asset, define_asset_job
from resources import WAREHOUSE_POOL

def hold(name):
    start = time.time()
    open(os.environ["MARKS"] + f"/{name}-{os.getpid()}.started", "w").close()
    time.sleep(float(os.environ["HOLD_SECONDS"]))
    with open(os.environ["MARKS"] + "/spans.txt", "a") as spans:
        spans.write(f"{start} {time.time()}\\n")

@asset(pool=WAREHOUSE_POOL)
def first():
    hold("first")

@asset(pool=WAREHOUSE_POOL, deps=[first])
def second():
    hold("second")

defs = Definitions(assets=[first, second], jobs=[define_asset_job("job", selection="*")])
'''


def _setup(tmp_path: Path, hold_seconds: float) -> dict[str, str]:
    home, marks = tmp_path / "home", tmp_path / "marks"
    home.mkdir()
    marks.mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "job.py").write_text(JOB)
    subprocess.run([sys.executable, "-m", "assets.run_guard"], cwd=PROJECT_ROOT, check=True,
                   env={**os.environ, "DAGSTER_HOME": str(home)})  # as make run does first
    return {**os.environ, "DAGSTER_HOME": str(home), "MARKS": str(marks),
            "HOLD_SECONDS": str(hold_seconds), "PYTHONPATH": str(PROJECT_ROOT)}


class Run:
    """``dagster job execute`` in a subprocess, its output in a file (a pipe nobody reads
    while the other run waits would fill and stall it)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str) -> None:
        self.log = tmp_path / f"{name}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "job", "execute", "-f",
                 str(tmp_path / "job.py"), "-j", "job"], cwd=PROJECT_ROOT, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def finish(self, timeout: float) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        return code, self.log.read_text()


def test_two_runs_started_together_both_succeed_one_step_at_a_time(tmp_path: Path) -> None:
    env = _setup(tmp_path, hold_seconds=2)
    runs = [Run(tmp_path, env, "one"), Run(tmp_path, env, "two")]
    codes, outputs = zip(*(run.finish(timeout=300) for run in runs), strict=True)
    assert codes == (0, 0), outputs
    spans = sorted(tuple(map(float, line.split()))
                   for line in (tmp_path / "marks" / "spans.txt").read_text().splitlines())
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.05  # no two steps held the warehouse at once
    assert any("blocked by limit for pool warehouse" in out for out in outputs)


def test_a_killed_run_is_marked_failed_and_gives_the_warehouse_back(tmp_path: Path) -> None:
    env = _setup(tmp_path, hold_seconds=600)
    killed = Run(tmp_path, env, "killed")
    marks = tmp_path / "marks"
    deadline = time.time() + 120
    while not list(marks.glob("first-*.started")) and time.time() < deadline:
        time.sleep(0.5)
    assert list(marks.glob("first-*.started")), "the first step never started"
    os.killpg(killed.process.pid, signal.SIGKILL)  # the run and its step's process
    killed.process.wait(timeout=30)

    os.environ["DAGSTER_HOME"], saved = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with DagsterInstance.get() as instance:
            [run] = instance.get_runs()
            assert run.status == DagsterRunStatus.STARTED  # what Dagster alone would keep
            assert fail_abandoned(instance, log=lambda _: None) == [run.run_id]
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
            assert fail_abandoned(instance, log=lambda _: None) == []  # once
    finally:
        if saved is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = saved

    # The killed run's slot is free: the next run gets the warehouse and finishes.
    code, output = Run(tmp_path, {**env, "HOLD_SECONDS": "0"}, "again").finish(timeout=120)
    assert code == 0, output
