"""The multiple-choice reader trains on the bundled MiniLM, saves, reloads and ranks answers.

Thirty-two hand-written questions whose one-sentence context states the answer: trained on 24,
the reader must answer more of the 8 it never saw (when this was written: 1 of 8 with the fresh
head, 6 of 8 after four epochs; with both learning rates at 0 the test fails).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pipeline.questions import LETTERS, Question
from pipeline.readers.multiple_choice import (
    MultipleChoiceReader,
    encode,
    load_scorer,
    score_examples,
    train,
)
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


def test_every_option_is_whole_and_all_five_read_the_same_context(minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    question = Question("q", "Which planet is known as the Red Planet?",
                        ("Mars", "Venus, the second planet from the Sun and the brightest",
                         "Jupiter", "Saturn", "Mercury"), "A", "handmade", 0)
    batch = encode(tokenizer, [(question, "filler words " * 200)], max_length=40)
    assert tuple(batch["input_ids"].shape) == (1, 5, 40)
    ids, types, mask = (batch[k][0] for k in ("input_ids", "token_type_ids", "attention_mask"))
    contexts = []
    for k, option in enumerate(question.options):
        first = tokenizer.decode(ids[k][(types[k] == 0) & (mask[k] == 1)])
        assert "red planet" in first and option.lower() in first
        contexts.append(ids[k][(types[k] == 1) & (mask[k] == 1)].tolist())
    assert all(c == contexts[0] for c in contexts)
    assert len(contexts[0]) > 5  # the longest option still leaves room for some context
    # The longest pair fills the budget exactly: the others are padded, not given more context.
    assert int(mask[1].sum()) == 40 and int(mask[0].sum()) < 40


def _facts() -> list[tuple[Question, str]]:
    """Thirty-two short science questions, each with a one-sentence context stating the answer."""
    with open(FACTS_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(Question(r["id"], r["prompt"], tuple(r[x] for x in LETTERS), r["answer"], "facts",
                      i), r["context"]) for i, r in enumerate(rows)]


def _accuracy(logits: np.ndarray, items: list[tuple[Question, str]]) -> float:
    return float(np.mean([LETTERS[i] == q.answer for i, (q, _) in
                          zip(logits.argmax(axis=1), items, strict=True)]))


def test_training_raises_accuracy_on_held_apart_questions_and_keeps_the_best_epoch(
        minilm_dir: Path, tmp_path: Path) -> None:
    facts = _facts()
    learn, held_apart = facts[:24], facts[24:]
    torch.manual_seed(0)
    untrained, tokenizer, _ = load_scorer(minilm_dir, fresh_head=True)
    before = _accuracy(score_examples(untrained, tokenizer, held_apart, 64, 8,
                                      torch.device("cpu")), held_apart)

    logged: list[str] = []
    report = train(minilm_dir, learn, tmp_path / "mc", eval_examples=held_apart, epochs=4,
                   batch_size=4, lr=1e-4, head_lr=2e-3, max_length=64, seed=0,
                   log=logged.append, log_every=6)
    assert report.steps == 24 and len(report.losses) == 24 and np.isfinite(report.losses).all()
    assert [round(p.epoch) for p in report.curve] == [1, 2, 3, 4]
    assert any(line.startswith("epoch 1.0: train loss") for line in logged)
    assert (tmp_path / "mc" / "head.safetensors").is_file()

    reader = MultipleChoiceReader(tmp_path / "mc")
    assert reader.max_length == 64  # read back from the saved reader settings
    logits = reader.score_many(held_apart)
    assert logits.shape == (8, 5) and np.isfinite(logits).all()
    after = _accuracy(logits, held_apart)
    assert after >= before + 0.25 and after >= 5 / 8, (before, after)
    # The weights kept are those of the best held-out MAP@3 among the epochs.
    best = max(report.curve, key=lambda p: p.map_at_3)
    assert report.best_epoch == best.epoch
    assert after == pytest.approx(best.accuracy)
