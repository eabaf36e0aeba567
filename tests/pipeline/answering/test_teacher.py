"""The teacher's labels: counted per question with the real (small) GGUF model, within budget."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from pipeline.answering import teacher
from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.readers import llama_cpp
from pipeline.models import ResolvedModel
from pipeline.questions.question import Question
from pipeline.questions.question_table import write_questions
from pipeline.questions.roles import TRAIN_RANKING
from pipeline.rankings.context_table import CONTEXTS_DDL
from pipeline.steps import StepError

SETTINGS = HeavySettings(context_tokens=32)


def _question(i: int, labelled: bool = True) -> Question:
    return Question(f"q{i}", f"Which number is {i}?", tuple(str(i + k) for k in range(5)),
                    "A" if labelled else None, "handmade", i)


def _warehouse(train: int, extra: int) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    _write(db, train, extra)
    return db


def _write(db: duckdb.DuckDBPyConnection, train: int, extra: int) -> None:
    """``train`` labelled train questions and ``extra`` unlabelled teacher-only ones, each with
    a context under the training ranking (and a validation question, which is never taught)."""
    roles = [("train", [_question(i) for i in range(train)]),
             ("teacher", [_question(100 + i, labelled=False) for i in range(extra)]),
             ("validation", [_question(900)])]
    write_questions(db, roles)
    db.execute(f"CREATE OR REPLACE TABLE packed_contexts ({CONTEXTS_DDL})")
    for role, questions in roles:
        for q in questions:
            db.execute("INSERT INTO packed_contexts (ranking, role, question_id, context) "
                       "VALUES (?, ?, ?, ?)", [TRAIN_RANKING, role, q.id,
                                               f"The number is {q.id[1:]}."])


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every question the real reader scores, by prompt (the work done, not a done flag)."""
    calls: list[str] = []
    score = llama_cpp.LlamaCppReader.score

    def counting(self, question, context):
        calls.append(question.prompt)
        return score(self, question, context)

    monkeypatch.setattr(llama_cpp.LlamaCppReader, "score", counting)
    return calls


def test_the_pool_is_read_once_per_question_and_growing_it_reads_only_the_new(
        smollm: ResolvedModel, counted: list[str]) -> None:
    db = _warehouse(train=4, extra=0)
    work = teacher.build(db, smollm, SETTINGS, None, log=lambda _: None)
    assert len(counted) == 4 and work.metadata["teacher_read"] == 4
    labels = teacher.labels(db)
    assert sorted(labels) == [("train", f"q{i}") for i in range(4)]
    assert all(np.isclose(np.nansum(np.exp(row)), 1.0) and np.isnan(row[5:]).all()
               for row in labels.values())

    # The same pool again: nothing is read, the labels are the same.
    again = teacher.build(db, smollm, SETTINGS, None, log=lambda _: None)
    assert len(counted) == 4 and again.data_version == work.data_version
    # Two unlabelled questions poured in: the teacher reads those two and nothing else.
    _write(db, train=4, extra=2)
    grown = teacher.build(db, smollm, SETTINGS, None, log=lambda _: None)
    assert len(counted) == 6 and counted[-2:] == ["Which number is 100?", "Which number is 101?"]
    assert grown.metadata["teacher_reused"] == 4
    assert sorted(teacher.labels(db)) == [("teacher", "q100"), ("teacher", "q101"),
                                          *[("train", f"q{i}") for i in range(4)]]
    assert teacher.describe(db)["train_labelled"] == 4


def test_the_budget_is_never_exceeded(smollm: ResolvedModel, counted: list[str]) -> None:
    db = _warehouse(train=4, extra=3)
    teacher.build(db, smollm, SETTINGS, 5, log=lambda _: None)
    # The first five of the pool, the labelled train questions first.
    assert sorted(counted) == sorted(f"Which number is {i}?" for i in (0, 1, 2, 3, 100))
    assert len(teacher.labels(db)) == 5
    # No time at all: nothing new is started, and what was labelled before stays labelled.
    out_of_time = teacher.build(db, smollm, HeavySettings(context_tokens=32, max_seconds=0.0),
                                None, log=lambda _: None)
    assert len(counted) == 5 and out_of_time.metadata["teacher_over_time_budget"] == 2
    assert out_of_time.undone == 2  # not complete: the next run reads them
    assert len(teacher.labels(db)) == 5
    with pytest.raises(StepError, match="max_questions"):
        teacher.build(db, smollm, SETTINGS, -1, log=lambda _: None)


def test_scored_roles_are_never_taught(smollm: ResolvedModel) -> None:
    db = _warehouse(train=1, extra=0)
    with pytest.raises(StepError, match="validation"):
        teacher.build(db, smollm, SETTINGS, None, roles=("train", "validation"),
                      log=lambda _: None)
