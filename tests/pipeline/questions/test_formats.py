"""Reading the formats public science multiple-choice sets ship in, and their faults."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.questions.formats import (
    FORMATS,
    detect_format,
    read_questions,
    scan_questions,
)
from pipeline.questions.question import LETTERS, QuestionFileError

BENCHMARKS = Path(__file__).parents[3].parent / "shared/data/benchmarks"


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def arc(qid: str, stem: str, labels: str | list[str], key: str) -> dict:
    choices = [{"label": label, "text": f"{stem} option {label}"} for label in labels]
    return {"id": qid, "question": {"stem": stem, "choices": choices}, "answerKey": key}


def sciq(question: str, correct: str, *distractors: str, support: str = "") -> dict:
    record = {"question": question, "correct_answer": correct, "support": support}
    for number, text in enumerate(distractors, start=1):
        record[f"distractor{number}"] = text
    return record


def error_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(QuestionFileError) as error:
        read_questions(path, **kwargs)  # type: ignore[arg-type]
    return str(error.value)


# --- each format --------------------------------------------------------------------------------

def test_kaggle_csv_is_detected_and_read(tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text("id,prompt,A,B,C,D,E,answer\n"
                    "q1,What is H2O?,Water,Salt,Gold,Air,Iron,A\n"
                    "q2,Which is a gas?,Rock,Neon,Ice,,,B\n", encoding="utf-8")
    assert detect_format(path) == "kaggle_csv"
    questions = read_questions(path)
    assert [(q.id, q.answer, q.source, q.row) for q in questions] == [
        ("q1", "A", "exam", 0), ("q2", "B", "exam", 1)]
    assert questions[1].options == ("Rock", "Neon", "Ice")


def test_mmlu_csv_is_detected_and_read(tmp_path: Path) -> None:
    path = tmp_path / "astronomy_dev.csv"
    path.write_text("What is the Sun?,A planet,A star,A moon,A comet,B\n"
                    '"Which, of these, orbits?",Earth,Sun,Moon,C\n', encoding="utf-8")
    assert detect_format(path) == "mmlu_csv"
    questions = read_questions(path)
    assert [(q.id, q.answer, q.row, q.source) for q in questions] == [
        ("0", "B", 0, "astronomy_dev"), ("1", "C", 1, "astronomy_dev")]
    assert questions[0].options == ("A planet", "A star", "A moon", "A comet")
    assert questions[1].prompt == "Which, of these, orbits?"
    assert questions[1].options == ("Earth", "Sun", "Moon")


def test_mmlu_csv_faults_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Fine?,yes,no,A\n"
                    ",yes,no,A\n"
                    "Which?,yes,no,E\n"
                    "Alone?,only,A\n", encoding="utf-8")
    questions, problems = scan_questions(path)
    assert [q.id for q in questions] == ["0"]
    found = [(p.line, p.message) for p in problems]
    assert (2, "question (column 1): empty question") in found
    assert (3, "answer (last column): 'E' is not one of A, B") in found
    assert any(line == 4 and "options" in m and "1 option" in m for line, m in found)


def test_arc_reads_3_4_and_5_option_questions_in_one_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "arc_easy.jsonl", [
        arc("a1", "Three?", "ABC", "C"),
        arc("a2", "Four?", "ABCD", "B"),
        arc("a3", "Five?", "ABCDE", "E"),
    ])
    assert detect_format(path) == "arc"
    questions = read_questions(path)
    assert [len(q.options) for q in questions] == [3, 4, 5]
    assert [(q.id, q.answer, q.row, q.source) for q in questions] == [
        ("a1", "C", 0, "arc_easy"), ("a2", "B", 1, "arc_easy"), ("a3", "E", 2, "arc_easy")]
    assert questions[2].option("E") == "Five? option E"
    assert questions[0].prompt == "Three?"
    assert all(q.passage is None for q in questions)


def test_arc_numeric_labels_map_to_letters_by_position(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "arc.jsonl", [
        arc("n1", "Numbered?", ["1", "2", "3", "4"], "3"),
        # Labels out of order: the choice order decides the letter, not the label's value.
        arc("n2", "Shuffled?", ["4", "1", "3", "2"], "1"),
    ])
    first, second = read_questions(path)
    assert first.answer == "C"
    assert first.option("C") == "Numbered? option 3"
    assert second.answer == "B"
    assert second.option("B") == "Shuffled? option 1"


def test_openbookqa_hugging_face_form_with_columnar_choices(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "obqa.jsonl", [{
        "id": "7-57", "question_stem": "Gas can fill any container, and liquid",
        "choices": {"text": ["is heavy", "is odd", "is few", "uses what it needs"],
                    "label": ["A", "B", "C", "D"]},
        "answerKey": "D"}])
    assert detect_format(path) == "arc"
    (question,) = read_questions(path)
    assert question.prompt == "Gas can fill any container, and liquid"
    assert question.options[3] == "uses what it needs"
    assert question.answer == "D"


def test_mmlu_records_with_int_and_letter_answers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mmlu_stem.jsonl", [
        {"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"], "answer": 1},
        {"question": "First?", "choices": ["x", "y", "z", "w"], "answer": 0},
        {"question": "Lettered?", "choices": ["x", "y", "z"], "answer": "C"},
    ])
    assert detect_format(path) == "mmlu"
    questions = read_questions(path)
    assert [(q.id, q.answer, q.row) for q in questions] == [
        ("0", "B", 0), ("1", "A", 1), ("2", "C", 2)]
    assert questions[0].option("B") == "4"
    assert questions[2].options == ("x", "y", "z")


def test_mmlu_int_answer_out_of_range_is_a_problem(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mmlu.jsonl", [
        {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 4}])
    message = error_of(path)
    assert "line 1" in message
    assert "answer: 4 is not an index of the 4 choices" in message


def test_sciq_shuffle_is_deterministic_and_keeps_the_answer_right(tmp_path: Path) -> None:
    records = [sciq(f"Question {i}?", f"right {i}", f"wrong {i}a", f"wrong {i}b", f"wrong {i}c")
               for i in range(40)]
    path = write_jsonl(tmp_path / "sciq_validation.jsonl", records)
    assert detect_format(path) == "sciq"
    questions = read_questions(path)
    again = read_questions(write_jsonl(tmp_path / "copy.jsonl", records))
    assert [q.options for q in questions] == [q.options for q in again]
    assert [q.answer for q in questions] == [q.answer for q in again]
    for i, question in enumerate(questions):
        assert question.id == str(i)
        assert question.option(question.answer) == f"right {i}"  # type: ignore[arg-type]
        assert sorted(question.options) == sorted(
            [f"right {i}", f"wrong {i}a", f"wrong {i}b", f"wrong {i}c"])
    # No position bias: the correct answer does not sit at one letter.
    assert len({q.answer for q in questions}) == 4


def test_sciq_support_goes_to_passage_only_and_empty_distractors_drop(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sciq.jsonl", [
        sciq("What do plants make?", "sugar", "salt", "", "iron",
             support="Plants make sugar by photosynthesis."),
        sciq("Unsupported?", "yes", "no", "maybe", "never"),
    ])
    first, second = read_questions(path)
    assert first.passage == "Plants make sugar by photosynthesis."
    assert "photosynthesis" not in first.prompt
    assert not any("photosynthesis" in option for option in first.options)
    assert sorted(first.options) == ["iron", "salt", "sugar"]
    assert first.option(first.answer) == "sugar"  # type: ignore[arg-type]
    assert second.passage is None


def test_json_list_file_reports_the_line_a_record_starts_on(tmp_path: Path) -> None:
    records = [{"question": "Good?", "choices": ["a", "b"], "answer": 0},
               {"question": "Bad?", "choices": ["a", "b"], "answer": 7}]
    path = tmp_path / "set.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    assert detect_format(path) == "mmlu"
    questions, problems = scan_questions(path)
    assert [q.prompt for q in questions] == ["Good?"]
    assert [(p.line, p.data_row) for p in problems] == [(10, 2)]


def test_json_list_syntax_error_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n{"question": "Q", "choices": ["a", "b"], "answer": 0}\n'
                    '{"question": "R"}\n]', encoding="utf-8")
    message = error_of(path, format="mmlu")
    assert "line 3" in message and "not valid JSON" in message


# --- Parquet and Arrow --------------------------------------------------------------------------

SCIQ_TABLE = pa.table({
    "question": ["Q one?", "Q two?"], "correct_answer": ["yes", "right"],
    "distractor1": ["no", "wrong"], "distractor2": ["maybe", "left"],
    "distractor3": ["never", "up"], "support": ["", "A passage."]})


def test_parquet_with_kaggle_columns_drops_trailing_empty_options(tmp_path: Path) -> None:
    path = tmp_path / "exam.parquet"
    pq.write_table(pa.table({
        "id": ["k1", "k2"], "prompt": ["P1?", "P2?"], "A": ["a", "a"], "B": ["b", "b"],
        "C": ["c", None], "D": ["d", ""], "E": [None, None], "answer": ["D", "B"]}), path)
    assert detect_format(path) == "kaggle_csv"
    questions = read_questions(path)
    assert [(q.id, q.options, q.answer, q.row) for q in questions] == [
        ("k1", ("a", "b", "c", "d"), "D", 0), ("k2", ("a", "b"), "B", 1)]


def test_parquet_problems_name_the_record(tmp_path: Path) -> None:
    path = tmp_path / "mmlu.parquet"
    pq.write_table(pa.table({"question": ["Fine?", "One?"],
                             "choices": [["a", "b"], ["only"]], "answer": [1, 0]}), path)
    message = error_of(path)
    assert f"{path}, line 2 (data row 2, counting from 1): choices: has 1 option(s)" in message


@pytest.mark.parametrize("writer", ["file", "stream"])
def test_arrow_file_in_either_ipc_format(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "sciq.arrow"
    open_writer = pa.ipc.new_file if writer == "file" else pa.ipc.new_stream
    with pa.OSFile(str(path), "wb") as sink, open_writer(sink, SCIQ_TABLE.schema) as out:
        out.write_table(SCIQ_TABLE)
    assert detect_format(path) == "sciq"
    questions = read_questions(path)
    assert [(q.id, q.row, q.passage) for q in questions] == [
        ("0", 0, None), ("1", 1, "A passage.")]
    assert questions[1].option(questions[1].answer) == "right"  # type: ignore[arg-type]


def test_datasets_save_to_disk_directory(tmp_path: Path) -> None:
    directory = tmp_path / "openbookqa_main"
    directory.mkdir()
    table = pa.table({
        "id": ["o1", "o2"], "question_stem": ["Stem one", "Stem two"],
        "choices": [{"text": ["w", "x", "y", "z"], "label": ["A", "B", "C", "D"]},
                    {"text": ["p", "q", "r", "s"], "label": ["A", "B", "C", "D"]}],
        "answerKey": ["B", "D"]})
    with pa.OSFile(str(directory / "data-00000-of-00001.arrow"), "wb") as sink, \
            pa.ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    (directory / "dataset_info.json").write_text("{}", encoding="utf-8")
    (directory / "state.json").write_text("{}", encoding="utf-8")
    assert detect_format(directory) == "arc"
    questions = read_questions(directory)
    assert [(q.id, q.answer, q.source, q.row) for q in questions] == [
        ("o1", "B", "openbookqa_main", 0), ("o2", "D", "openbookqa_main", 1)]
    assert questions[1].option("D") == "s"


# --- faults -------------------------------------------------------------------------------------

def test_faults_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "arc_bad.jsonl"
    lines = [json.dumps(arc("ok", "Fine?", "ABCD", "A")),
             '{"id": "broken", "question": ',
             json.dumps(arc("badkey", "Key?", "ABCD", "F")),
             json.dumps(arc("single", "One?", "A", "A")),
             json.dumps(arc("ok", "Again?", "ABC", "A")),
             json.dumps(arc("", "No id?", "AB", "A"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    questions, problems = scan_questions(path)
    assert [q.id for q in questions] == ["ok"]
    found = [(p.line, p.data_row, p.message) for p in problems]
    assert found[0][:2] == (2, 2) and found[0][2].startswith("not valid JSON: ")
    assert (3, 3, "answerKey: 'F' is not one of the labels A, B, C, D") in found
    assert (4, 4, "question.choices: has 1 option(s); a question needs at least 2") in found
    assert (5, 5, "id: duplicate id 'ok' (first at data row 1)") in found
    assert (6, 6, "id: empty id") in found
    message = error_of(path)
    assert f"{path}, line 3 (data row 3, counting from 1): answerKey" in message


def test_empty_option_is_a_problem_unless_allowed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mmlu.jsonl", [
        {"question": "Q?", "choices": ["a", " ", "c"], "answer": 0}])
    assert "choices: option B is empty" in error_of(path)
    (question,) = read_questions(path, allow_empty_options=True)
    assert question.options == ("a", " ", "c")


def test_mixed_labelled_and_unlabelled_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        arc("l1", "Labelled?", "ABCD", "A"),
        {**arc("u1", "Unlabelled?", "ABCD", "A"), "answerKey": None},
        {k: v for k, v in arc("u2", "Missing?", "ABCD", "A").items() if k != "answerKey"},
    ])
    questions, problems = scan_questions(path)
    assert [q.id for q in questions] == ["l1"]
    assert [(p.line, p.message) for p in problems] == [
        (2, "answerKey: no answer, though other records of the file have one"),
        (3, "answerKey: no answer, though other records of the file have one")]


def test_wholly_unlabelled_file_reads_without_answers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "test_split.jsonl", [
        {"question": "Q1?", "choices": ["a", "b"]}, {"question": "Q2?", "choices": ["c", "d"]}])
    assert [q.answer for q in read_questions(path)] == [None, None]


# --- detection and format names -----------------------------------------------------------------

def test_format_override(tmp_path: Path) -> None:
    # A header-less MMLU row that happens to hold the words "id" and "prompt".
    path = tmp_path / "words.csv"
    path.write_text("What does id mean?,id,prompt,A\n", encoding="utf-8")
    assert detect_format(path) == "kaggle_csv"
    (question,) = read_questions(path, format="mmlu_csv")
    assert (question.prompt, question.options, question.answer) == (
        "What does id mean?", ("id", "prompt"), "A")
    # Forcing the wrong record shape reports the fields that shape needs.
    sciq_path = write_jsonl(tmp_path / "sciq.jsonl", [sciq("Q?", "yes", "no")])
    assert "answerKey" not in error_of(sciq_path, format="arc")
    assert "id: missing" in error_of(sciq_path, format="arc")
    with pytest.raises(QuestionFileError, match="not a CSV format"):
        read_questions(path, format="arc")


def test_unknown_format_name_lists_the_known_ones(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [sciq("Q?", "yes", "no")])
    with pytest.raises(ValueError, match="unknown question format 'hellaswag'") as error:
        read_questions(path, format="hellaswag")
    assert all(name in str(error.value) for name in FORMATS)


@pytest.mark.parametrize(("name", "content", "seen"), [
    ("notes.txt", "hello\n", "'.txt'"),
    ("odd.jsonl", '{"title": "x", "text": "y"}\n', "text, title"),
    ("half.csv", "prompt,A,B\n", "'prompt'"),
    ("empty.jsonl", "\n", "no record"),
])
def test_detection_failure_names_file_and_what_was_seen(tmp_path: Path, name: str, content: str,
                                                        seen: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(QuestionFileError) as error:
        detect_format(path)
    assert str(path) in str(error.value)
    assert "cannot tell the question format" in str(error.value)
    assert seen in str(error.value)


# --- the real sets ------------------------------------------------------------------------------

@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="shared/data/benchmarks is absent")
@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARKS.glob("*.jsonl")))
def test_first_records_of_the_real_benchmarks(tmp_path: Path, name: str) -> None:
    with open(BENCHMARKS / name, encoding="utf-8") as handle:
        head = [next(handle) for _ in range(20)]
    path = tmp_path / name
    path.write_text("".join(head), encoding="utf-8")
    questions = read_questions(path)
    assert len(questions) == 20
    assert len({q.id for q in questions}) == 20
    for question in questions:
        assert 2 <= len(question.options) <= 5
        assert question.answer in LETTERS[: len(question.options)]
        assert question.prompt.strip()
