"""Every default is defined once: where a setting appears in several places (a run config, a
resource, a domain dataclass, a function's keyword), they all carry the same default, read
from one definition."""

import dataclasses
import inspect
from typing import Any

from assets.answering import TrainReaderConfig
from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.reader_training import TrainSettings
from pipeline.answering.readers import heavy, multiple_choice
from pipeline.answering.readers.causal_lm import CausalLMReader
from pipeline.answering.readers.llama_cpp import LlamaCppReader
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
