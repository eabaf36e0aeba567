"""run_step under Dagster: a step that a budget cut short is done by later runs, and the tags
it reads are where Dagster writes them."""

from pathlib import Path

import duckdb
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    DagsterInstance,
    DataVersion,
    MaterializeResult,
    asset,
    materialize,
)

from assets.incremental import CODE_VERSION_TAG, DATA_VERSION_TAG, run_step
from pipeline.steps import Work

QUESTIONS = [f"q{i}" for i in range(8)]


class BudgetConfig(Config):
    per_run: int = 3  # the budget: how many questions one run may read


def budgeted_asset(database: Path):
    """An asset that reads the 8 questions into a table, at most ``per_run`` new ones a run
    (those already read are free, as the reading cache makes them), and says what it left."""

    @asset(name="budgeted", code_version="1")
    def budgeted(context: AssetExecutionContext, config: BudgetConfig) -> MaterializeResult:
        with duckdb.connect(str(database)) as db:
            db.execute("CREATE TABLE IF NOT EXISTS readings (run_id VARCHAR, question VARCHAR)")

            def compute() -> Work:
                done = {q for (q,) in db.execute("SELECT question FROM readings").fetchall()}
                left = [q for q in QUESTIONS if q not in done]
                for question in left[: config.per_run]:
                    db.execute("INSERT INTO readings VALUES (?, ?)",
                               [context.run.run_id, question])
                return Work(f"read-{min(len(done) + config.per_run, len(QUESTIONS))}",
                            undone=max(0, len(left) - config.per_run))

            return run_step(context, db, config, compute=compute, describe=dict)

    return budgeted


def test_a_budget_that_allows_3_of_8_is_resumed_by_the_next_runs_with_the_same_config(
        tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    step = budgeted_asset(database)
    with DagsterInstance.ephemeral() as instance:
        left = []
        for _ in range(4):
            result = materialize([step], instance=instance,
                                 run_config={"ops": {"budgeted": {"config": {"per_run": 3}}}})
            metadata = result.asset_materializations_for_node("budgeted")[0].metadata
            left.append((metadata["up_to_date"].value, metadata.get("left_undone")))
    with duckdb.connect(str(database)) as db:
        per_run = [n for (n,) in db.execute(
            "SELECT count(*) FROM readings GROUP BY run_id ORDER BY min(rowid)").fetchall()]
        read = sorted(q for (q,) in db.execute("SELECT question FROM readings").fetchall())
    assert per_run == [3, 3, 2]  # the fourth run read nothing
    assert read == QUESTIONS  # each question once
    assert [undone.value for _, undone in left[:3]] == [5, 2, 0]
    assert left[3][0] is True  # complete now: up to date


def test_the_tags_read_back_are_the_ones_dagster_writes() -> None:
    @asset(code_version="code-1")
    def tagged() -> MaterializeResult:
        return MaterializeResult(data_version=DataVersion("data-1"))

    with DagsterInstance.ephemeral() as instance:
        materialize([tagged], instance=instance)
        event = instance.get_latest_materialization_event(AssetKey("tagged"))
    tags = event.asset_materialization.tags
    assert tags[DATA_VERSION_TAG] == "data-1" and tags[CODE_VERSION_TAG] == "code-1"
