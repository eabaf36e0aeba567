"""The questions table: read back in one order, whatever order the rows were written in."""

import duckdb

from pipeline.questions.question import Question
from pipeline.questions.question_table import read_question_table, write_questions


def _question(source: str, row: int, qid: str) -> Question:
    return Question(id=qid, prompt=f"{source} question {row}?", options=("a", "b", "c", "d", "e"),
                    answer="A", source=source, row=row)


def test_ties_between_pool_files_are_read_in_one_order() -> None:
    """Two pool files both have a row 2: the train order (and so the trained weights) must not
    depend on which was written first."""
    pool = [_question("stem_1k", 2, "s2"), _question("extra_500", 2, "x2"),
            _question("extra_500", 1, "x1"), _question("stem_1k", 3, "s3")]
    orders = []
    for written in (pool, pool[::-1], [pool[1], pool[3], pool[0], pool[2]]):
        db = duckdb.connect()
        write_questions(db, [("train", written)])
        orders.append([q.id for _, q in read_question_table(db, "train")])
    assert orders[0] == orders[1] == orders[2]
    assert orders[0][0] == "x1"  # file order first: row 1 before the rows 2
