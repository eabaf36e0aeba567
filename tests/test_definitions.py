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
    assert ["cascade", ["blend_weights", "questions", "ranking_edit_distance", "ranking_search",
                        "ranking_semantic"]] in plain
    assert _graph({"SEARCH_BACKEND": "elasticsearch"}) == plain

