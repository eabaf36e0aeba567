"""What the readers read: a set's own gold passage stays out of the context unless asked for."""

import duckdb
import pytest

from pipeline.answering.reading_list import reading_list
from pipeline.questions.question import Question
from pipeline.questions.question_table import write_questions
from pipeline.rankings.context_table import CONTEXTS_DDL

SCIQ = Question("s1", "What do plants release?", ("Oxygen", "Argon", "Neon", "Helium"), "A",
                "sciq_validation", 0, passage="Plants release oxygen in photosynthesis.")
PLAIN = Question("k1", "Which gas is inert?", ("Argon", "Oxygen"), "A", "kaggle", 0)


@pytest.mark.parametrize("show", [False, True])
def test_a_sets_own_passage_is_read_only_when_the_run_shows_it(show: bool) -> None:
    db = duckdb.connect()
    write_questions(db, [("test", [SCIQ, PLAIN])], show_passages=show)
    db.execute(f"CREATE TABLE packed_contexts ({CONTEXTS_DDL})")
    for qid in ("s1", "k1"):
        db.execute("INSERT INTO packed_contexts (ranking, role, question_id, context) "
                   "VALUES ('semantic', 'test', ?, 'Retrieved text.')", [qid])
    items = reading_list(db, "semantic")
    contexts = {qid: text for (_, qid), text in zip(items.keys, items.contexts, strict=True)}
    assert contexts["k1"] == "Retrieved text."
    if show:
        assert contexts["s1"] == f"{SCIQ.passage}\nRetrieved text."
    else:
        assert contexts["s1"] == "Retrieved text."
