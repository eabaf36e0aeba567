"""Every default is defined once: where a setting appears in several places (a run config, a
resource, a domain dataclass, a function's keyword, the configuration page), they all carry the
same default, read from one definition."""

import dataclasses
import inspect
import re
from typing import Any

import yaml
from dagster import AssetsDefinition, Config

from assets.answering import TrainReaderConfig
from definitions import defs
from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.reader_training import TrainSettings
from pipeline.answering.readers import heavy, multiple_choice
from pipeline.answering.readers.causal_lm import CausalLMReader
from pipeline.answering.readers.llama_cpp import LlamaCppReader
from pipeline.paths import PROJECT_ROOT
from resources import HeavyReader


def _fields(settings: Any) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def _keywords(function: Any, renamed: dict[str, str] | None = None) -> dict[str, Any]:
    """A function's keyword defaults, under the settings' names."""
    renamed = renamed or {}
    return {renamed.get(name, name): p.default
            for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _disagreements(definition: dict[str, Any], other: dict[str, Any]) -> dict[str, tuple]:
    return {name: (value, other[name]) for name, value in definition.items()
            if name in other and other[name] != value}


def test_the_heavy_reader_settings_have_one_default_each() -> None:
    settings = _fields(HeavySettings())
    assert _disagreements(settings, HeavyReader().model_dump()) == {}
    assert HeavyReader().model == heavy.DEFAULT_MODEL
    assert _disagreements(settings, _keywords(heavy.load)) == {}
    assert _disagreements(settings, _keywords(LlamaCppReader.__init__)) == {}
    assert _disagreements(settings, _keywords(
        CausalLMReader.__init__, {"max_context_tokens": "context_tokens"})) == {}


def test_the_reader_training_settings_have_one_default_each() -> None:
    settings = _fields(TrainSettings())
    assert _disagreements(settings, TrainReaderConfig().model_dump()) == {}
    assert _disagreements(settings, _keywords(multiple_choice.train)) == {}


def _documented() -> dict[str, Any]:
    """The run config docs/configuration.md shows as the defaults."""
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1))


def _shown(value: Any) -> Any:
    """A default as the page shows it: paths in the project relative to its root."""
    if isinstance(value, str) and value.startswith(str(PROJECT_ROOT) + "/"):
        return value[len(str(PROJECT_ROOT)) + 1:]
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def _config_class(asset: AssetsDefinition) -> type[Config]:
    function = asset.op.compute_fn.decorated_fn  # type: ignore[union-attr]
    return inspect.signature(function).parameters["config"].annotation


def test_the_configuration_page_shows_the_codes_defaults() -> None:
    """docs/configuration.md is a second place a default is written: it must agree."""
    documented = _documented()
    assets = {a.op.name: a for a in defs.assets if isinstance(a, AssetsDefinition)}
    wrong = {}
    for op, body in documented["ops"].items():
        fields = _config_class(assets[op]).model_fields
        for name, value in (body.get("config") or {}).items():
            assert name in fields, f"docs/configuration.md: {op} has no setting {name}"
            code = _shown(fields[name].get_default(call_default_factory=True))
            if code != value:
                wrong[f"{op}.{name}"] = (value, code)
    for resource, body in documented["resources"].items():
        code = defs.resources[resource].model_dump()
        for name, value in (body.get("config") or {}).items():
            assert name in code, f"docs/configuration.md: {resource} has no setting {name}"
            if _shown(code[name]) != value:
                wrong[f"{resource}.{name}"] = (value, _shown(code[name]))
    assert wrong == {}, "docs/configuration.md (shown, code): " + repr(wrong)
