"""The teacher resource: the heavy reader that labels the distillation pool and is measured on
the scorecard, configured once for both."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.answering.cascade import HeavySettings
from pipeline.answering.readers import heavy


class Teacher(ConfigurableResource):
    """Which causal LM teaches the distilled student, and how it reads (the same prompt and
    letter scoring as the cascade's heavy reader, so equal settings share cached readings)."""

    model: str = Field(default=heavy.DEFAULT_MODEL, description="A causal LM by hub id or path "
                       "(a GGUF file runs on llama.cpp on the CPU; any larger model by hub id "
                       "on a GPU).")
    runtime: str = Field(default="auto", description="auto, llama.cpp or transformers.")
    context_tokens: int = Field(default=128, description="Context tokens in its prompt.")
    permutations: int = Field(default=1, description="Cyclic option rotations averaged (1-5).")
    threads: int | None = Field(default=None, description="CPU threads (default: all).")
    device: str = Field(default="auto", description="torch device of the transformers runtime.")

    def settings(self, max_seconds: float | None = None) -> HeavySettings:
        return HeavySettings(runtime=self.runtime, context_tokens=self.context_tokens,
                             permutations=self.permutations, threads=self.threads,
                             device=self.device, max_seconds=max_seconds)

    def state(self, weights: str) -> dict[str, Any]:
        """What the teacher's readings depend on: its weights and the settings that change an
        answer (not threads or device)."""
        return {"teacher_weights": weights,
                **self.settings().cache_settings(self.runtime)}
