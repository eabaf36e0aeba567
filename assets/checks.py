"""Asset checks written as a query for offending rows: the check passes when it finds none."""

from collections.abc import Iterable

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetsDefinition,
    MetadataValue,
    asset_check,
)

from pipeline.tables import Check
from resources import WAREHOUSE_POOL, Warehouse


def violations(warehouse: Warehouse, query: str, description: str,
                severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    """Run a query that lists offending rows; the check passes when it finds none."""
    with warehouse.get_connection() as db:
        rows = db.execute(f"SELECT * FROM ({query}) LIMIT 5").fetchall()
        count = db.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
    return AssetCheckResult(
        passed=count == 0, severity=severity,
        metadata={"violations": count, "examples": MetadataValue.json([list(map(str, r))
                                                                      for r in rows])},
        description=description if count else None,
    )


def table_checks(asset: AssetsDefinition, checks: Iterable[Check]) -> list[AssetChecksDefinition]:
    """One asset check per rule the domain module that owns the asset's table declares.

    Integrity rules are blocking (``Check.blocking``): a table that breaks one (duplicate ids,
    chunks without an article, an index out of step with the chunks) would feed every model
    step after it, so in the run that fails the check nothing downstream of the asset runs."""
    return [_table_check(asset, check) for check in checks]


def _table_check(asset: AssetsDefinition, check: Check) -> AssetChecksDefinition:
    @asset_check(pool=WAREHOUSE_POOL,
                 asset=asset, name=check.name, description=check.description,
                 blocking=check.blocking)
    def _check(warehouse: Warehouse) -> AssetCheckResult:
        return violations(warehouse, check.query, check.problem)
    return _check
