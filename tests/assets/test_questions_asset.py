"""The questions asset: roles, the validation split, bad files failing with nothing changed."""

from pathlib import Path

import duckdb
from dagster import DagsterInstance, RunConfig, materialize

from assets.questions import QuestionsConfig, questions
from pipeline.questions.question_table import read_question_table
from resources import Warehouse
from tests.conftest import FIXTURES

QUESTIONS = FIXTURES / "questions"
SMALL = {"test_path": str(QUESTIONS / "unlabelled.csv"),
         "validation_path": str(QUESTIONS / "labelled.csv"), "validation_split": False}


def run(instance: DagsterInstance, database: Path, **config):
    return materialize([questions], instance=instance,
                       resources={"warehouse": Warehouse(database=str(database))},
                       run_config=RunConfig({"questions": QuestionsConfig(**config)}),
                       raise_on_error=False)


def test_questions_are_stored_by_role_and_rerun_is_up_to_date(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    config = dict(SMALL)
    with DagsterInstance.ephemeral() as instance:
        first = run(instance, database, **config)
        assert first.success
        metadata = first.asset_materializations_for_node("questions")[0].metadata
        assert metadata["test_questions"].value == 2
        assert metadata["up_to_date"].value is False
        again = run(instance, database, **config)
        assert again.asset_materializations_for_node("questions")[0].metadata[
            "up_to_date"].value is True
    with duckdb.connect(str(database)) as db:
        rows = read_question_table(db)
    roles = [role for role, _ in rows]
    assert roles.count("test") == 2 and roles.count("validation") >= 1
    test = [q for role, q in rows if role == "test"]
    assert test[0].id == "t1" and test[0].answer is None and test[1].options[2] == "Carbon dioxide"


def test_a_bad_file_fails_naming_the_row_and_keeps_the_old_table(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    good = dict(SMALL)
    with DagsterInstance.ephemeral() as instance:
        assert run(instance, database, **good).success
        bad = run(instance, database, **{**good, "validation_path": str(
            QUESTIONS / "bad_rows.csv")})
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "bad_rows.csv, line" in str(failure.step_failure_data.error)
    with duckdb.connect(str(database)) as db:
        assert len(read_question_table(db, "test")) == 2


def test_by_default_blend_and_train_come_from_the_set_whose_sources_the_corpus_holds(
        tmp_path: Path) -> None:
    with DagsterInstance.ephemeral() as instance:
        result = run(instance, tmp_path / "w.duckdb", test_limit=200)
    metadata = {k: v.value for k, v in
                result.asset_materializations_for_node("questions")[0].metadata.items()}
    assert (metadata["test_questions"], metadata["validation_questions"]) == (200, 225)
    assert (metadata["blend_questions"], metadata["train_questions"]) == (150, 300)
    assert ("| train | stem_1k | 300 | kaggle_csv/5 | 300 | 0 |"
            in metadata["questions_by_role_and_set"])
    with duckdb.connect(str(tmp_path / "w.duckdb")) as db:
        sources = dict(db.execute("SELECT source, count(*) FROM questions WHERE role IN "
                                  "('blend', 'train') GROUP BY source").fetchall())
        recorded = db.execute("SELECT count(*) FROM questions WHERE role IN ('blend', 'train') "
                              "AND gold_title IS NULL").fetchone()[0]
    assert sources == {"stem_1k": 450} and recorded == 0  # every one names its source page


def test_a_pool_that_holds_the_test_file_drops_all_of_it(tmp_path: Path) -> None:
    data = Path(__file__).parents[2] / "data" / "questions"
    with DagsterInstance.ephemeral() as instance:
        result = run(instance, tmp_path / "w.duckdb", test_limit=200,
                     train_paths=[str(data / name) for name in
                                  ("stem_1k.csv", "extra_500.csv", "generated_6k.csv")])
    metadata = {k: v.value for k, v in
                result.asset_materializations_for_node("questions")[0].metadata.items()}
    # extra_500 is the test file: all of it leaves the pool, not only the 200 answered (its
    # row with an empty option is counted under that fault instead).
    assert metadata["pool_dropped"]["a test or validation question"] == 499
    with duckdb.connect(str(tmp_path / "w.duckdb")) as db:
        sources = dict(db.execute("SELECT source, count(*) FROM questions WHERE role = 'train' "
                                  "GROUP BY source").fetchall())
    assert set(sources) <= {"stem_1k", "generated_6k"} and sum(sources.values()) == 300


def _up_to_date(result) -> bool:
    return result.asset_materializations_for_node("questions")[0].metadata["up_to_date"].value


def test_a_test_file_replaced_at_the_same_path_is_read_again(tmp_path: Path) -> None:
    """Kaggle hands out its test set as a new test.csv at the old path: same config, new
    content. The table must hold the new questions, not report the old ones up to date."""
    database, test = tmp_path / "w.duckdb", tmp_path / "test.csv"
    test.write_text((QUESTIONS / "unlabelled.csv").read_text())
    config = {"test_path": str(test), "validation_path": str(QUESTIONS / "labelled.csv"),
              "validation_split": False}
    with DagsterInstance.ephemeral() as instance:
        assert run(instance, database, **config).success
        lines = test.read_text().splitlines()
        test.write_text("\n".join([lines[0], lines[1].replace("t1,", "t9,", 1)]) + "\n")
        again = run(instance, database, **config)
    assert _up_to_date(again) is False
    with duckdb.connect(str(database)) as db:
        assert [q.id for _, q in read_question_table(db, "test")] == ["t9"]


def test_rows_deleted_behind_an_up_to_date_step_are_written_again(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    config = dict(SMALL)
    with DagsterInstance.ephemeral() as instance:
        assert run(instance, database, **config).success
        with duckdb.connect(str(database)) as db:
            db.execute("DELETE FROM questions WHERE role = 'test'")
        again = run(instance, database, **config)
    assert _up_to_date(again) is False
    with duckdb.connect(str(database)) as db:
        assert len(read_question_table(db, "test")) == 2


FORMAT_FIXTURES = {
    "kaggle.csv": "id,prompt,A,B,C,D,E,answer\nk1,Which gas do plants release?,Oxygen,Argon,"
                  "Neon,Helium,,A\n",
    "mmlu_own.csv": "Which gas do plants release?,Argon,Oxygen,Neon,Helium,B\n",
    "arc.jsonl": '{"id": "a1", "question": {"stem": "Which gas do plants release?", "choices": '
                 '[{"label": "1", "text": "Argon"}, {"label": "2", "text": "Neon"}, '
                 '{"label": "3", "text": "Oxygen"}]}, "answerKey": "3"}\n',
    "obqa.jsonl": '{"id": "o1", "question_stem": "Which gas do plants release?", "choices": '
                  '{"label": ["A", "B", "C", "D"], "text": ["Argon", "Neon", "Helium", '
                  '"Oxygen"]}, "answerKey": "D"}\n',
    "mmlu_hf.jsonl": '{"question": "Which gas do plants release?", "choices": ["Argon", "Neon",'
                     ' "Oxygen", "Helium"], "answer": 2}\n',
    "sciq.jsonl": '{"question": "Which gas do plants release?", "correct_answer": "Oxygen", '
                  '"distractor1": "Argon", "distractor2": "Neon", "distractor3": "Helium", '
                  '"support": "Plants release oxygen in photosynthesis."}\n',
}


def test_every_format_is_answered_through_the_asset_with_its_own_option_count(
        tmp_path: Path) -> None:
    """Each format a public exam ships in is read by the questions asset as the test file: the
    options it has (never a padded fifth), the answer on the right letter, its kind recorded,
    and SciQ's passage kept apart from the prompt."""
    database = tmp_path / "w.duckdb"
    with DagsterInstance.ephemeral() as instance:
        for name, text in FORMAT_FIXTURES.items():
            path = tmp_path / name
            path.write_text(text)
            result = run(instance, database, test_path=str(path),
                         validation_path=str(QUESTIONS / "labelled.csv"),
                         validation_split=False)
            assert result.success, name
            metadata = result.asset_materializations_for_node("questions")[0].metadata
            with duckdb.connect(str(database)) as db:
                (question,) = [q for _, q in read_question_table(db, "test")]
                kind, passage = db.execute(
                    "SELECT kind, passage FROM questions WHERE role = 'test'").fetchone()
            assert question.option(question.answer) == "Oxygen", name
            count = len(question.options)
            assert count == (3 if name == "arc.jsonl" else 4), name
            assert metadata["questions_by_option_count"].value[f"test with {count} options"] == 1
            assert kind.endswith(f"/{count}") and kind.split("/")[0] in (
                "kaggle_csv", "mmlu_csv", "arc", "mmlu", "sciq"), name
            assert (passage is not None) == (name == "sciq.jsonl")
            assert "photosynthesis" not in question.prompt
