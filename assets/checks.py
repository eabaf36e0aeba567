"""Asset checks written as a query for offending rows: the check passes when it finds none."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from resources import Warehouse


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
