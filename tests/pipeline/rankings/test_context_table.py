"""The rankings' tables in the warehouse."""

import duckdb

from pipeline.rankings.context_table import create, read_contexts, write_ranking


def test_a_warehouse_from_before_the_rename_keeps_its_search_contexts() -> None:
    """Contexts stored under the search ranking's old name, ``es``, are read as ``search``'s
    once the table is next written."""
    db = duckdb.connect()
    create(db)
    db.execute("INSERT INTO packed_contexts (ranking, role, question_id, context) "
               "VALUES ('es', 'test', 't', 'a context ranked before the rename')")
    write_ranking(db, "search", [])
    assert read_contexts(db, "search") == {("test", "t"): "a context ranked before the rename"}
    assert read_contexts(db, "es") == {}
