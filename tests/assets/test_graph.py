"""The README's asset graph is the graph of the code."""

from dagster import Definitions, asset

from assets.graph import BEGIN, END, README, mermaid, with_graph


def test_the_readme_draws_the_assets_and_dependencies_of_the_definitions() -> None:
    from definitions import defs

    readme = README.read_text()
    assert with_graph(readme, mermaid(defs)) == readme, (
        "the README's asset graph is stale: run python -m assets.graph --write")


def test_the_drawing_has_every_group_asset_and_edge() -> None:
    @asset(group_name="first")
    def source() -> None: ...

    @asset(group_name="second", deps=[source])
    def target() -> None: ...

    drawn = mermaid(Definitions(assets=[source, target]))
    assert drawn.splitlines() == [
        "```mermaid", "flowchart TB",
        '  subgraph group_first["first"]', "    source", "  end",
        '  subgraph group_second["second"]', "    target", "  end",
        "  source --> target", "```"]
    assert with_graph(f"a\n{BEGIN}\nold\n{END}\nb", drawn) == f"a\n{BEGIN}\n{drawn}\n{END}\nb"
