"""Code versions derived from source: an edited domain function reaches every asset that runs
it, and no other."""

import shutil
from pathlib import Path

from assets.incremental import ASSET_MODULES
from pipeline.paths import PROJECT_ROOT
from pipeline.source_version import module_closure, source_version


def _copy_project(target: Path) -> Path:
    for package in ("pipeline", "assets", "resources"):
        shutil.copytree(PROJECT_ROOT / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "requirements.lock", target)
    return target


def _versions(root: Path) -> dict[str, str]:
    return {module: source_version(module, root=root, skip=ASSET_MODULES)
            for module in sorted(ASSET_MODULES)}


def test_editing_a_ranking_function_changes_the_assets_that_rank_and_no_others(
        tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    before = _versions(root)
    ranking = root / "pipeline" / "rankings" / "orders.py"
    source = ranking.read_text()
    assert "def edit_similarity(" in source
    ranking.write_text(source.replace("    q = words(question)\n",
                                      "    q = words(question.lower())\n", 1))
    after = _versions(root)
    changed = {module for module in before if before[module] != after[module]}
    # The rankings rank with it; the lexical reader scores options with edit_similarity.
    assert {"assets.rankings", "assets.answering"} <= changed
    assert "assets.corpus" not in changed and "assets.questions" not in changed


def test_a_new_library_lock_changes_every_version(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    before = _versions(root)
    with open(root / "requirements.lock", "a") as lock:
        lock.write("somepackage==1.0\n")
    after = _versions(root)
    assert all(before[m] != after[m] for m in before)


def test_upstream_asset_modules_are_edges_not_code() -> None:
    """The retrieval assets import the corpus assets to draw the graph; the corpus code reaches
    them through the chunks' data version, not through their code version."""
    closure = module_closure("assets.retrieval", skip=ASSET_MODULES)
    assert "assets.corpus" not in closure and "pipeline.rankings.orders" in closure
    assert "pipeline.corpus.article_table" not in closure
