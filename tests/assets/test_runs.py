"""Runs from the command line, as users start them, against the project's instance config:
two at once queue for the warehouse instead of colliding, a killed run is marked failed and
does not hold the warehouse for the next, and the whole pipeline killed mid-step resumes to an
uninterrupted run's outputs."""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from assets.run_guard import fail_abandoned
from pipeline.paths import PROJECT_ROOT
from tests.assets import harness

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


def _pipeline_config(tmp_path: Path) -> Path:
    """The harness's tiny pipeline as the run config of ``answer_job``, for ``dagster job
    execute`` as users start it; the teacher on the whole pool (22 questions: time to kill it
    while it reads)."""
    config = harness.Pipeline(tmp_path, instance=None).job_config(teacher_budget=None)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class PipelineRun:
    """``make run``'s two commands (the run guard, then ``dagster job execute`` of
    ``answer_job``) in a working area of its own, the job's output in a file."""

    def __init__(self, area: Path, config: Path) -> None:
        self.area, self.config = area, config
        self.home = area / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", self.home / "dagster.yaml")
        self.env = {**os.environ, "DAGSTER_HOME": str(self.home),
                    "SCIENCE_EXAM_WORKDIR": str(area), "HF_HUB_OFFLINE": "1"}
        self.runs = 0

    def start(self) -> tuple[subprocess.Popen, Path]:
        subprocess.run([sys.executable, "-m", "assets.run_guard"], cwd=PROJECT_ROOT,
                       env=self.env, check=True)
        self.runs += 1
        log = self.area / f"run-{self.runs}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "job", "execute", "-m", "definitions",
                 "-j", "answer_job", "-c", str(PROJECT_ROOT / "config" / "answer_job.yaml"),
                 "-c", str(self.config)], cwd=PROJECT_ROOT, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        return process, log

    def complete(self) -> None:
        process, log = self.start()
        assert process.wait(timeout=1200) == 0, log.read_text()[-6000:]

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.area / "warehouse.duckdb"), read_only=True) as db:
            return db.execute(sql).fetchall()

    def steps(self) -> set[str]:
        """The step keys of the job (its assets and checks)."""
        with self.instance() as instance:
            [run] = instance.get_runs(limit=1)
            return {s.step_key for s in instance.get_run_step_stats(run.run_id)}

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.home))


POOL = 22  # train questions of the fixture pool, all of them the teacher's


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        assert process.poll() is None, f"the run ended before {text!r}:\n{log.read_text()[-6000:]}"
        assert time.time() < deadline, f"no {text!r} in {timeout} s"
        time.sleep(0.2)


def test_a_run_killed_mid_step_resumes_to_the_uninterrupted_runs_outputs(
        tmp_path: Path) -> None:
    """The whole tiny pipeline from the command line, killed with SIGKILL while the teacher
    reads, then started again as ``make run`` does: the killed run is marked failed, no step
    the killed run finished computes again, no question the teacher had stored is read again,
    and the submission and score equal an uninterrupted run's."""
    config = _pipeline_config(tmp_path)
    whole = PipelineRun(tmp_path / "whole", config)
    whole.complete()
    summary = subprocess.run([sys.executable, "-m", "assets.run_summary"], cwd=PROJECT_ROOT,
                             env=whole.env, check=True, capture_output=True, text=True).stdout
    steps = [line.split() for line in summary.splitlines()[1:11]]
    assert "SUCCESS" in summary.splitlines()[0]
    seconds = [float(n) * (60 if unit == "min" else 1) for n, unit, _ in steps]
    assert len(seconds) == 10 and seconds == sorted(seconds, reverse=True)
    assert {step for _, _, step in steps} <= whole.steps()
    assert f"submission: {whole.area / 'submission.csv'} (2 questions)" in summary
    assert "score: MAP@3 " in summary

    resumed = PipelineRun(tmp_path / "resumed", config)
    process, log = resumed.start()
    # Its progress line comes after the 10th question is stored: the kill lands mid-step.
    _wait_for(log, "teacher: [10/", process, timeout=900)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    with resumed.instance() as instance:
        [killed] = instance.get_runs()
    finished = dict(resumed.query("SELECT asset, run_id FROM asset_state"))
    assert "teacher_logits" not in finished and "submission" not in finished
    # The heavy reader's readings (the cheap readers store none of their setup): the teacher's.
    read = resumed.query("SELECT item_key, seconds FROM reading_cache WHERE setup IS NOT NULL")
    assert 10 <= len(read) < POOL, "the kill did not land inside the teacher"

    resumed.complete()
    with resumed.instance() as instance:
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
    # Steps the killed run finished kept its record: none computed again.
    after = dict(resumed.query("SELECT asset, run_id FROM asset_state"))
    assert {asset: after[asset] for asset in finished} == finished
    # Each question the teacher stored before the kill was kept, not read again.
    kept = set(resumed.query("SELECT item_key, seconds FROM reading_cache"))
    assert set(read) <= kept
    assert ((resumed.area / "submission.csv").read_text()
            == (whole.area / "submission.csv").read_text())
    scores = "SELECT name, map_at_3, low, high FROM scores ORDER BY name"
    assert resumed.query(scores) == whole.query(scores)
