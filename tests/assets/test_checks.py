"""A table that breaks an integrity rule stops the run: nothing downstream of it runs."""

from pathlib import Path

import duckdb
from dagster import AssetExecutionContext, DagsterInstance, asset, materialize

from assets.checks import table_checks
from pipeline.tables import Check
from resources import Warehouse

UNIQUE_IDS = Check("unique_ids", "Every id appears once.",
                   "SELECT id FROM chunks GROUP BY id HAVING count(*) > 1", "a repeated id")


def _graph(database: Path, ids: list[int]):
    ran: list[str] = []

    @asset
    def chunks(warehouse: Warehouse) -> None:
        with warehouse.get_connection() as db:
            db.execute("CREATE OR REPLACE TABLE chunks (id INTEGER)")
            db.executemany("INSERT INTO chunks VALUES (?)", [[i] for i in ids])

    @asset(deps=[chunks])
    def embeddings(context: AssetExecutionContext) -> None:
        ran.append(context.run.run_id)

    return [chunks, embeddings, *table_checks(chunks, [UNIQUE_IDS])], ran


def test_a_failed_integrity_check_stops_what_is_downstream(tmp_path: Path) -> None:
    resources = {"warehouse": Warehouse(database=str(tmp_path / "warehouse.duckdb"))}
    with DagsterInstance.ephemeral() as instance:
        good, ran = _graph(tmp_path, [1, 2, 3])
        assert materialize(good, instance=instance, resources=resources).success
        assert len(ran) == 1

        bad, ran = _graph(tmp_path, [1, 2, 2])
        result = materialize(bad, instance=instance, resources=resources,
                             raise_on_error=False)
        assert not result.success
        assert ran == []  # embeddings never ran on the bad chunks
        [evaluation] = result.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.metadata["violations"].value == 1
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as db:
        assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == 3
