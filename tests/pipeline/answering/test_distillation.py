"""The distilled student: one candidate per mix, the student chosen on the blend questions alone,
and validation answers never read."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline.answering import distillation, logit_table, reader_training
from pipeline.answering.distillation import Mix
from pipeline.models import ModelNotFoundError, ResolvedModel, resolve
from pipeline.questions.question import LETTERS, MAX_OPTIONS, Question
from pipeline.questions.question_table import write_questions
from pipeline.questions.roles import TRAIN_RANKING
from pipeline.rankings.context_table import CONTEXTS_DDL
from pipeline.steps import StepError
from tests.conftest import FIXTURES

pytest.importorskip("torch")
SETTINGS = reader_training.TrainSettings(max_length=64, max_steps=2, batch_size=4, lr=1e-4,
                                         device="cpu")


@pytest.fixture(scope="module")
def minilm() -> ResolvedModel:
    try:
        return resolve("sentence-transformers/all-MiniLM-L6-v2", online=False,
                       log=lambda _: None)
    except ModelNotFoundError as exc:
        pytest.skip(f"MiniLM is not installed: {exc}")


def _facts() -> list[tuple[Question, str]]:
    with open(FIXTURES / "reader" / "facts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(Question(r["id"], r["prompt"], tuple(r[x] for x in LETTERS[:5]), r["answer"], "facts",
                      i), r["context"]) for i, r in enumerate(rows)]


def _warehouse(tmp_path: Path, minilm: ResolvedModel,
               settings: reader_training.TrainSettings = SETTINGS) -> duckdb.DuckDBPyConnection:
    """16 train, 8 blend and 8 validation questions with contexts, a gold-only student, and a
    teacher that is sure of the stated answer on the train questions."""
    facts = _facts()
    roles = {"train": facts[:16], "blend": facts[16:24], "validation": facts[24:]}
    db = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    write_questions(db, [(role, [q for q, _ in items]) for role, items in roles.items()])
    db.execute(f"CREATE TABLE packed_contexts ({CONTEXTS_DDL})")
    for role, items in roles.items():
        for q, context in items:
            db.execute("INSERT INTO packed_contexts (ranking, role, question_id, context) "
                       "VALUES (?, ?, ?, ?)", [TRAIN_RANKING, role, q.id, context])
    teacher = np.full((16, MAX_OPTIONS), np.nan)
    teacher[:, :5] = np.log(0.05)
    for row, (q, _) in zip(teacher, roles["train"], strict=True):
        row[LETTERS.index(q.answer)] = np.log(0.8)
    logit_table.write_logits(db, "teacher", TRAIN_RANKING,
                             [("train", q.id) for q, _ in roles["train"]], teacher)
    reader_training.train(db, minilm, settings, tmp_path / "gold", log=lambda _: None)
    return db


def test_one_student_per_mix_and_the_best_on_the_blend_questions_is_chosen(
        tmp_path: Path, minilm: ResolvedModel) -> None:
    db = _warehouse(tmp_path, minilm)
    mixes = [Mix(0.5, 2.0), Mix(0.0, 1.0)]
    work = distillation.build(db, minilm, SETTINGS, mixes, tmp_path / "distilled",
                              log=lambda _: None)
    found = distillation.candidates(db)
    assert [(c["kind"], c["gold_weight"], c["temperature"]) for c in found] == [
        ("gold", 1.0, None), ("distilled", 0.5, 2.0), ("distilled", 0.0, 1.0)]
    assert all(Path(c["path"]).is_dir() for c in found)
    best = max(found, key=lambda c: (c["blend_map_at_3"], c["kind"] == "gold"))
    assert distillation.student(db)[2] == best["weights_sha256"] == work.data_version
    assert work.metadata["teacher_rows"] == 16

    # Validation answers scrambled: the same students, the same blend scores, the same choice.
    db.execute("UPDATE questions SET answer = CASE answer WHEN 'A' THEN 'B' ELSE 'A' END "
               "WHERE role = 'validation'")
    again = distillation.build(db, minilm, SETTINGS, mixes, tmp_path / "distilled",
                               log=lambda _: None)
    assert again.data_version == work.data_version
    assert [c["blend_map_at_3"] for c in distillation.candidates(db)] == [
        c["blend_map_at_3"] for c in found]


def test_without_teacher_labels_the_gold_only_student_is_the_student(
        tmp_path: Path, minilm: ResolvedModel) -> None:
    db = _warehouse(tmp_path, minilm)
    db.execute("DELETE FROM reader_logits WHERE reader = 'teacher'")
    work = distillation.build(db, minilm, SETTINGS, [Mix(0.5, 2.0)], tmp_path / "distilled",
                              log=lambda _: None)
    assert [c["kind"] for c in distillation.candidates(db)] == ["gold"]
    assert work.data_version == reader_training.latest(db)[2]
    with pytest.raises(StepError, match="gold weight"):
        Mix(1.0, 2.0)


def test_the_cross_encoder_kind_trains_distils_and_reads_as_the_student(tmp_path: Path) -> None:
    """The kind is one setting: the gold-only reader and the distilled students are all
    cross-encoders (a tiny random DeBERTa-v2 here), and the chosen student reads questions."""
    from dataclasses import replace

    from pipeline.answering.readers.multiple_choice import FORMATS, MultipleChoiceReader
    from tests.tiny_models import tiny_deberta

    deberta = resolve(str(tiny_deberta(tmp_path / "deberta")), online=False, log=lambda _: None)
    settings = replace(SETTINGS, kind="cross_encoder", lr=1e-3, head_lr=1e-3)
    db = _warehouse(tmp_path, deberta, settings)
    work = distillation.build(db, deberta, settings, [Mix(0.5, 2.0)], tmp_path / "distilled",
                              log=lambda _: None)
    found = distillation.candidates(db)
    assert [c["kind"] for c in found] == ["gold", "distilled"]
    for candidate in found:
        saved = (Path(candidate["path"]) / "reader.json").read_text()
        assert FORMATS["cross_encoder"] in saved
    path, _, digest = distillation.student(db)
    assert digest == work.data_version
    logits = MultipleChoiceReader(path).score_many(_facts()[24:])
    assert logits.shape == (8, MAX_OPTIONS) and np.isfinite(logits[:, :5]).all()
