"""The warehouse resource: DuckDB's memory bounded, whatever the corpus size."""

from pathlib import Path

import pytest

from resources import Warehouse


@pytest.mark.parametrize(("limit", "shown"), [("1GB", "953.6 MiB"), ("512MB", "488.2 MiB")])
def test_connections_carry_the_memory_limit(tmp_path: Path, limit: str, shown: str) -> None:
    warehouse = Warehouse(database=str(tmp_path / "w" / "warehouse.duckdb"), memory_limit=limit)
    with warehouse.get_connection() as db:
        assert db.execute("SELECT current_setting('memory_limit')").fetchone()[0] == shown


def test_a_lock_held_by_another_process_is_named_with_what_to_do(tmp_path) -> None:
    """DuckDB's own error on a locked file, turned into a message that names the process
    holding it and says what to do (what a step reports instead of a stack trace)."""
    import subprocess
    import sys

    import duckdb

    from resources.warehouse import lock_message

    database = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; db = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(database)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException) as raised:
            duckdb.connect(str(database))
        message = lock_message(raised.value, str(database))
    finally:
        holder.kill()
        holder.wait()
    assert f"process {holder.pid} (" in message and "import duckdb" in message
    assert "Wait for it to finish, or stop it" in message
