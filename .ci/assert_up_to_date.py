"""Fail unless the latest run of a job found the given assets up to date (did no work).

    DAGSTER_HOME=var/dagster_home python .ci/assert_up_to_date.py JOB [ASSET ...]

Without assets, every asset the job materialises is checked but ``dump_files``, which stats the
shards on every run (that is how it notices a change) and has no "up to date" of its own.

Reads the run and its materialisations from the persistent Dagster instance, the same records
the web UI shows.
"""

import sys

from dagster import AssetKey, DagsterInstance, RunsFilter


def main(job: str, assets: list[str]) -> int:
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name=job), limit=1)
        if not runs:
            print(f"no run of {job} in {instance.root_directory}")
            return 1
        run = runs[0]
        if not assets:
            assets = sorted(key.to_user_string()
                            for key in instance.get_asset_keys()
                            if key != AssetKey("dump_files") and _in_run(instance, key, run))
            if not assets:
                print(f"run {run.run_id} materialised no asset")
                return 1
        failures = []
        for asset in assets:
            entry = instance.get_latest_materialization_event(AssetKey(asset))
            event = entry.asset_materialization if entry else None
            if entry is None or event is None or entry.run_id != run.run_id:
                failures.append(f"{asset}: not materialised by run {run.run_id}")
            elif event.metadata["up_to_date"].value is not True:
                failures.append(f"{asset}: run {run.run_id} recomputed it: "
                                f"{ {k: v.value for k, v in event.metadata.items()} }")
            else:
                print(f"{asset}: up to date in run {run.run_id}, no work done")
        for failure in failures:
            print(failure)
        return 1 if failures else 0


def _in_run(instance: DagsterInstance, key: AssetKey, run) -> bool:
    entry = instance.get_latest_materialization_event(key)
    return entry is not None and entry.run_id == run.run_id


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
