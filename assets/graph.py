"""The asset graph as a Mermaid flowchart, drawn from the real ``Definitions``: one box per asset
group, one node per asset, an arrow per dependency. GitHub and most Markdown viewers render it
as a picture.

    python -m assets.graph -m definitions            # print it
    python -m assets.graph -m definitions --write    # rewrite the README's copy

The code location is named by the caller, as with ``dagster job execute -m definitions``: the
asset layer does not import the edge.

``tests/assets/test_graph.py`` fails when the README's copy is not the graph of the code.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from dagster import Definitions

from pipeline.answering.cheap_readers import READERS
from pipeline.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BEGIN = "<!-- asset-graph: python -m assets.graph -m definitions --write -->"
END = "<!-- /asset-graph -->"
# Nine logits assets (three readers by three rankings) are drawn as one node.
LOGITS = re.compile(rf"^logits_({'|'.join(READERS)})_\w+$")


def _node(name: str) -> str:
    return "logits_reader_ranking" if LOGITS.match(name) else name


def mermaid(definitions: Definitions) -> str:
    """The flowchart text of ``definitions``' assets: groups, and the assets in each, in the
    order data flows (by depth from the sources, then by name)."""
    group: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for spec in definitions.resolve_all_asset_specs():
        name = _node(spec.key.path[-1])
        group[name] = spec.group_name or "default"
        edges |= {(_node(dep.asset_key.path[-1]), name) for dep in spec.deps}
    edges = {(a, b) for a, b in edges if a != b}
    depth = {name: 0 for name in group}
    for _ in group:  # longest path from a source; the graph is acyclic
        for upstream, downstream in edges:
            depth[downstream] = max(depth[downstream], depth[upstream] + 1)
    order = sorted(group, key=lambda name: (depth[name], name))
    groups = sorted(set(group.values()),
                    key=lambda g: (min(depth[n] for n in group if group[n] == g), g))
    lines = ["```mermaid", "flowchart TB"]
    for name_of_group in groups:
        lines.append(f"  subgraph group_{name_of_group}[\"{name_of_group}\"]")
        lines += [f"    {name}" + ('["logits_{reader}_{ranking}<br/>(3 readers x 3 rankings)"]'
                                   if name == "logits_reader_ranking" else "")
                  for name in order if group[name] == name_of_group]
        lines.append("  end")
    lines += [f"  {upstream} --> {downstream}" for upstream, downstream in sorted(edges)]
    lines.append("```")
    return "\n".join(lines)


def with_graph(readme: str, graph: str) -> str:
    """``readme`` with the text between the markers replaced by ``graph``."""
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{graph}\n{END}{after}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m assets.graph",
                                     description="The asset graph as a Mermaid flowchart.")
    parser.add_argument("-m", "--module", required=True,
                        help="the module holding the Definitions as `defs` (definitions)")
    parser.add_argument("--write", action="store_true",
                        help="rewrite the README's copy instead of printing the graph")
    args = parser.parse_args(argv)
    graph = mermaid(importlib.import_module(args.module).defs)
    if args.write:
        README.write_text(with_graph(README.read_text(), graph))
        print(f"{README.name}: asset graph rewritten")
    else:
        print(graph)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
