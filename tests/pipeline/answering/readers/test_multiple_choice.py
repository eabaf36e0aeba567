"""The multiple-choice reader trains on the bundled MiniLM, saves, reloads and ranks answers.

Thirty-two hand-written questions whose context states the answer beside a decoy sentence:
trained on 24, the reader must answer the 8 it never saw (when this was written: 1 of 8
untrained, 8 of 8 after one epoch; with both learning rates at 0 the test fails).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pipeline.answering.readers.multiple_choice import (
    MultipleChoiceReader,
    encode,
    load_scorer,
    score_examples,
    train,
)
from pipeline.questions.csv_format import LETTERS, Question
from tests.conftest import FIXTURES

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
FACTS_FILE = FIXTURES / "reader" / "facts.csv"

@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    from pipeline.models import ModelNotFoundError, resolve

    try:
        return resolve("sentence-transformers/all-MiniLM-L6-v2", online=False,
                       log=lambda _: None).path
    except ModelNotFoundError as exc:
        pytest.skip(f"MiniLM is not installed: {exc.reason if hasattr(exc, 'reason') else exc}")


def test_all_five_options_meet_the_same_sentences_and_each_option_is_whole(
        minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    question = Question("q", "Which planet is known as the Red Planet?",
                        ("Mars", "Venus, the second planet from the Sun and the brightest",
                         "Jupiter", "Saturn", "Mercury"), "A", "handmade", 0)
    context = "Mars is red. It has two moons. Venus is bright."
    batch = encode(tokenizer, [(question, context), (question, "One sentence only.")], 64)
    assert batch["options"]["input_ids"].shape[0] == 10  # five options per question
    assert batch["owner"].tolist() == [0, 0, 0, 1]
    texts = [tokenizer.decode(ids, skip_special_tokens=True)
             for ids in batch["options"]["input_ids"]]
    assert texts[1] == f"{question.prompt} {question.options[1]}".lower()  # the prompt first
    sentences = [tokenizer.decode(ids, skip_special_tokens=True)
                 for ids in batch["sentences"]["input_ids"]]
    assert sentences == ["mars is red.", "it has two moons.", "venus is bright.",
                         "one sentence only."]


def _facts() -> list[tuple[Question, str]]:
    """Thirty-two short science questions, each with a context of two sentences: the one that
    states the answer, and a decoy that restates the question with a wrong option "according
    to an old myth". The decoy is the sentence closest to a wrong (question + option) text, so
    the untrained reader (the similarity reader) falls for it; a reader that learns from the
    answers learns to distrust such sentences, on questions it never saw too."""
    with open(FACTS_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    facts = []
    for i, row in enumerate(rows):
        wrong = [x for x in LETTERS if x != row["answer"]]
        decoy = f"{row['prompt'].rstrip('?')}: {row[wrong[i % 4]]}, according to an old myth."
        sentences = [decoy, row["context"]] if i % 2 else [row["context"], decoy]
        facts.append((Question(row["id"], row["prompt"], tuple(row[x] for x in LETTERS),
                               row["answer"], "facts", i), " ".join(sentences)))
    return facts


def _accuracy(logits: np.ndarray, items: list[tuple[Question, str]]) -> float:
    return float(np.mean([LETTERS[i] == q.answer for i, (q, _) in
                          zip(logits.argmax(axis=1), items, strict=True)]))


def test_training_raises_accuracy_on_held_apart_questions_and_keeps_the_best_epoch(
        minilm_dir: Path, tmp_path: Path) -> None:
    facts = _facts()
    learn, held_apart = facts[:24], facts[24:]
    untrained, tokenizer, _ = load_scorer(minilm_dir, fresh_head=True)
    before = _accuracy(score_examples(untrained, tokenizer, held_apart, 64, 8,
                                      torch.device("cpu")), held_apart)

    logged: list[str] = []
    report = train(minilm_dir, learn, tmp_path / "mc", eval_examples=held_apart, epochs=2,
                   batch_size=4, lr=1e-4, head_lr=1e-2, max_length=64, seed=0,
                   log=logged.append, log_every=6)
    assert report.steps == 12 and len(report.losses) == 12 and np.isfinite(report.losses).all()
    assert [p.epoch for p in report.curve] == [0.0, 1.0, 2.0]
    assert report.curve[0].accuracy == before  # the curve starts at the untrained reader
    assert any(line.startswith("epoch 1.0: train loss") for line in logged)
    assert (tmp_path / "mc" / "scale.safetensors").is_file()

    reader = MultipleChoiceReader(tmp_path / "mc")
    assert reader.max_length == 64  # read back from the saved reader settings
    logits = reader.score_many(held_apart)
    assert logits.shape == (8, 5) and np.isfinite(logits).all()
    after = _accuracy(logits, held_apart)
    assert before <= 0.25 and after >= 0.75, (before, after)
    # The weights kept are those of the best held-out MAP@3 among the evaluations.
    best = max(report.curve, key=lambda p: p.map_at_3)
    assert report.best_epoch == best.epoch
    assert after == pytest.approx(best.accuracy)


def _teacher_rows(items: list[tuple[Question, str]], sure: float = 0.85) -> np.ndarray:
    """A fixture teacher: ``sure`` of its mass on the stated answer, the rest spread evenly
    (as log-probabilities, the form the heavy reader's labels take)."""
    rows = np.full((len(items), 5), (1 - sure) / 4)
    for row, (question, _) in zip(rows, items, strict=True):
        row[LETTERS.index(question.answer)] = sure
    return np.log(rows)


def _divergence(teacher: np.ndarray, logits: np.ndarray) -> float:
    """Mean KL(teacher || student) over questions."""
    student = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return float((np.exp(teacher) * (teacher - student)).sum(axis=1).mean())


def test_the_kl_term_moves_the_student_toward_the_teacher_on_held_apart_questions(
        minilm_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    facts = _facts()
    # The student never sees an answer: the teacher's distribution is all it learns from.
    learn = [(replace(q, answer=None), c) for q, c in facts[:24]]
    held_apart = facts[24:]
    untrained, tokenizer, _ = load_scorer(minilm_dir, fresh_head=True)
    before = _divergence(_teacher_rows(held_apart), score_examples(
        untrained, tokenizer, held_apart, 64, 8, torch.device("cpu")))

    train(minilm_dir, learn, tmp_path / "student", epochs=2, batch_size=4, lr=1e-4,
          head_lr=1e-2, max_length=64, seed=0, log=lambda _: None,
          teacher=list(_teacher_rows(facts[:24])), gold_weight=0.0, temperature=2.0)
    logits = MultipleChoiceReader(tmp_path / "student").score_many(held_apart)
    after = _divergence(_teacher_rows(held_apart), logits)
    assert after < 0.5 * before, (before, after)
    assert _accuracy(logits, held_apart) >= 0.75  # the teacher's top choice, on unseen questions


def test_an_example_with_neither_answer_nor_teacher_is_refused(minilm_dir: Path,
                                                                tmp_path: Path) -> None:
    from dataclasses import replace

    question, context = _facts()[0]
    with pytest.raises(ValueError, match="neither an answer nor a teacher"):
        train(minilm_dir, [(replace(question, answer=None), context)], tmp_path,
              teacher=[None], log=lambda _: None)


def test_the_mixed_loss_weighs_gold_and_teacher_and_skips_questions_with_neither() -> None:
    from pipeline.answering.readers.option_scorer import mixed_loss

    functional = torch.nn.functional
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0],
                           [0.0, 0.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    teacher = torch.log(torch.tensor([[0.1, 0.6, 0.1, 0.1, 0.1]] * 4))
    nothing = torch.full((5,), float("nan"))
    labels = torch.tensor([0, -1, 2, -1])
    soft = torch.stack([teacher[0], teacher[1], nothing, nothing])
    loss = mixed_loss(logits, labels, soft, gold_weight=0.25, temperature=2.0)

    def kl(row: int) -> torch.Tensor:
        target = functional.log_softmax(teacher[row] / 2.0, dim=0)
        student = functional.log_softmax(logits[row] / 2.0, dim=0)
        return (target.exp() * (target - student)).sum() * 4.0

    ce = functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    # Row 0 has both (0.25 CE + 0.75 KL), row 1 the teacher alone, row 2 gold alone, row 3
    # neither (left out of the mean).
    expected = (0.25 * ce[0] + 0.75 * kl(0) + kl(1) + ce[2]) / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = mixed_loss(logits[[0, 2]], labels[[0, 2]], torch.stack([nothing, nothing]), 0.5, 1.0)
    assert plain.item() == pytest.approx(functional.cross_entropy(
        logits[[0, 2]], labels[[0, 2]]).item(), rel=1e-6)


def test_the_int8_student_is_smaller_and_answers_alike(minilm_dir: Path, tmp_path: Path) -> None:
    from pipeline.answering.scorecard import folder_mb, quantized_mb

    facts = _facts()
    train(minilm_dir, facts[:24], tmp_path / "mc", epochs=1, batch_size=4, lr=1e-4,
          max_length=64, seed=0, log=lambda _: None)
    full = MultipleChoiceReader(tmp_path / "mc")
    small = MultipleChoiceReader(tmp_path / "mc", runtime="int8")
    assert any("quantized" in type(m).__module__ for m in small.scorer.modules())
    assert quantized_mb(small.scorer) < 0.5 * folder_mb(tmp_path / "mc")
    fp32, int8 = full.score_many(facts[24:]), small.score_many(facts[24:])
    assert (fp32.argmax(axis=1) == int8.argmax(axis=1)).mean() >= 0.75
    with pytest.raises(ValueError, match="runtime"):
        MultipleChoiceReader(tmp_path / "mc", runtime="int4")
