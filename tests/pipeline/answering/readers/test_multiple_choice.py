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
    label_of,
    load_scorer,
    save_scorer,
    score_examples,
    teacher_row,
    train,
)
from pipeline.questions.question import LETTERS, MAX_OPTIONS, Question
from tests.conftest import FIXTURES
from tests.pipeline.answering.readers.ragged import assert_rows_as_alone

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
FACTS_FILE = FIXTURES / "reader" / "facts.csv"
FIVE = LETTERS[:5]  # the fixture's questions have five options

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
    assert batch["option_owner"].tolist() == [0] * 5 + [1] * 5
    assert batch["option_slot"].tolist() == [0, 1, 2, 3, 4] * 2
    assert batch["counts"].tolist() == [5, 5]
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
        wrong = [x for x in FIVE if x != row["answer"]]
        decoy = f"{row['prompt'].rstrip('?')}: {row[wrong[i % 4]]}, according to an old myth."
        sentences = [decoy, row["context"]] if i % 2 else [row["context"], decoy]
        facts.append((Question(row["id"], row["prompt"], tuple(row[x] for x in FIVE),
                               row["answer"], "facts", i), " ".join(sentences)))
    return facts


def _accuracy(logits: np.ndarray, items: list[tuple[Question, str]]) -> float:
    return float(np.mean([LETTERS[i] == q.answer for i, (q, _) in
                          zip(np.nanargmax(logits, axis=1), items, strict=True)]))


def _cut(question: Question, k: int) -> Question:
    """``question`` with ``k`` of its options: the answer and the first wrong ones, in order."""
    from dataclasses import replace

    gold = question.letters.index(question.answer)
    keep = sorted([gold, *[i for i in range(len(question.options)) if i != gold][: k - 1]])
    return replace(question, options=tuple(question.options[i] for i in keep),
                   answer=LETTERS[keep.index(gold)])


def _ragged() -> list[tuple[Question, str]]:
    """Fact questions cut to 3, 4, 5 and 2 options, in turn."""
    return [(_cut(q, (3, 4, 5, 2)[i % 4]), c) for i, (q, c) in enumerate(_facts())]


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
                   log=logged.append)
    assert report.steps == 12 and len(report.losses) == 12 and np.isfinite(report.losses).all()
    assert [p.epoch for p in report.curve] == [0.0, 1.0, 2.0]
    assert report.curve[0].accuracy == before  # the curve starts at the untrained reader
    assert any(line.startswith("epoch 1.0: train loss") for line in logged)
    assert (tmp_path / "mc" / "scale.safetensors").is_file()

    reader = MultipleChoiceReader(tmp_path / "mc")
    assert reader.max_length == 64  # read back from the saved reader settings
    logits = reader.score_many(held_apart)
    assert logits.shape == (8, MAX_OPTIONS)
    assert np.isfinite(logits[:, :5]).all() and np.isnan(logits[:, 5:]).all()
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
    """Mean KL(teacher || student) over questions (all with five options)."""
    logits = logits[:, : teacher.shape[1]]
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
    assert (np.nanargmax(fp32, axis=1) == np.nanargmax(int8, axis=1)).mean() >= 0.75
    with pytest.raises(ValueError, match="runtime"):
        MultipleChoiceReader(tmp_path / "mc", runtime="int4")


