"""Each asset's code version covers its own code: edits made in a temporary copy of the source
change the versions of exactly the assets whose code they touch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.paths import PROJECT_ROOT

PRINT_VERSIONS = """
import json, definitions
graph = definitions.defs.resolve_asset_graph()
print(json.dumps({key.to_user_string(): graph.get(key).code_version
                  for key in graph.get_all_asset_keys()}))
"""
ANSWERING = {"trained_reader", "teacher_logits", "student_reader", "distillation_scorecard",
             "blend_weights", "cascade", "submission", "score"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("source")
    for name in ("assets", "pipeline", "resources", "config"):
        shutil.copytree(PROJECT_ROOT / name, copy / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("definitions.py", "requirements.lock"):
        shutil.copy(PROJECT_ROOT / name, copy)
    return copy


def versions(source: Path) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", PRINT_VERSIONS], cwd=source, check=True,
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(source),
                               "HOME": str(source)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def edited(source: Path, module: str, before: dict[str, str]) -> set[str]:
    """The assets whose code version an appended comment in ``module`` changes."""
    path = source / module
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        after = versions(source)
    finally:
        path.write_text(original)
    return {asset for asset, version in after.items() if version != before[asset]}


def test_edits_reach_exactly_the_assets_whose_code_they_are(source: Path) -> None:
    before = versions(source)
    assert len(before) >= 25 and all(before.values())

    search = edited(source, "pipeline/retrieval/search/elastic_mapping.py", before)
    assert search and not search & ANSWERING  # the index's assets, no answering asset
    assert "lexical_index" in search

    blend = edited(source, "pipeline/answering/blend_step.py", before)
    assert "blend_weights" in blend and "trained_reader" not in blend

    config = edited(source, "assets/answering.py", before)  # a comment: no asset's code
    assert config == set()
