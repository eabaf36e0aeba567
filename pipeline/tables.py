"""Small helpers shared by the modules that keep tables in the DuckDB warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from pipeline.questions.question import LETTERS


class Column(NamedTuple):
    """A column of a warehouse table as the UI lists it: name, SQL type, what it holds."""

    name: str
    type: str
    description: str = ""


class Check(NamedTuple):
    """A data-quality rule of a table, written as a query for the rows that break it: it
    holds when the query finds none. ``problem`` names what an offending row is. A
    ``blocking`` rule guards what later steps read (broken, it stops them); one that is not
    reports a state the user may accept (a shard skipped as corrupt)."""

    name: str
    description: str
    query: str
    problem: str
    blocking: bool = True


def option_columns(prefix: str = "") -> str:
    """The per-option score columns, ``A, B, ..., J`` (each with ``prefix``, e.g. ``"s."``)."""
    return ", ".join(prefix + letter for letter in LETTERS)


def option_column_ddl(kind: str = "DOUBLE") -> str:
    """``A DOUBLE, B DOUBLE, ..., J DOUBLE``: NULL where a question has no such option."""
    return ", ".join(f"{letter} {kind}" for letter in LETTERS)


def widen_option_columns(db: duckdb.DuckDBPyConnection, table: str, kind: str = "DOUBLE"
                         ) -> None:
    """Give a table from before questions had up to ten options (A to E only) the columns F to
    J, NULL in its old rows: a warehouse of five-option runs keeps its rows and caches."""
    for letter in LETTERS:
        db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {letter} {kind}")


def row_count(db: duckdb.DuckDBPyConnection, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def append(db: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list[Any]],
           schema: pa.Schema) -> None:
    """Append one batch of column lists to ``table`` through Arrow (no row-by-row inserts)."""
    batch = pa.table(columns, schema=schema)
    db.register("_batch", batch)
    try:
        db.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _batch")
    finally:
        db.unregister("_batch")


def stream_rows(db: duckdb.DuckDBPyConnection, query: str,
                batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``query`` ``batch_size`` at a time, through a cursor of its own: memory stays
    bounded, and ``db`` stays free for the writes made while the rows are consumed."""
    reader = db.cursor()
    try:
        result = reader.execute(query)
        while rows := result.fetchmany(batch_size):
            yield rows
    finally:
        reader.close()


@contextmanager
def transaction(db: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the ``with`` block in one DuckDB transaction: committed when it ends, rolled back
    (and the error raised again) when it raises, an interrupt included, so a table is never
    left half-replaced."""
    db.execute("BEGIN TRANSACTION")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def content_version(db: duckdb.DuckDBPyConnection, table: str, columns: str) -> str:
    """A data version computed from what ``table`` holds: row count and an order-free hash.

    The sum of per-row hashes (modulo 2**64) costs one scan and does not depend on row order,
    so two tables with the same rows get the same version however they were written. A sum,
    not an XOR: under XOR two identical rows cancel, and a table that gained a duplicate pair
    would keep its version.
    """
    rows, digest = db.execute(
        f"SELECT count(*), coalesce(sum(hash({columns})::HUGEINT) % 18446744073709551616, 0) "
        f"FROM {table}").fetchone()
    return f"{rows}-{int(digest):016x}"


def table_versions(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The :func:`content_version` of every table of the database, whole rows: two snapshots
    taken around a run show whether it wrote anything, whatever its steps report."""
    names = db.execute("SELECT table_name FROM information_schema.tables "
                       "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()
    return {name: content_version(db, f'"{name}" t', "t") for (name,) in names}


def markdown_preview(db: duckdb.DuckDBPyConnection, query: str, width: int = 80) -> str:
    """A markdown table of a few rows, each value cut to ``width`` characters."""
    cursor = db.execute(query)
    names = [d[0] for d in cursor.description]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in cursor.fetchall():
        cells = [str(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(c if len(c) <= width else c[: width - 1] + "…"
                                       for c in cells) + " |")
    return "\n".join(lines)
