"""The DuckDB warehouse that every asset reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource


class Warehouse(DuckDBResource):
    """dagster-duckdb's resource (it retries while another process holds the file), which also
    creates the database's folder and closes the connection when the step fails."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as connection:
            try:
                yield connection
            finally:
                connection.close()
