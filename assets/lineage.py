"""Why did the score change? Compare its latest two materialisations, from Dagster's records.

    DAGSTER_HOME=var/dagster_home python -m assets.lineage      (or: make lineage)

For every asset upstream of ``score`` it looks up the materialisation that was current when each
of the two scores was materialised and names those whose code version, data version, config or
settings (the resource settings an asset depends on, such as the token budget) differ, as
recorded in the materialisations, and any resource config given at launch that differs; then
it prints MAP@3 per (reader, ranking) and for the blend before and after, and the validation
questions whose correct answer left (or entered) the top three. Everything comes from the
instance's event log and run records, the same ones the web UI shows.
"""

import importlib
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions, EventLogRecord

from assets.incremental import CODE_VERSION_TAG, DATA_VERSION_TAG
from pipeline.answering.scoring import ScoreChange, compare
from pipeline.paths import PROJECT_ROOT

SCORE = AssetKey("score")
HISTORY = 200  # materialisations of one asset searched for the one current at a given time


@dataclass(frozen=True)
class AssetChange:
    asset: str
    what: list[str]


@dataclass(frozen=True)
class Lineage:
    """What changed upstream of the score between two of its materialisations, and how the
    score itself moved."""

    runs: tuple[str, str]
    changed: list[AssetChange]
    resources: list[str]
    score: ScoreChange

    def lines(self) -> list[str]:
        out = [f"score: run {self.runs[0]} -> run {self.runs[1]}"]
        out.append(f"upstream assets that changed ({len(self.changed)}):")
        out += [f"  {c.asset}: {'; '.join(c.what)}" for c in self.changed]
        if self.resources:
            out.append("resource config that changed:")
            out += [f"  {line}" for line in self.resources]
        return out + self.score.lines()


def ancestors(defs: Definitions, key: AssetKey) -> list[AssetKey]:
    """Every asset upstream of ``key`` in the definitions' graph, in a stable order."""
    graph = defs.get_repository_def().asset_graph
    seen: set[AssetKey] = set()
    todo = [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return sorted(seen, key=lambda k: k.to_user_string())


def _current_at(instance: DagsterInstance, key: AssetKey, timestamp: float
                ) -> EventLogRecord | None:
    records = instance.fetch_materializations(key, limit=HISTORY).records
    return next((r for r in records if r.timestamp <= timestamp), None)


def _versions(record: EventLogRecord | None) -> tuple[str | None, str | None]:
    event = record.asset_materialization if record else None
    tags = (event.tags or {}) if event else {}
    return tags.get(CODE_VERSION_TAG), tags.get(DATA_VERSION_TAG)


def asset_change(instance: DagsterInstance, key: AssetKey, before: EventLogRecord | None,
                 after: EventLogRecord | None) -> AssetChange | None:
    """How one asset differs between two of its materialisations (None if it does not)."""
    name = key.to_user_string()
    if before is None or after is None:
        return AssetChange(name, ["materialised only " + ("after" if after else "before")])
    what = []
    (old_code, old_data), (new_code, new_data) = _versions(before), _versions(after)
    if old_code != new_code:
        what.append(f"code version {old_code} -> {new_code}")
    for entry in ("config", "settings"):
        old, new = _metadata(before, entry), _metadata(after, entry)
        if old != new:
            what.append(f"{entry} {_diff(old, new)}")
    if old_data != new_data:
        what.append(f"data version {old_data} -> {new_data}")
    return AssetChange(name, what) if what else None


def _diff(old: Any, new: Any) -> str:
    """Only the keys that differ, when both sides are mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    return f"{old!r} -> {new!r}"


def _metadata(record: EventLogRecord, name: str) -> Any:
    event = record.asset_materialization
    entry = event.metadata.get(name) if event else None
    return entry.value if entry is not None else None


def lineage(instance: DagsterInstance, defs: Definitions) -> Lineage:
    """Compare the latest two materialisations of the score (raises if there are fewer)."""
    records = instance.fetch_materializations(SCORE, limit=2).records
    if len(records) < 2:
        raise LookupError(f"the score has {len(records)} materialisation(s) in "
                          f"{instance.root_directory}; two are needed to compare")
    after, before = records
    changed = []
    for key in ancestors(defs, SCORE):
        change = asset_change(instance, key, _current_at(instance, key, before.timestamp),
                              _current_at(instance, key, after.timestamp))
        if change:
            changed.append(change)
    resources = _resource_changes(instance, before.run_id, after.run_id)
    score = compare(_metadata(before, "map_at_3_by_source") or {},
                    _metadata(after, "map_at_3_by_source") or {},
                    _metadata(before, "gold_ranks") or {}, _metadata(after, "gold_ranks") or {})
    return Lineage((before.run_id, after.run_id), changed, resources, score)


def _resource_changes(instance: DagsterInstance, before: str, after: str) -> list[str]:
    old, new = (instance.get_run_by_id(r) for r in (before, after))
    old_resources = (old.run_config.get("resources", {}) if old else {}) or {}
    new_resources = (new.run_config.get("resources", {}) if new else {}) or {}
    return [f"{name}: {old_resources.get(name)} -> {new_resources.get(name)}"
            for name in sorted(set(old_resources) | set(new_resources))
            if old_resources.get(name) != new_resources.get(name)]


def load_definitions() -> Definitions:
    """The project's ``Definitions``, found the way the ``dagster`` CLI finds them: by the
    module ``[tool.dagster]`` names in pyproject.toml (this module never imports the edge)."""
    settings = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    return importlib.import_module(settings["module_name"]).defs


def main(argv: Sequence[str] = ()) -> int:
    defs = load_definitions()
    with DagsterInstance.get() as instance:
        try:
            report = lineage(instance, defs)
        except LookupError as exc:
            print(exc, file=sys.stderr)
            return 1
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
