"""Sentence-level keyword queries of a question."""

from __future__ import annotations

from pipeline.questions.question import Question
from pipeline.retrieval.queries import (
    STOP_WORDS,
    build_all_queries,
    build_queries,
    words,
)


def question(prompt: str, *options: str, qid: str = "q") -> Question:
    return Question(qid, prompt, tuple(options), None, "test", 0)  # type: ignore[arg-type]


def test_words_are_lowercase_without_punctuation_or_stop_words() -> None:
    assert words("What is Newton's Second Law of Motion, (F = ma)?") == [
        "newton", "second", "law", "motion", "f", "ma"]
    assert words("The U.S.-based X-ray lab; it's 3.5 km away!") == [
        "u", "s", "based", "x", "ray", "lab", "3", "5", "km", "away"]
    assert words("Schrödinger\u2019s cat") == ["schrödinger", "cat"]
    assert "the" in STOP_WORDS and "which" in STOP_WORDS


def test_prompt_sentences_and_options_become_labelled_queries() -> None:
    q = question("Mitochondria produce ATP. Which organelle is the powerhouse of the cell?",
                 "The nucleus", "The mitochondrion", "The ribosome",
                 "The Golgi apparatus", "The lysosome", qid="7")
    queries = build_queries(q)
    assert [(x.label, x.sentence, x.text) for x in queries] == [
        ("prompt", 0, "mitochondria produce atp"),
        ("prompt", 1, "organelle powerhouse cell"),
        ("A", 0, "nucleus"),
        ("B", 0, "mitochondrion"),
        ("C", 0, "ribosome"),
        ("D", 0, "golgi apparatus"),
        ("E", 0, "lysosome"),
    ]
    assert queries[1].key == "7:prompt:1"
    assert queries[0].is_prompt and not queries[2].is_prompt
    assert len({x.key for x in queries}) == len(queries)


def test_words_repeat_once_per_query_in_order_of_first_appearance() -> None:
    q = question("Energy, energy and more ENERGY: how is energy conserved in energy systems?",
                 "a", "b", "c", "d", "e")
    assert build_queries(q)[0].words == ("energy", "conserved", "systems")


def test_empty_and_repeated_queries_are_dropped() -> None:
    q = question("Which is it? Photosynthesis in plants.",
                 "Photosynthesis in plants", "None of the above", "Plants photosynthesis",
                 "Respiration", "")
    queries = build_queries(q)
    # "Which is it?" is all stop words; option A repeats the prompt's query; B has only stop
    # words; C has the same words in another order, so it is a different query; E is empty.
    assert [(x.label, x.text) for x in queries] == [
        ("prompt", "photosynthesis plants"),
        ("C", "plants photosynthesis"),
        ("D", "respiration"),
    ]


def test_custom_stop_words_and_all_questions() -> None:
    q1 = question("Gravity bends light.", "a1", "b1", "c1", "d1", "e1", qid="1")
    q2 = question("Light travels fast.", "a2", "b2", "c2", "d2", "e2", qid="2")
    by_id = build_all_queries([q1, q2], stop_words={"light"})
    assert by_id["1"][0].words == ("gravity", "bends")
    assert by_id["2"][0].words == ("travels", "fast")
    assert [x.text for x in by_id["2"][1:]] == ["a2", "b2", "c2", "d2", "e2"]
