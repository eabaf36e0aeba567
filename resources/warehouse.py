"""The DuckDB warehouse that every asset reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field


class Warehouse(DuckDBResource):
    """dagster-duckdb's resource (it retries while another process holds the file), which also
    creates the database's folder, bounds DuckDB's memory, and closes the connection when the
    step fails."""

    memory_limit: str = Field(
        default="1GB", description="DuckDB's memory_limit: beyond it DuckDB spills to disk "
        "instead of growing with the corpus (its own default is 80% of the machine's memory).")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as connection:
            connection.execute(f"SET memory_limit = '{self.memory_limit}'")
            try:
                yield connection
            finally:
                connection.close()
