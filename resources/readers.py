"""The readers resource: which models answer, and how, for every (reader, ranking) logits asset."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field


class ReaderSettings(ConfigurableResource):
    """Settings shared by the logits assets of one cheap reader across the three rankings (the
    heavy reader has its own resource, :class:`resources.heavy_reader.HeavyReader`).

    Models are hub ids or local paths, resolved through the model store. The CPU defaults are
    the small models the project's machines carry; the GPU recipe (docs/recipes.md) swaps in
    larger ones.
    """

    similarity_model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        description="Sentence embedder of the similarity reader (option against context).")
    similarity_top_k: int = Field(default=1, description="Best context sentences averaged.")
    multiple_choice_batch_size: int = Field(default=8, description="Questions per forward pass.")
    multiple_choice_runtime: str = Field(
        default="fp32", description="fp32, or int8: the student's linear layers dynamically "
        "quantised (CPU only; see the distillation scorecard for what it costs in MAP@3).")
    threads: int | None = Field(default=None, description="torch threads (default: torch's).")
    device: str = Field(default="auto", description="torch device; auto: a GPU if there is one.")

    def state(self, reader: str) -> dict[str, Any]:
        """The settings one reader's logits depend on (part of its assets' fingerprints)."""
        fields = {"lexical": (), "similarity": ("similarity_model", "similarity_top_k"),
                  "multiple_choice": ("multiple_choice_runtime",)}[reader]
        return {name: getattr(self, name) for name in fields}

    def configure_torch(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
