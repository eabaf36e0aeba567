"""The one Definitions object: the same asset graph wherever it is loaded."""

import json
import os
import subprocess
import sys

from pipeline.paths import PROJECT_ROOT

GRAPH = """
import json
from definitions import defs
graph = defs.resolve_asset_graph()
print(json.dumps(sorted([key.to_user_string(), sorted(p.to_user_string() for p in
                         graph.get(key).parent_keys)] for key in graph.get_all_asset_keys())))
"""


def _graph(environment: dict[str, str]) -> list:
    env = {k: v for k, v in os.environ.items() if k != "SEARCH_BACKEND"} | environment
    out = subprocess.run([sys.executable, "-c", GRAPH], cwd=PROJECT_ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_graph_does_not_depend_on_the_environment() -> None:
    """The UI, `make lineage` and a run started with other environment variables must see the
    same assets and edges: which readers run is run configuration, not the environment."""
    plain = _graph({})
    assert ["cascade", ["blend_weights", "questions", "ranking_edit_distance", "ranking_es",
                        "ranking_semantic"]] in plain
    assert _graph({"SEARCH_BACKEND": "elasticsearch"}) == plain


CONFIGS = sorted((PROJECT_ROOT / "config").glob("*.yaml"))


def test_every_shipped_run_config_is_valid_for_the_job_it_names() -> None:
    """`make run RUN_CONFIG=config/<name>.yaml` deep-merges the file over answer_job's default;
    each merged config must pass Dagster's validation of answer_job (a setting moved to a
    resource, or renamed, fails here rather than at a user's run)."""
    import yaml
    from dagster import validate_run_config

    from definitions import defs

    job = defs.resolve_job_def("answer_job")
    default = yaml.safe_load((PROJECT_ROOT / "config" / "answer_job.yaml").read_text())
    runs = [path for path in CONFIGS if path.name not in ("dagster.yaml", "answer_job.yaml")]
    assert {path.name for path in runs} >= {"ci.yaml", "gpu.yaml", "distillation.yaml"}
    for path in runs:
        validate_run_config(job, _merged(default, yaml.safe_load(path.read_text())))


def _merged(base: dict, over: dict) -> dict:
    """``over`` deep-merged into ``base``, as Dagster merges two ``-c`` files."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (_merged(base[key], value) if isinstance(value, dict)
                       and isinstance(base.get(key), dict) else value)
    return merged
