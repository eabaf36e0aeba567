"""Per-source logits in the warehouse: one source's rows replaced alone, read back aligned."""

import duckdb
import numpy as np
import pytest

from pipeline.answering.logit_table import read_role, write_logits
from tests.pipeline.answering.blend.synthetic import padded


@pytest.fixture
def db() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE questions (role VARCHAR, id VARCHAR, row INTEGER, "
                       "answer VARCHAR, options INTEGER)")
    connection.execute("INSERT INTO questions VALUES ('validation', 'b', 1, 'B', 5), "
                       "('validation', 'a', 0, 'A', 5), ('test', 't', 0, NULL, 4)")
    return connection


def test_logits_are_read_back_in_question_order(db: duckdb.DuckDBPyConnection) -> None:
    keys = [("validation", "b"), ("test", "t"), ("validation", "a")]
    write_logits(db, "lexical", "search", keys, padded(np.arange(15, dtype=float).reshape(3, 5)))
    write_logits(db, "lexical", "semantic", keys, padded(np.ones((3, 5))))
    read = read_role(db, "validation", ["lexical@search", "lexical@semantic"])
    assert read.question_ids == ["a", "b"] and read.answers == ["A", "B"]
    np.testing.assert_array_equal(read.sources["lexical@search"][0][:5], np.arange(10, 15))
    assert np.isnan(read.sources["lexical@search"][:, 5:]).all()
    write_logits(db, "lexical", "search", keys, padded(np.zeros((3, 5))))
    again = read_role(db, "validation", ["lexical@search", "lexical@semantic"])
    assert not np.nan_to_num(again.sources["lexical@search"]).any()
    np.testing.assert_array_equal(again.sources["lexical@semantic"], padded(np.ones((2, 5))))


def test_a_question_reads_back_only_the_options_it_has(db: duckdb.DuckDBPyConnection) -> None:
    """The four-option test question's logits are four numbers and NaN after; a source that
    lacks one of a question's options is as stale as one that lacks the question."""
    write_logits(db, "lexical", "search", [("test", "t")], padded([[1.0, 2.0, 3.0, 4.0]]))
    (row,) = read_role(db, "test", ["lexical@search"]).sources["lexical@search"]
    np.testing.assert_array_equal(row[:4], [1.0, 2.0, 3.0, 4.0])
    assert np.isnan(row[4:]).all()
    write_logits(db, "lexical", "search", [("test", "t")], padded([[1.0, 2.0, 3.0]]))
    with pytest.raises(LookupError, match="no logits for 1 test"):
        read_role(db, "test", ["lexical@search"])


def test_a_source_missing_questions_is_an_error(db: duckdb.DuckDBPyConnection) -> None:
    write_logits(db, "lexical", "search", [("validation", "a")], padded(np.zeros((1, 5))))
    with pytest.raises(LookupError, match="lexical@search has no logits for 1 validation"):
        read_role(db, "validation", ["lexical@search"])
    with pytest.raises(ValueError, match="2 questions but logits of shape"):
        write_logits(db, "lexical", "search", [("test", "t"), ("test", "u")],
                     padded(np.zeros((1, 5))))


def test_a_warehouse_from_before_the_rename_keeps_the_heavy_readers_logits(
        db: duckdb.DuckDBPyConnection) -> None:
    """Logits the heavy reader stored as ``causal_lm`` are read as ``heavy``'s."""
    write_logits(db, "causal_lm", "semantic", [("test", "t")], padded([[0.1, 0.2, 0.3, 0.4]]))
    write_logits(db, "lexical", "semantic", [("test", "t")], padded([[0.3, 0.3, 0.2, 0.2]]))
    labelled = read_role(db, "test", ["heavy@semantic", "lexical@semantic"])
    np.testing.assert_allclose(labelled.sources["heavy@semantic"][0, :4], [0.1, 0.2, 0.3, 0.4])
    assert db.execute("SELECT count(*) FROM reader_logits WHERE reader = 'causal_lm'"
                      ).fetchone() == (0,)


def test_a_warehouse_from_before_the_rename_keeps_the_search_rankings_logits(
        db: duckdb.DuckDBPyConnection) -> None:
    """Logits stored under the search ranking's old name, ``es``, are read as ``search``'s."""
    write_logits(db, "lexical", "es", [("test", "t")], padded([[0.1, 0.2, 0.3, 0.4]]))
    write_logits(db, "similarity", "search", [("test", "t")], padded([[0.3, 0.3, 0.2, 0.2]]))
    read = read_role(db, "test", ["lexical@search", "similarity@search"])
    np.testing.assert_allclose(read.sources["lexical@search"][0, :4], [0.1, 0.2, 0.3, 0.4])
