"""The cross-encoder kind of the multiple-choice reader: pairs laid out as the 4th place laid
them out, ragged batches, mixed precision and checkpointing (on a tiny random DeBERTa-v2), and
learning on the bundled MiniLM.

The learning test trains on 24 of the fact questions of ``test_multiple_choice`` and answers the
8 it never saw (when this was written: 1 of 8 untrained, 5 of 8 after three epochs; with both
learning rates at 0 it stays at 1 of 8 and the test fails).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.answering.readers.multiple_choice import (
    FORMATS,
    MultipleChoiceReader,
    encode_pairs,
    load_scorer,
    save_scorer,
    score_examples,
    train,
)
from pipeline.questions.question import MAX_OPTIONS, Question
from tests.pipeline.answering.readers.ragged import assert_rows_as_alone
from tests.pipeline.answering.readers.test_multiple_choice import (
    _accuracy,
    _facts,
    _ragged,
    minilm_dir,  # noqa: F401 (a fixture)
)
from tests.tiny_models import tiny_deberta

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def deberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_deberta(tmp_path_factory.mktemp("deberta"))


def test_question_and_option_come_first_and_whole_and_the_context_fills_the_rest(
        deberta_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(deberta_dir)
    question = Question("q", "Which planet is red?", ("Mars", "Venus the bright planet"), "A",
                        "handmade", 0)
    context = " ".join(["The fourth planet from the Sun is Mars, a red planet."] * 20)
    batch = encode_pairs(tokenizer, [(question, context)], 48)
    ids = batch["pairs"]["input_ids"]
    assert ids.shape == (2, 48)  # one row per option, cut to max_length
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    for row, types, option in zip(ids.tolist(), batch["pairs"]["token_type_ids"].tolist(),
                                  question.options, strict=True):
        first = [t for t, kind in zip(row, types, strict=True) if kind == 0]
        second = [t for t, kind in zip(row, types, strict=True) if kind == 1]
        whole = tokenizer(f"{question.prompt} {option}", add_special_tokens=False)["input_ids"]
        assert first == [tokenizer.cls_token_id, *whole, tokenizer.sep_token_id]
        assert second[-1] == tokenizer.sep_token_id
        assert second[:-1] == context_ids[: 48 - len(first) - 1]  # its beginning, to the end
    assert batch["option_owner"].tolist() == [0, 0]
    assert batch["counts"].tolist() == [2]


def test_a_ragged_batch_scores_each_question_as_alone(deberta_dir: Path, tmp_path: Path) -> None:
    scorer, tokenizer, _ = load_scorer(deberta_dir, fresh_head=True, kind="cross_encoder")
    save_scorer(scorer, tokenizer, tmp_path / "reader", {"max_length": 64})
    reader = MultipleChoiceReader(tmp_path / "reader", batch_size=8)
    assert reader.kind == "cross_encoder"
    items = _ragged()[:4]  # 3, 4, 5 and 2 options
    assert_rows_as_alone(reader.score_many(items), items, reader.score, atol=1e-5)


def test_training_runs_in_bfloat16_with_checkpointing_and_accumulation(
        deberta_dir: Path, tmp_path: Path) -> None:
    """The GPU recipe's training path, on the CPU: bfloat16 autocast, gradient checkpointing,
    two micro-batches a step; the kept reader reloads as a cross-encoder."""
    items = _ragged()[:8]
    logged: list[str] = []
    report = train(deberta_dir, items, tmp_path / "ce", eval_examples=_ragged()[8:12],
                   epochs=1, batch_size=2, grad_accum=2, lr=1e-3, head_lr=1e-3,
                   max_length=64, kind="cross_encoder", precision="bfloat16",
                   gradient_checkpointing=True, log=logged.append)
    assert report.steps == 2 and np.isfinite(report.losses).all()
    assert "as a cross_encoder on cpu in bfloat16" in logged[0]
    settings = json.loads((tmp_path / "ce" / "reader.json").read_text())
    assert settings["format"] == FORMATS["cross_encoder"]
    reader = MultipleChoiceReader(tmp_path / "ce")
    assert not reader.scorer.model.is_gradient_checkpointing  # saved for inference
    logits = reader.score_many(items)
    assert logits.shape == (8, MAX_OPTIONS) and np.isfinite(logits[:, :2]).all()


def test_the_kinds_are_checked(deberta_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown reader kind"):
        train(deberta_dir, _ragged()[:2], tmp_path, kind="bi_encoder", log=lambda _: None)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "reader.json").write_text('{"format": "something-else/9"}')
    with pytest.raises(ValueError, match="unknown reader format 'something-else/9'"):
        MultipleChoiceReader(tmp_path / "odd")


def test_training_the_minilm_cross_encoder_raises_accuracy_on_held_apart_questions(
        minilm_dir: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    facts = _facts()
    learn, held_apart = facts[:24], facts[24:]
    torch.manual_seed(0)  # the new head's initial weights, as training draws them
    untrained, tokenizer, _ = load_scorer(minilm_dir, fresh_head=True, kind="cross_encoder")
    before = _accuracy(score_examples(untrained, tokenizer, held_apart, 64, 8,
                                      torch.device("cpu")), held_apart)
    report = train(minilm_dir, learn, tmp_path / "ce", eval_examples=held_apart, epochs=3,
                   batch_size=4, lr=1e-4, head_lr=1e-2, max_length=64, kind="cross_encoder",
                   seed=0, log=lambda _: None)
    after = _accuracy(MultipleChoiceReader(tmp_path / "ce").score_many(held_apart), held_apart)
    assert report.curve[0].accuracy == before  # training starts where the test did
    assert before <= 0.25 and after >= 0.5, (before, after)