@pytest.fixture(scope="module")
def untrained_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The untrained reader saved as a reader folder (MiniLM and the initial scale)."""
    scorer, tokenizer, _ = load_scorer(minilm_dir, fresh_head=True)
    folder = tmp_path_factory.mktemp("untrained")
    save_scorer(scorer, tokenizer, folder, {"max_length": 64})
    return folder


def test_ragged_fixture_keeps_the_answer() -> None:
    items = _ragged()
    assert [len(q.options) for q, _ in items[:4]] == [3, 4, 5, 2]
    for (cut, _), (whole, _) in zip(items, _facts(), strict=True):
        assert cut.option(cut.answer) == whole.option(whole.answer)
        assert set(cut.options) <= set(whole.options)


def test_questions_of_three_four_and_five_options_share_a_batch(untrained_dir: Path) -> None:
    from transformers import AutoTokenizer

    items = _ragged()[:3]  # 3, 4 and 5 options
    batch = encode(AutoTokenizer.from_pretrained(untrained_dir), items, 64)
    assert batch["options"]["input_ids"].shape[0] == 12  # only the options they have
    assert batch["option_owner"].tolist() == [0] * 3 + [1] * 4 + [2] * 5
    assert batch["option_slot"].tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert batch["counts"].tolist() == [3, 4, 5]
    # int8 quantises activations with one scale per batch tensor, so its logits move a little
    # with what shares the batch (five-option batches too, about 0.8 on a scale of 20 here).
    fp32 = None
    for runtime, atol in (("fp32", 1e-4), ("int8", 2.0)):
        reader = MultipleChoiceReader(untrained_dir, runtime=runtime, batch_size=8)
        logits = reader.score_many(items)
        assert_rows_as_alone(logits, items, reader.score, atol=atol)
        if fp32 is None:
            fp32 = logits
        else:
            np.testing.assert_allclose(logits, fp32, atol=atol)  # NaN in the same places


def test_a_two_option_question_works(untrained_dir: Path) -> None:
    question, context = _ragged()[3]
    assert len(question.options) == 2
    logits = MultipleChoiceReader(untrained_dir).score_many([(question, context)])
    assert np.isfinite(logits[0, :2]).all() and np.isnan(logits[0, 2:]).all()
    assert label_of(question) in (0, 1)


def test_the_scorer_trains_on_a_ragged_batch_with_finite_loss_and_gradients(
        minilm_dir: Path, tmp_path: Path) -> None:
    from pipeline.answering.readers.multiple_choice import _to
    from pipeline.answering.readers.option_scorer import ABSENT, mixed_loss

    items = _ragged()[:8]
    scorer, tokenizer, _ = load_scorer(minilm_dir, fresh_head=True)
    batch = _to(encode(tokenizer, items, 64), torch.device("cpu"))
    logits = scorer(**batch)
    assert logits.shape == (8, MAX_OPTIONS)
    counts = [len(q.options) for q, _ in items]
    for row, k in zip(logits, counts, strict=True):
        assert (row[k:] == ABSENT).all() and (row[:k] > ABSENT / 2).all()
    labels = torch.tensor([label_of(q) for q, _ in items])
    loss = mixed_loss(logits, labels, torch.full((8, MAX_OPTIONS), float("nan")), 1.0, 1.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in scorer.parameters() if p.grad is not None)
    assert scorer.log_scale.grad is not None

    # the whole loop, with a teacher on some questions (rows of k values, or NaN-padded)
    teacher = [np.log(np.full(len(q.options), 1 / len(q.options))) if i % 2 else None
               for i, (q, _) in enumerate(items)]
    teacher[3] = np.concatenate([teacher[3], np.full(MAX_OPTIONS - len(teacher[3]), np.nan)])
    report = train(minilm_dir, items, tmp_path / "ragged", eval_examples=_ragged()[8:12],
                   epochs=2, max_steps=3, batch_size=4, lr=1e-4, max_length=64, seed=0,
                   log=lambda _: None, teacher=teacher, gold_weight=0.5, temperature=2.0)
    assert report.steps == 3 and np.isfinite(report.losses).all()
    assert all(p.accuracy is not None and 0 <= p.map_at_3 <= 1 for p in report.curve)


def test_the_mixed_loss_of_a_row_with_absent_options_is_that_of_the_row_cut_to_them() -> None:
    from pipeline.answering.readers.option_scorer import ABSENT, mixed_loss

    nan = float("nan")
    # Three options: logits 1, 2, 0; the teacher's probabilities 0.2, 0.5, 0.3; gold B.
    logits = torch.tensor([[1.0, 2.0, 0.0] + [ABSENT] * (MAX_OPTIONS - 3)], requires_grad=True)
    teacher = torch.tensor([[np.log(0.2), np.log(0.5), np.log(0.3)] + [nan] * (MAX_OPTIONS - 3)])
    labels = torch.tensor([1])
    loss = mixed_loss(logits, labels, teacher, gold_weight=0.5, temperature=1.0)
    cut = mixed_loss(logits[:, :3], labels, teacher[:, :3], gold_weight=0.5, temperature=1.0)
    assert loss.item() == pytest.approx(cut.item(), rel=1e-6)
    # by hand: CE = log(e + e^2 + 1) - 2; KL = sum p (log p - log q), q = softmax(1, 2, 0)
    log_z = np.log(np.e + np.e ** 2 + 1.0)
    p = np.array([0.2, 0.5, 0.3])
    q = np.exp(np.array([1.0, 2.0, 0.0]) - log_z)
    expected = 0.5 * (log_z - 2.0) + 0.5 * float((p * np.log(p / q)).sum())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[0, 3:] == 0).all()
    # an explicit mask, a temperature, and a teacher-free row (all NaN) ignored by the KL term
    for temperature in (0.1, 2.0):
        masked = mixed_loss(logits.detach(), labels, teacher, 0.25, temperature,
                            mask=torch.arange(MAX_OPTIONS)[None, :] < 3)
        assert masked.item() == pytest.approx(mixed_loss(
            logits.detach()[:, :3], labels, teacher[:, :3], 0.25, temperature).item(), rel=1e-5)
    alone = mixed_loss(logits.detach(), labels, torch.full((1, MAX_OPTIONS), nan), 0.5, 1.0)
    assert alone.item() == pytest.approx(log_z - 2.0, rel=1e-5)


def test_labels_and_teacher_rows_follow_the_question_own_options() -> None:
    question, _ = _ragged()[1]  # four options
    assert question.letters == ("A", "B", "C", "D")
    assert label_of(question) == question.letters.index(question.answer)
    from dataclasses import replace

    with pytest.raises(ValueError, match="4 options"):
        label_of(replace(question, answer="E"))
    row = teacher_row(question, np.log([0.1, 0.2, 0.3, 0.4]))
    assert row.shape == (MAX_OPTIONS,) and np.isnan(row[4:]).all()
    assert np.isnan(teacher_row(question, None)).all()
    with pytest.raises(ValueError, match="teacher row"):
        teacher_row(question, np.log([0.1, 0.2, 0.3, 0.2, 0.2]))  # a fifth option it lacks
    with pytest.raises(ValueError, match="teacher row"):
        teacher_row(question, np.log([0.5, 0.5, 0.5]))  # one short
