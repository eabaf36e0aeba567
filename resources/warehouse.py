"""The DuckDB warehouse that every asset reads and writes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import Failure
from dagster_duckdb import DuckDBResource
from pydantic import Field

# The Dagster concurrency pool of every step that opens the warehouse. DuckDB lets one process
# write a database file at a time; config/dagster.yaml limits each pool to one step, so a step
# of a second run (the web UI's, another `make run`) waits for the slot instead of failing on
# DuckDB's lock.
WAREHOUSE_POOL = "warehouse"


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
        with contextlib.ExitStack() as stack:
            try:
                connection = stack.enter_context(super().get_connection())
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                raise Failure(lock_message(exc, self.database)) from None
            stack.callback(connection.close)
            connection.execute(f"SET memory_limit = '{self.memory_limit}'")
            yield connection


def lock_message(error: Exception, database: str) -> str:
    """What to tell a user whose step met another process's lock on the warehouse: which
    process holds it (DuckDB names its PID) and what to do."""
    found = re.search(r"PID (\d+)", str(error))
    holder = "another process"
    if found:
        pid = found.group(1)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            holder = f"process {pid} ({command.strip()[:200]})"
        except OSError:
            holder = f"process {pid}"
    return (f"the warehouse {database} is locked by {holder}, which kept it past the retries. "
            "Wait for it to finish, or stop it, then run again. Runs started with `make run` "
            "or from the web UI on this project's instance (config/dagster.yaml) take turns "
            "for the warehouse; a program outside Dagster (a DuckDB shell, a notebook) holding "
            "it open does not.")
