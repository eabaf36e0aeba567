"""A test file of three-, four- and five-option questions, in ARC's JSON lines, through the whole
pipeline: every reader scores only the options a question has, the questions the blend was not
fitted on go to the heavy reader, and no submission row names a letter its question lacks."""

import csv

import pytest
from dagster import DagsterInstance

from pipeline.questions.question import LETTERS
from tests.assets.harness import SOURCES, Pipeline
from tests.conftest import FIXTURES

MIXED = FIXTURES / "answering" / "mixed_options.jsonl"
OPTIONS = {"m3": 3, "m4": 4, "m5": 5}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    with DagsterInstance.ephemeral() as instance:
        built = Pipeline(tmp_path_factory.mktemp("options"), instance)
        built.first = built.run(test=MIXED)
        yield built


def test_the_questions_keep_their_own_option_counts(pipeline: Pipeline) -> None:
    rows = pipeline.query("SELECT id, options, kind, answer FROM questions WHERE role = 'test'")
    assert {qid: (n, kind) for qid, n, kind, _ in rows} == {
        qid: (n, f"arc/{n}") for qid, n in OPTIONS.items()}
    assert dict((qid, answer) for qid, _, _, answer in rows) == {"m3": "A", "m4": "B", "m5": "C"}


def test_every_reader_scores_exactly_the_options_each_question_has(pipeline: Pipeline) -> None:
    counted = pipeline.query(
        "SELECT reader || '@' || ranking, question_id, "
        f"{' + '.join(f'({x} IS NOT NULL)::INT' for x in LETTERS)} "
        "FROM reader_logits WHERE role = 'test'")
    sources = {source for source, _, _ in counted}
    assert SOURCES | {"heavy@semantic"} <= sources
    for source, qid, scored in counted:
        assert scored == OPTIONS[qid], (source, qid)
    final = pipeline.query(
        f"SELECT question_id, {' + '.join(f'({x} IS NOT NULL)::INT' for x in LETTERS)} "
        "FROM answer_scores WHERE role = 'test'")
    assert dict(final) == OPTIONS


def test_questions_unlike_the_blend_questions_are_answered_by_the_heavy_reader(
        pipeline: Pipeline) -> None:
    """The blend was fitted on five-option Kaggle-CSV questions: the ARC questions are of
    another kind, so all three go to the heavy reader, whatever the share (0.5 here), while the
    validation questions (Kaggle CSV) keep the share."""
    meta = pipeline.first["cascade"]
    assert meta["test_unfamiliar"] == 3 and meta["test_unfamiliar_unread"] == 0
    assert meta["validation_unfamiliar"] == 0
    escalated = dict(pipeline.query("SELECT role, count(*) FILTER (WHERE escalated) "
                                    "FROM answer_scores GROUP BY role"))
    assert escalated == {"test": 3, "validation": 2, "blend": 7}
    # Answered by the heavy reader alone: its ranking is the answers' ranking.
    heavy = {q: row for q, *row in pipeline.query(
        "SELECT question_id, A, B, C, D, E FROM reader_logits "
        "WHERE reader = 'heavy' AND role = 'test'")}
    final = {q: row for q, *row in pipeline.query(
        "SELECT question_id, A, B, C, D, E FROM answer_scores WHERE role = 'test'")}
    for qid, n in OPTIONS.items():
        assert _order(heavy[qid], n) == _order(final[qid], n)


def _order(row: list[float], options: int) -> list[int]:
    return sorted(range(options), key=lambda i: -row[i])


def test_no_submission_row_names_a_letter_its_question_lacks(pipeline: Pipeline) -> None:
    with open(pipeline.submission, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [qid for qid, _ in rows] == ["m3", "m4", "m5"]
    for qid, prediction in rows:
        letters = prediction.split()
        assert len(letters) == 3 == len(set(letters))
        assert set(letters) <= set(LETTERS[: OPTIONS[qid]]), (qid, prediction)


def test_the_score_reports_the_labelled_test_set_with_its_option_counts(
        pipeline: Pipeline) -> None:
    rows = pipeline.query("SELECT role, question_set, questions, options, accuracy "
                          "FROM scores_by_set ORDER BY role")
    assert [r[:4] for r in rows] == [("test", "mixed_options", 3, "3-5"),
                                     ("validation", "validation", 5, "5")]
    assert all(0.0 <= r[4] <= 1.0 for r in rows)
    assert "mixed_options" in pipeline.first["score"]["by_question_set"]
