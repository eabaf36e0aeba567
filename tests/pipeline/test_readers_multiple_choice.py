"""The multiple-choice reader trains on the bundled MiniLM, saves, reloads and ranks answers.

Eight hand-written questions whose context states the answer: a dozen steps on them must lower
the loss and teach the model to put the stated option first on most of them (the untrained head
ranked 0 of 8 first when this was written; 12 steps at lr 3e-4 gave 8 of 8, loss 1.6 -> 0.9).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.questions import LETTERS, Question
from pipeline.readers.multiple_choice import MultipleChoiceReader, encode, train

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

FACTS = [
    ("Which planet is known as the Red Planet?", "Mars",
     ("Venus", "Mars", "Jupiter", "Saturn", "Mercury"),
     "Mars is often called the Red Planet because iron oxide on its surface looks reddish."),
    ("What gas do plants release during photosynthesis?", "Oxygen",
     ("Nitrogen", "Helium", "Carbon monoxide", "Oxygen", "Argon"),
     "During photosynthesis plants split water and release oxygen into the air."),
    ("What is the chemical symbol of gold?", "Au",
     ("Au", "Ag", "Gd", "Go", "Fe"),
     "Gold is a chemical element with the symbol Au, from the Latin word aurum."),
    ("Which organelle produces most of a cell's ATP?", "Mitochondrion",
     ("Ribosome", "Golgi apparatus", "Lysosome", "Nucleus", "Mitochondrion"),
     "The mitochondrion is the organelle that produces most of the ATP of a cell."),
    ("What particle carries a negative electric charge?", "Electron",
     ("Proton", "Electron", "Neutron", "Photon", "Gluon"),
     "The electron is a subatomic particle that carries a negative electric charge."),
    ("Which scientist proposed the theory of general relativity?", "Albert Einstein",
     ("Isaac Newton", "Niels Bohr", "Albert Einstein", "Marie Curie", "Max Planck"),
     "Albert Einstein published the theory of general relativity in 1915."),
    ("What is the hardest natural mineral?", "Diamond",
     ("Quartz", "Topaz", "Corundum", "Diamond", "Talc"),
     "Diamond is the hardest natural mineral and scores 10 on the Mohs scale."),
    ("Which blood cells fight infections?", "White blood cells",
     ("Red blood cells", "Platelets", "Plasma cells", "Stem cells", "White blood cells"),
     "White blood cells fight infections by attacking bacteria and viruses in the body."),
]


def _examples() -> list[tuple[Question, str]]:
    examples = []
    for row, (prompt, answer, options, context) in enumerate(FACTS):
        letter = LETTERS[options.index(answer)]
        examples.append((Question(f"q{row}", prompt, options, letter, "handmade", row), context))
    return examples


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    from pipeline.models import ModelNotFoundError, resolve

    try:
        return resolve("sentence-transformers/all-MiniLM-L6-v2", online=False,
                       log=lambda _: None).path
    except ModelNotFoundError as exc:
        pytest.skip(f"MiniLM is not installed: {exc.reason if hasattr(exc, 'reason') else exc}")


def test_truncation_keeps_question_and_option(minilm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    question, _ = _examples()[0]
    batch = encode(tokenizer, [(question, "filler words " * 200)], max_length=40)
    assert tuple(batch["input_ids"].shape) == (1, 5, 40)
    text = tokenizer.decode(batch["input_ids"][0, 1])
    assert "red planet" in text and "mars" in text.split("[SEP]")[-2]


def test_training_lowers_loss_and_the_reloaded_reader_finds_stated_answers(
        minilm_dir: Path, tmp_path: Path) -> None:
    examples = _examples()
    logged: list[str] = []
    report = train(minilm_dir, examples, tmp_path / "mc", epochs=100, max_steps=12,
                   batch_size=2, grad_accum=2, lr=3e-4, warmup=0.1, max_length=64, seed=0,
                   log=logged.append, log_every=4)
    assert report.steps == 12 and len(report.losses) == 12
    assert all(np.isfinite(report.losses))
    assert any(line.startswith("step 4/12 loss ") for line in logged)
    first, last = np.mean(report.losses[:4]), np.mean(report.losses[-4:])
    assert last < first - 0.2, report.losses
    assert (tmp_path / "mc" / "config.json").exists()

    reader = MultipleChoiceReader(tmp_path / "mc", max_length=64)
    logits = reader.score_many(examples)
    assert logits.shape == (len(examples), 5)
    assert np.isfinite(logits).all()
    assert reader.last_seconds_per_question > 0
    predicted = [LETTERS[i] for i in logits.argmax(axis=1)]
    correct = sum(p == q.answer for p, (q, _) in zip(predicted, examples, strict=True))
    assert correct >= 6, (predicted, [q.answer for q, _ in examples])
