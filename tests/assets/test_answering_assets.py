"""The whole pipeline on a tiny corpus: readers, blend, submission, score, caching and lineage."""

import csv
import json
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, Definitions

from assets.incremental import DATA_VERSION_TAG
from assets.lineage import lineage
from tests.assets.counted_work import Counted
from tests.assets.harness import (
    ASSETS,
    SCORECARD_TEACHER_QUESTIONS,
    SOURCES,
    TEACHER_BUDGET,
    UPSTREAM_OF_CHUNKS,
    VALIDATION,
    Pipeline,
    run_once,
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    with DagsterInstance.ephemeral() as instance:
        yield run_once(Pipeline(tmp_path_factory.mktemp("answering"), instance))


def test_training_pool_is_cleaned_and_kept_apart(pipeline: Pipeline) -> None:
    meta = pipeline.first["questions"]
    assert meta["validation_questions"] == 5 and meta["test_questions"] == 2
    assert meta["pool_dropped"] == {"empty option B": 1, "duplicate question": 1,
                                    "a test or validation question": 1}
    assert meta["blend_questions"] == 14 and meta["train_questions"] == 36 - 14
    roles = dict(pipeline.query("SELECT role, count(*) FROM questions GROUP BY role"))
    assert roles == {"test": 2, "validation": 5, "blend": 14, "train": 22}
    overlap = pipeline.query("SELECT count(*) FROM questions a JOIN questions b "
                             "ON a.prompt = b.prompt AND a.role = 'train' AND b.role <> 'train'")
    assert overlap == [(0,)]


def test_every_source_scores_every_scored_question(pipeline: Pipeline) -> None:
    rows = pipeline.query("SELECT reader || '@' || ranking, role, count(*) FROM reader_logits "
                          "WHERE reader NOT IN ('heavy', 'teacher') "
                          "AND NOT contains(reader, '.') GROUP BY ALL")
    counts = {(source, role): n for source, role, n in rows}
    assert {source for source, _ in counts} == SOURCES
    for source in SOURCES:
        assert counts[(source, "test")] == 2
        assert counts[(source, "validation")] == 5
        assert counts[(source, "blend")] == 14
        assert (source, "train") not in counts, "train questions are never scored"
    signals = pipeline.query("SELECT DISTINCT reader FROM reader_logits "
                             "WHERE contains(reader, '.') ORDER BY reader")
    assert [r[0] for r in signals] == ["lexical.bm25", "lexical.coverage", "lexical.edit",
                                       "lexical.length"]
    trained = pipeline.first["trained_reader"]
    assert trained["steps"] == 3 and trained["train_questions"] == 22
    assert len(trained["loss_curve"]) == 3
    assert "blend MAP@3" in trained["learning_curve"]


def test_the_cascade_escalates_at_most_its_share_and_the_heavy_reader_reads_exactly_those(
        pipeline: Pipeline) -> None:
    escalated = dict(pipeline.query("SELECT role, count(*) FILTER (WHERE escalated) "
                                    "FROM answer_scores GROUP BY role"))
    # share 0.5: floor(0.5 * n) of each role
    assert escalated == {"test": 1, "validation": 2, "blend": 7}
    read = dict(pipeline.query("SELECT role, count(*) FROM reader_logits "
                               "WHERE reader = 'heavy' GROUP BY role"))
    assert read == escalated
    # The heavy reader's entries in the reading cache (they record the seconds each took; the
    # cheap readers' batches do not).
    cached = pipeline.query("SELECT count(*) FROM reading_cache WHERE seconds IS NOT NULL")[0][0]
    # ... and the teacher's, of its budget of train questions and of the scorecard's first
    # validation questions: one heavy reader, so an escalated validation question the
    # scorecard read too (same question, same semantic context) is read once.
    scorecard = {qid for (qid,) in pipeline.query(
        "SELECT id FROM questions WHERE role = 'validation' ORDER BY row "
        f"LIMIT {SCORECARD_TEACHER_QUESTIONS}")}
    escalated_validation = {qid for (qid,) in pipeline.query(
        "SELECT question_id FROM answer_scores WHERE role = 'validation' AND escalated")}
    assert cached == (sum(escalated.values()) + TEACHER_BUDGET
                      + len(scorecard - escalated_validation))
    # The escalated are the least sure under the cheap blend (its top-two margin or the
    # measure the rule chose): no non-escalated question of a role is less sure than one that was.
    meta = pipeline.first["cascade"]
    assert meta["heavy_read"] + meta["heavy_reused"] == 10
    from pipeline.answering import cascade, option_scores
    with duckdb.connect(str(pipeline.database), read_only=True) as db:
        for role in ("test", "validation", "blend"):
            ids, cheap, _ = option_scores.read_scores(db, "blended_scores", role)
            same, _, flags = option_scores.read_scores(db, "answer_scores", role)
            assert same == ids
            doubt = cascade.uncertainty(cheap, meta["rule_measure"])
            assert doubt[flags].min() >= doubt[~flags].max()


def test_the_teacher_reads_its_budget_and_the_blend_reads_the_student_chosen_on_blend(
        pipeline: Pipeline) -> None:
    taught = pipeline.first["teacher_logits"]
    assert taught["pool_questions"] == 22 and taught["teacher_read"] == TEACHER_BUDGET
    assert pipeline.query("SELECT role, count(*) FROM reader_logits WHERE reader = 'teacher' "
                          "GROUP BY role") == [("train", TEACHER_BUDGET)]
    found = pipeline.query("SELECT unnest(candidates::JSON[]) FROM students")
    candidates = [json.loads(row[0]) for row in found]
    assert [c["kind"] for c in candidates] == ["gold", "distilled"]
    best = max(candidates, key=lambda c: (c["blend_map_at_3"], c["kind"] == "gold"))
    student = pipeline.first["student_reader"]
    assert student["weights_sha256"] == best["weights_sha256"]
    for ranking in ("search", "edit_distance", "semantic"):
        logits = pipeline.first[f"logits_multiple_choice_{ranking}"]
        assert logits["model_weights_sha256"] == student["weights_sha256"]
    card = dict(pipeline.query("SELECT reader, questions FROM distillation_scorecard"))
    assert card == {"teacher": SCORECARD_TEACHER_QUESTIONS, "gold-only student": 5,
                    "distilled student": 5, "distilled student, int8": 5}
    shown = pipeline.first["distillation_scorecard"]
    assert shown["distilled_int8_size_mb"] < 0.5 * shown["distilled_size_mb"]
    assert "MB on disk" in shown["scorecard"]


def test_submission_has_three_distinct_letters_per_test_question(pipeline: Pipeline) -> None:
    with open(pipeline.submission, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "prediction"]
    assert [r[0] for r in rows[1:]] == ["t1", "t2"]
    for _, prediction in rows[1:]:
        letters = prediction.split(" ")
        assert len(letters) == 3 and len(set(letters)) == 3 and set(letters) <= set("ABCDE")


def test_score_reports_the_blend_and_every_source_with_intervals(pipeline: Pipeline) -> None:
    score = pipeline.first["score"]
    assert score["validation_questions"] == 5
    assert 0 <= score["map_at_3_low"] <= score["map_at_3"] <= score["map_at_3_high"] <= 1
    assert set(score["map_at_3_by_source"]) == SOURCES | {
        "blend", "cheap_blend", "heavy (escalated only)", "cheap_blend (same questions)"}
    assert set(score["gold_ranks"]) == {r[0] for r in pipeline.query(
        "SELECT id FROM questions WHERE role = 'validation'")}
    # The validation questions were written from passages of the tiny corpus; the lexical
    # reader on the semantic contexts beats the 0.37 that a random order scores on average.
    assert score["map_at_3_by_source"]["lexical@semantic"] >= 0.5
    blend = pipeline.first["blend_weights"]
    cv = {k[len("cv_map_at_3_"):]: v for k, v in blend.items() if k.startswith("cv_map_at_3_")}
    assert cv[blend["method"]] == max(cv.values())
    assert all(check.passed for check in pipeline.first_checks)


def test_validation_answers_cannot_change_the_blend_only_its_measured_score(
        pipeline: Pipeline, tmp_path: Path, work: Counted) -> None:
    """The blend is chosen and fitted on the blend questions: relabelling every validation
    question moves the validation MAP@3 it reports, never the method or the weights."""
    before = pipeline.query("SELECT source, weight, method FROM blend_weights ORDER BY source")
    measured = {k: v for k, v in pipeline.first["blend_weights"].items()
                if k.startswith("validation_map_at_3_")}
    relabelled = tmp_path / "validation.csv"
    with open(VALIDATION, newline="") as source, open(relabelled, "w", newline="") as out:
        rows = list(csv.DictReader(source))
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:  # every answer moved to the next letter: all of them now wrong
            row["answer"] = "ABCDE"["ABCDE".index(row["answer"]) - 4]
            writer.writerow(row)
    try:
        changed = pipeline.run(validation=relabelled)
        after = pipeline.query("SELECT source, weight, method FROM blend_weights "
                               "ORDER BY source")
        counts = work.take()
        assert counts["blended"] == 1  # it did fit again
        assert after == before
        # Nor what the students learn from, nor which student the blend reads: no reader
        # trained, and the teacher read nothing.
        assert (counts["trained"], counts["heavy_read"]) == (0, 0)
        moved = {k: v for k, v in changed["blend_weights"].items()
                 if k.startswith("validation_map_at_3_")}
        assert set(moved) == set(measured) and moved != measured
    finally:
        pipeline.run()  # back to the fixture's answers for the tests that follow


def test_rerun_does_nothing_then_a_chunk_size_change_is_traced_by_lineage(
        pipeline: Pipeline, work: Counted) -> None:
    tables = pipeline.table_versions()
    again = pipeline.run()
    assert sum(work.take().values()) == 0, "a no-change re-run did work"
    assert pipeline.table_versions() == tables
    assert again["score"]["map_at_3"] == pipeline.first["score"]["map_at_3"]
    definitions = Definitions(assets=ASSETS, resources=pipeline.resources())
    unchanged = lineage(pipeline.instance, definitions)
    assert unchanged.changed == [] and unchanged.score.left_top3 == []

    versions = _data_versions(pipeline)
    pipeline.run(max_chars=300)
    counts = work.take()
    assert all(counts[kind] for kind in ("indexed", "retrieved", "ranked", "trained"))
    report = lineage(pipeline.instance, definitions)
    named = {c.asset: c.what for c in report.changed}
    assert "config" in " ".join(named["wiki_chunks"])
    assert not UPSTREAM_OF_CHUNKS & set(named), "assets upstream of the change are not named"
    new_versions = _data_versions(pipeline)
    recomputed = {name for name in new_versions if new_versions[name] != versions.get(name)}
    # (the scorecard measures the students on validation: it is not upstream of the score)
    downstream = recomputed - {"wiki_chunks", "score", "submission", "distillation_scorecard"}
    assert downstream <= set(named), f"changed but not named: {downstream - set(named)}"
    assert {"lexical_index", "chunk_embeddings", "candidate_passages", "ranking_semantic",
            "trained_reader", "logits_lexical_semantic", "blend_weights"} <= set(named)
    lines = "\n".join(report.lines())
    assert "MAP@3 (before -> after)" in lines and "lexical@semantic" in lines


def _data_versions(pipeline: Pipeline) -> dict[str, str]:
    """The data version each asset's latest materialisation recorded, by asset name."""
    versions = {}
    for asset in ASSETS:
        record = pipeline.instance.get_latest_data_version_record(asset.key)
        versions[asset.key.path[-1]] = record.asset_materialization.tags[DATA_VERSION_TAG]
    return versions
