"""The one mechanism by which every asset skips work its last materialisation already did.

A step's *fingerprint* hashes its code version (derived from source: :func:`code_version`), its
run config (less the fields that only say where or how fast it runs: :data:`RUNTIME_FIELDS`)
and the data versions of its upstream assets, as Dagster recorded them, or, for a step that
reads only part of an upstream table, the content of that part. The warehouse remembers, per
asset, the fingerprint and the data version of the last successful computation, written next
to the data itself: if the database is deleted the memory goes with it, and the step
recomputes.

When the fingerprint matches, the step checks, cheaply, that its output is still there as it
left it (the data version of what is stored, where the step can compute one), logs that it is
up to date, does no heavy work and reports the same data version again, so Dagster keeps every
downstream asset in sync. A deleted or edited output is computed again. When it
does not, the step computes; each domain function is itself incremental (a changed shard is the
only one re-read, a changed article the only one re-chunked), so a changed input costs in
proportion to the change.

Every asset uses it the same way: the domain module that owns the asset's table offers a
function that computes it and returns :class:`~pipeline.steps.Work`, and one that describes
the table as it stands; the asset reads its config and hands both to :func:`run_step`::

    @versioned_asset(pool=WAREHOUSE_POOL, group_name="corpus", kinds={"duckdb"})
    def wiki_chunks(context, config: ChunkConfig, warehouse: Warehouse) -> MaterializeResult:
        # the docstring: what the asset holds, as the UI shows it
        with warehouse.get_connection() as db:
            return run_step(context, db, config,
                            compute=lambda: chunk_table.build(db, config.max_chars),
                            describe=lambda: chunk_table.describe(db))
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import duckdb
from dagster import (
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from pipeline.questions.work_keys import basis_key
from pipeline.source_version import source_version
from pipeline.steps import Markdown, StepError, Work
from pipeline.tables import Column

# The tags Dagster writes on every materialisation, read back through the public event records
# (its own constants live in a private module); tests/assets/test_incremental.py checks that
# Dagster still writes them under these names.
DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"

UNDONE = "undone:"  # the mark of a fingerprint whose step left work for the next run

STATE_DDL = """CREATE TABLE IF NOT EXISTS asset_state (
    asset VARCHAR, fingerprint VARCHAR, data_version VARCHAR, run_id VARCHAR,
    updated_at TIMESTAMPTZ)"""


# Config fields that choose where or how fast a step runs, never what it computes: moving a
# step from the CPU to a GPU, or giving it more threads, must not recompute it.
RUNTIME_FIELDS = frozenset({"device", "threads", "parse_workers"})
# The modules that define assets. An asset module imports its upstream asset modules only to
# name the edges of the graph; their code reaches it through their outputs' data versions.
ASSET_MODULES = frozenset({"assets.corpus", "assets.questions", "assets.retrieval",
                           "assets.rankings", "assets.answering"})
SOURCE_PACKAGES = frozenset({"pipeline", "resources", "assets"})


def function_code_version(function: Callable[..., Any]) -> str:
    """The code version of one asset: a hash of its function's source, of the asset-layer
    helpers and config classes it names (their own sources, followed the same way), and of the
    project modules it names outside the asset layer, with everything they import
    (:func:`pipeline.source_version.source_version`: the domain functions it runs, the
    resources of its parameters).

    Why per function and not per module: the assets of one module would share one version, so
    an edit to one asset (or to a resource another asset uses) would recompute them all; here
    an edit reaches exactly the assets whose code it is. Other assets it names (its
    dependencies) are left out: their code reaches it through their data versions.
    """
    sources: dict[str, str] = {}
    modules: set[str] = set()
    values: dict[str, str] = {}
    pending: list[Any] = [function]
    while pending:
        item = pending.pop()
        key = f"{item.__module__}.{item.__qualname__}"
        if key in sources:
            continue
        source = textwrap.dedent(inspect.getsource(item))
        sources[key] = source
        scope = dict(vars(sys.modules[item.__module__]))
        if inspect.isfunction(item):
            scope.update(inspect.getclosurevars(item).nonlocals)
        for name in sorted(_names(source)):
            if name not in scope:
                continue
            value = scope[name]
            if isinstance(value, AssetsDefinition | AssetChecksDefinition):
                continue
            owner = value.__name__ if inspect.ismodule(value) else getattr(
                value, "__module__", None) if inspect.isclass(value) or callable(value) else None
            if owner is None:
                if _plain(value):
                    values[f"{key}:{name}"] = repr(sorted(map(repr, value)) if isinstance(
                        value, frozenset | set) else value)
                continue
            if owner.split(".")[0] not in SOURCE_PACKAGES:
                continue
            if owner in ASSET_MODULES and not inspect.ismodule(value):
                pending.append(value)
            else:
                modules.add(owner)
    digest = hashlib.sha256()
    for key in sorted(sources):
        digest.update(f"{key}\n{sources[key]}".encode())
    for key in sorted(values):
        digest.update(f"{key}={values[key]}".encode())
    digest.update(source_version(*sorted(modules), skip=ASSET_MODULES).encode())
    return digest.hexdigest()[:16]


def _plain(value: Any) -> bool:
    """Whether ``value`` is a constant whose repr is its content (strings, numbers and
    containers of them), not an object's identity (a list of asset definitions)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, tuple | list | frozenset | set):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return False


