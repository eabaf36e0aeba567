"""What answering a new test file costs after a full run, and what a no-change re-run costs.

After `make run` has materialised the default job, this times three `dagster job execute`
runs of answer_job against the same instance and warehouse:

1. a new 10-question test file (rows 200-209 of extra_500, which the default run does not
   answer; the whole of extra_500 is kept out of training anyway),
2. the same again (nothing changed),
3. the default test file again (its 200 questions' work was kept per question, so this
   restores the previous state).

For each it prints the wall time, and from Dagster's records the work the steps report: the
questions retrieved, ranked and read, whether the reader was trained, and the questions the
heavy reader read.

    make run && .venv/bin/python bench/new_test_file.py
"""

import csv
import os
import subprocess
import tempfile
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from pipeline.paths import PROJECT_ROOT, QUESTIONS

COUNTED = {"candidate_passages": "questions_retrieved", "ranking_search": "questions_ranked",
           "ranking_edit_distance": "questions_ranked", "ranking_semantic": "questions_ranked",
           "cascade": "heavy_read"}


def write_new_test_file(folder: Path, first: int = 200, count: int = 10) -> Path:
    with open(QUESTIONS / "extra_500.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[first:first + count]
    path = folder / "new_test.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "prompt", "A", "B", "C", "D", "E"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(config: Path | None) -> tuple[float, str]:
    command = [str(PROJECT_ROOT / ".venv" / "bin" / "dagster"), "job", "execute", "-m",
               "definitions", "-j", "answer_job", "-c",
               str(PROJECT_ROOT / "config" / "answer_job.yaml")]
    if config:
        command += ["-c", str(config)]
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    with DagsterInstance.get() as instance:
        return seconds, instance.get_runs(limit=1)[0].run_id


def work_done(run_id: str) -> dict[str, object]:
    """What the run's materialisations report: counts of work, and what was recomputed."""
    with DagsterInstance.get() as instance:
        records = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=200).records
        done: dict[str, object] = {"recomputed": [], "read": 0}
        for record in records:
            event = record.asset_materialization
            name = event.asset_key.to_user_string()
            metadata = {k: v.value for k, v in event.metadata.items()}
            if metadata.get("up_to_date") is False:
                done["recomputed"].append(name)
            if name in COUNTED and COUNTED[name] in metadata:
                done[name] = metadata[COUNTED[name]]
            if name.startswith("logits_"):
                done["read"] += int(metadata.get("questions_read", 0) or 0)
        done["trained"] = "trained_reader" in done["recomputed"]
        return done


def main() -> None:
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "var" / "dagster_home"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        test = write_new_test_file(folder)
        config = folder / "new_test.yaml"
        config.write_text(f"ops:\n  questions:\n    config:\n      test_path: {test}\n"
                          "      test_limit: null\n")
        print("| run | wall time | retrieved | ranked (search, edit distance, semantic) | "
              "(question, context) pairs read by the cheap readers | heavy reads | "
              "reader trained |")
        print("|---|---|---|---|---|---|---|")
        for label, run_config in (("a new 10-question test file", config),
                                  ("the same again (no change)", config),
                                  ("back to the default test file", None)):
            seconds, run_id = run(run_config)
            done = work_done(run_id)
            ranked = ", ".join(str(done.get(f"ranking_{r}", 0))
                               for r in ("search", "edit_distance", "semantic"))
            print(f"| {label} | {seconds:.0f} s | {done.get('candidate_passages', 0)} | "
                  f"{ranked} | {done['read']} | {done.get('cascade', 0)} | "
                  f"{'yes' if done['trained'] else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
