"""The training pool: cleaning, keeping scored questions out, and the fixed blend/train cut."""

from pathlib import Path

from pipeline.questions.formats import read_questions
from pipeline.questions.question import Question
from pipeline.questions.training_pool import fault_kind, read_pool

HEADER = "id,prompt,A,B,C,D,E,answer\n"


def write(path: Path, rows: list[str]) -> str:
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return str(path)


def question(i: int) -> str:
    return f"{i},What is fact number {i}?,one,two,three,four,five,{'ABCDE'[i % 5]}"


def test_bad_rows_duplicates_and_scored_prompts_are_dropped_and_counted(tmp_path: Path) -> None:
    first = write(tmp_path / "first.csv", [question(i) for i in range(10)] + [
        "10,An empty option?,one,,three,four,five,A",
        "11,A bad answer?,one,two,three,four,five,F",
        "3,What is fact number 3?,one,two,three,four,five,D"])  # a repeated id
    second = write(tmp_path / "second.csv", [
        "0,  what is FACT number 1 ?,one,two,three,four,five,B",   # same question, respaced
        "1,What is the scored question?,one,two,three,four,five,A",
        "2,A new question?,one,two,three,four,five,C"])
    scored = [Question("v", "What is the scored question", ("a", "b", "c", "d", "e"), "A",
                       "validation", 0)]
    pool = read_pool([first, second], scored, blend_size=4, train_size=None)
    assert pool.dropped == {"empty option B": 1, "answer … is not one of A, B, C, D, E": 1,
                            "duplicate id …": 1, "duplicate question": 1,
                            "a test or validation question": 1}
    assert pool.read == 16
    kept = pool.blend + pool.train
    assert len(pool.blend) == 4 and len(kept) == 11
    assert len({q.id for q in kept}) == 11, "ids are unique across files"
    assert {q.id for q in kept} >= {"first:0", "second:2"}
    assert any("first.csv, line 12" in example for example in pool.examples)


def test_the_cut_is_fixed_however_the_file_is_ordered(tmp_path: Path) -> None:
    rows = [question(i) for i in range(40)]
    forward = read_pool([write(tmp_path / "pool.csv", rows)], [], blend_size=10, train_size=5)
    backward = read_pool([write(tmp_path / "pool.csv", rows[::-1])], [], blend_size=10,
                         train_size=5)
    assert [q.id for q in forward.blend] == [q.id for q in backward.blend]
    assert [q.id for q in forward.train] == [q.id for q in backward.train]
    assert len(forward.train) == 5
    assert not {q.id for q in forward.blend} & {q.id for q in forward.train}


def test_of_stem_1k_only_the_train_side_is_pooled() -> None:
    stem = "data/questions/stem_1k.csv"
    pool = read_pool([stem], [], blend_size=0, train_size=None)
    validation_ids = {f"stem_1k:{q.id}" for q in read_questions(stem)} - {
        q.id for q in pool.train}
    assert len(pool.train) == 774 and len(validation_ids) == 225


def test_fault_kind_drops_particulars() -> None:
    assert fault_kind("duplicate id '7' (first at data row 2)") == "duplicate id …"
    assert fault_kind("has 5 fields, the header has 8") == "has … fields, the header has …"


def test_the_teachers_pool_takes_unlabelled_questions_and_drops_every_other_roles(
        tmp_path: Path) -> None:
    from pipeline.questions.training_pool import read_teacher_pool

    unlabelled = tmp_path / "generated.csv"
    unlabelled.write_text("id,prompt,A,B,C,D,E\n" + "".join(
        f"{i},What is new fact {i}?,one,two,three,four,five\n" for i in range(6))
        + "6,What is fact number 2?,one,two,three,four,five\n"      # a train prompt
        + "7,What is the scored question?,one,two,three,four,five\n"  # a validation prompt
        + "8,Broken?,one,,three,four,five\n"                        # an empty option
        + "9,What is new fact 0?,one,two,three,four,five\n")         # asked before
    taken = [Question("v", "What is the scored question", ("a", "b", "c", "d", "e"), "A",
                      "validation", 0),
             Question("t", "What is fact number 2?", ("one", "two", "three", "four", "five"),
                      "C", "train", 0)]
    pool = read_teacher_pool([str(unlabelled)], taken, size=None)
    assert sorted(q.id for q in pool.train) == [f"generated:{i}" for i in range(6)]
    assert all(q.answer is None for q in pool.train)
    assert pool.dropped == {"a question of another role": 2, "empty option B": 1,
                            "duplicate question": 1}
    # A size keeps a prefix of one fixed order: growing the size only adds questions.
    three = read_teacher_pool([str(unlabelled)], taken, size=3).train
    assert three == pool.train[:3]


def test_a_pool_mixes_formats_each_question_keeping_its_set(tmp_path: Path) -> None:
    """The 2nd place's mix: a Kaggle CSV, ARC JSON lines and SciQ in one pool, each question
    with its own set and option count; and with blend_paths the blend questions come from
    those files alone, never trained on."""
    kaggle = write(tmp_path / "kaggle.csv", [question(i) for i in range(6)])
    arc = tmp_path / "arc.jsonl"
    arc.write_text("".join(
        f'{{"id": "a{i}", "question": {{"stem": "Which ARC fact {i}?", "choices": ['
        '{"label": "1", "text": "x"}, {"label": "2", "text": "y"}, {"label": "3", "text": "z"}'
        ']}, "answerKey": "2"}\n' for i in range(4)))
    sciq = tmp_path / "sciq.jsonl"
    sciq.write_text("".join(
        f'{{"question": "Which SciQ fact {i}?", "correct_answer": "r", "distractor1": "s", '
        f'"distractor2": "t", "distractor3": "u", "support": "p"}}\n' for i in range(4)))
    pool = read_pool([kaggle, str(arc), str(sciq)], [], blend_size=5, train_size=None)
    everything = [*pool.blend, *pool.train]
    assert sorted({(q.source, len(q.options)) for q in everything}) == [
        ("arc", 3), ("kaggle", 5), ("sciq", 4)]
    assert len(everything) == 14 and all(q.id.startswith(f"{q.source}:") for q in everything)
    assert all(q.option(q.answer) in ("y", "r") for q in everything if q.source != "kaggle")
    apart = read_pool([kaggle, str(sciq)], [], blend_size=3, train_size=None,
                      blend_paths=[str(arc)])
    assert {q.source for q in apart.blend} == {"arc"} and len(apart.blend) == 3
    assert {q.source for q in apart.train} == {"kaggle", "sciq"} and len(apart.train) == 10