def _names(source: str) -> set[str]:
    """The bare names a piece of source uses (``reader_training`` of
    ``reader_training.train``)."""
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def versioned_asset(**kwargs: Any) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """``@asset`` with the code version of the function it decorates
    (:func:`function_code_version`)."""
    def decorate(function: Callable[..., Any]) -> AssetsDefinition:
        return asset(code_version=function_code_version(function), **kwargs)(function)
    return decorate


def input_versions(context: AssetExecutionContext) -> dict[str, str | None]:
    """The latest data version Dagster recorded for each upstream asset of this step."""
    versions: dict[str, str | None] = {}
    for key in sorted(context.assets_def.asset_deps[context.asset_key], key=str):
        record = context.instance.get_latest_data_version_record(key)
        event = record.asset_materialization if record else None
        versions[key.to_user_string()] = event.tags.get(DATA_VERSION_TAG) if event else None
    return versions


def config_fingerprint(config: Config | None) -> dict[str, Any] | None:
    """The run config as it reaches a fingerprint: every field but :data:`RUNTIME_FIELDS` and
    the config's own ``OUTPUT_LOCATIONS`` (where it writes a file whose content its state
    covers: a moved working area must not recompute it)."""
    if config is None:
        return None
    skipped = RUNTIME_FIELDS | getattr(config, "OUTPUT_LOCATIONS", frozenset())
    return config.model_dump(mode="json", exclude=set(skipped))


