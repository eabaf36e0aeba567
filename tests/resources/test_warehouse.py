"""The warehouse resource: DuckDB's memory bounded, whatever the corpus size."""

from pathlib import Path

import pytest

from resources import Warehouse


@pytest.mark.parametrize(("limit", "shown"), [("1GB", "953.6 MiB"), ("512MB", "488.2 MiB")])
def test_connections_carry_the_memory_limit(tmp_path: Path, limit: str, shown: str) -> None:
    warehouse = Warehouse(database=str(tmp_path / "w" / "warehouse.duckdb"), memory_limit=limit)
    with warehouse.get_connection() as db:
        assert db.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown
