"""Data versions computed from table contents."""

import duckdb

from pipeline.tables import content_version


def _version(rows: list[tuple[int, str]]) -> str:
    db = duckdb.connect()
    db.execute("CREATE TABLE t (a INTEGER, b VARCHAR)")
    if rows:
        db.executemany("INSERT INTO t VALUES (?, ?)", rows)
    return content_version(db, "t", "a, b")


def test_the_version_ignores_row_order_and_sees_every_row() -> None:
    assert _version([(1, "x"), (2, "y")]) == _version([(2, "y"), (1, "x")])
    assert _version([(1, "x"), (2, "y")]) != _version([(1, "x"), (2, "z")])


def test_two_identical_rows_do_not_cancel_out() -> None:
    """Under an XOR of row hashes, [x, y, y] and [x, z, z] would share a version."""
    assert _version([(1, "x"), (2, "y"), (2, "y")]) != _version([(1, "x"), (3, "z"), (3, "z")])
