"""Per-source logits in the warehouse: one source's rows replaced alone, read back aligned."""

import duckdb
import numpy as np
import pytest

from pipeline.answering.logit_table import read_role, write_logits


@pytest.fixture
def db() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE questions (role VARCHAR, id VARCHAR, row INTEGER, "
                       "answer VARCHAR)")
    connection.execute("INSERT INTO questions VALUES ('validation', 'b', 1, 'B'), "
                       "('validation', 'a', 0, 'A'), ('test', 't', 0, NULL)")
    return connection


def test_logits_are_read_back_in_question_order(db: duckdb.DuckDBPyConnection) -> None:
    keys = [("validation", "b"), ("test", "t"), ("validation", "a")]
    write_logits(db, "lexical", "es", keys, np.arange(15, dtype=float).reshape(3, 5))
    write_logits(db, "lexical", "semantic", keys, np.ones((3, 5)))
    read = read_role(db, "validation", ["lexical@es", "lexical@semantic"])
    assert read.question_ids == ["a", "b"] and read.answers == ["A", "B"]
    np.testing.assert_array_equal(read.sources["lexical@es"][0], np.arange(10, 15))
    write_logits(db, "lexical", "es", keys, np.zeros((3, 5)))
    again = read_role(db, "validation", ["lexical@es", "lexical@semantic"])
    assert not again.sources["lexical@es"].any()
    np.testing.assert_array_equal(again.sources["lexical@semantic"], np.ones((2, 5)))


def test_a_source_missing_questions_is_an_error(db: duckdb.DuckDBPyConnection) -> None:
    write_logits(db, "lexical", "es", [("validation", "a")], np.zeros((1, 5)))
    with pytest.raises(LookupError, match="lexical@es has no logits for 1 validation"):
        read_role(db, "validation", ["lexical@es"])
    with pytest.raises(ValueError, match="2 questions but logits of shape"):
        write_logits(db, "lexical", "es", [("test", "t"), ("test", "u")], np.zeros((1, 5)))