def fingerprint(code_version: str | None, config: Config | None,
                inputs: Mapping[str, str | None], state: Mapping[str, Any] | None = None) -> str:
    payload = json.dumps(
        {"code_version": code_version,
         "config": config_fingerprint(config),
         "inputs": dict(inputs),
         "state": dict(state or {})},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def step_basis(context: AssetExecutionContext, config: Config | None,
               state: Mapping[str, Any] | None = None,
               per_question: tuple[str, ...] = ("questions",)) -> str:
    """What a per-question step's rows depend on for every question alike: its code version,
    config and state, and the data versions of its upstream assets except ``per_question``
    ones, whose rows reach each question's item key instead
    (:mod:`pipeline.questions.work_keys`)."""
    inputs = {k: v for k, v in input_versions(context).items() if k not in per_question}
    code = context.assets_def.code_versions_by_key.get(context.asset_key)
    return basis_key(code_version=code,
                     config=config_fingerprint(config), inputs=inputs, state=dict(state or {}))


def run_step(
    context: AssetExecutionContext,
    db: duckdb.DuckDBPyConnection,
    config: Config | None,
    compute: Callable[[], Work],
    describe: Callable[[], dict[str, Any]],
    state: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    *,
    inputs: Callable[[], Mapping[str, str | None]] | None = None,
    stored: Callable[[], str | None] | None = None,
) -> MaterializeResult:
    """Compute the asset unless its fingerprint equals the last one's; describe it either way.

    ``compute`` does the work and returns its :class:`Work`; ``describe`` is cheap and gives the
    metadata that reflects the table as it now stands (row counts, a preview). ``state`` adds
    what else the output depends on: settings of shared resources (a tokenizer, a model's
    weights) and the identity of data kept outside the warehouse (a search index's generation,
    so that a deleted index is rebuilt even though nothing upstream changed). A callable is
    read before the step, to decide, and again after computing, to record what was built.

    A step whose :class:`Work` left something ``undone`` (a time budget ran out) is recorded as
    incomplete: the next run computes again, and its per-question caches make it read only
    what is left.

    ``inputs``, when given, replaces the upstream data versions: a step that reads a part of
    its upstream tables (the train questions, not the test ones) names the content of that
    part, so a change elsewhere upstream does not make it compute. ``stored`` gives the data
    version of the output as it is stored now; an up-to-date step whose stored output no longer
    has the version it reported (rows deleted or edited) computes again.
    """
    asset = context.asset_key.to_user_string()
    upstream = dict(inputs()) if inputs else input_versions(context)
    version_of_code = context.assets_def.code_versions_by_key.get(context.asset_key)
    current = state() if callable(state) else state
    step = fingerprint(version_of_code, config, upstream, current)
    db.execute(STATE_DDL)
    cached = db.execute(
        "SELECT data_version FROM asset_state WHERE asset = ? AND fingerprint = ?", [asset, step]
    ).fetchone()
    if cached and stored is not None and (found := stored()) != cached[0]:
        context.log.warning(f"{asset}: its output is no longer what it last reported (data "
                            f"version {found}, not {cached[0]}); computing it again")
        cached = None
    if cached:
        context.log.info(f"{asset} is up to date: its code version, config and inputs "
                         f"{upstream} equal those of its last materialisation; nothing to do")
        version, metadata = cached[0], {"up_to_date": True}
    else:
        work = report_failure(compute)
        version = work.data_version
        metadata = {"up_to_date": False, "left_undone": work.undone, **work.metadata}
        if callable(state):
            current = state()
            step = fingerprint(version_of_code, config, upstream, current)
        if work.undone:
            # Not complete: recorded under a fingerprint no run can match, so the next run
            # with the same config and inputs computes again and does the rest.
            context.log.warning(f"{asset}: {work.undone} questions left undone by the budget; "
                                "the next run reads them (and nothing already read)")
            step = f"{UNDONE}{step}"
        db.execute("DELETE FROM asset_state WHERE asset = ?", [asset])
        db.execute("INSERT INTO asset_state VALUES (?, ?, ?, ?, now())",
                   [asset, step, version, context.run.run_id])
    recorded: dict[str, Any] = {"fingerprint": step}
    if config is not None:
        recorded["config"] = MetadataValue.json(config.model_dump(mode="json"))
    if current:
        recorded["settings"] = MetadataValue.json(json.loads(json.dumps(dict(current),
                                                                        default=str)))
    return MaterializeResult(
        data_version=DataVersion(version),
        metadata=as_metadata({**metadata, **describe(), **recorded}),
    )


def report_failure(compute: Callable[[], Work]) -> Work:
    """Run ``compute``; a :class:`~pipeline.steps.StepError` (the user's to fix: missing
    inputs, bad config) becomes a clean Dagster ``Failure`` rather than a stack trace."""
    try:
        return compute()
    except StepError as exc:
        raise Failure(str(exc)) from exc


def as_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """Domain metadata as Dagster's: :class:`~pipeline.steps.Markdown` text rendered as
    Markdown, ``row_count`` and ``columns`` (:class:`~pipeline.tables.Column`) under Dagster's
    own keys (the UI shows them as the table's size and schema); numbers, text, lists and
    dicts as Dagster normalises them (numbers are plotted across materialisations)."""
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Markdown):
            value = MetadataValue.md(value)
        elif key == "columns" and all(isinstance(c, Column) for c in value):
            key, value = "dagster/column_schema", TableSchema(
                columns=[TableColumn(c.name, c.type, c.description or None) for c in value])
        elif key == "row_count":
            key = "dagster/row_count"
        converted[key] = value
    return converted
