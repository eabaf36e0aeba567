"""The heavy reader: the causal LM that the cascade escalates to, that teaches the distilled
student and that the scorecard measures, configured once for all three.

One resource, so the three read with the same settings by construction and share their cached
readings (a reading is keyed by the weights, the setup and the prompt settings). Its defaults
are the domain's (:class:`pipeline.answering.heavy_settings.HeavySettings` and
:data:`pipeline.answering.readers.heavy.DEFAULT_MODEL`): one definition each.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.answering.heavy_settings import HeavySettings
from pipeline.answering.readers.heavy import DEFAULT_MODEL

DEFAULTS = HeavySettings()


class HeavyReader(ConfigurableResource):
    """Which causal LM reads, and how (the answer-letter or per-option prompt of
    :mod:`pipeline.answering.readers.heavy`)."""

    model: str = Field(default=DEFAULT_MODEL, description="A causal LM by hub id or path (a "
                       "GGUF file runs on llama.cpp on the CPU; any model by hub id on a GPU, "
                       "through transformers).")
    runtime: str = Field(default=DEFAULTS.runtime,
                         description="auto, llama.cpp or transformers.")
    context_tokens: int = Field(default=DEFAULTS.context_tokens, description="Context tokens "
                                "in its prompt (the best passage, about; 256 read no better "
                                "on a CPU at 1.7x the cost: docs/benchmarks.md).")
    permutations: int = Field(default=DEFAULTS.permutations, description="Cyclic rotations of "
                              "the options averaged (1-5): each costs another pass.")
    scoring: str = Field(default=DEFAULTS.scoring, description="letter: one pass scores the "
                         "answer letters of the listed options; option: each option proposed "
                         "alone, scored by the log-odds of yes against no.")
    threads: int | None = Field(default=DEFAULTS.threads,
                                description="CPU threads (default: all).")
    device: str = Field(default=DEFAULTS.device,
                        description="torch device of the transformers runtime.")
    batch_size: int = Field(default=DEFAULTS.batch_size, ge=1, description="Questions a "
                            "forward pass on transformers (8-32 on a GPU; 1 on a CPU).")
    precision: str = Field(default=DEFAULTS.precision, description="Weights' precision on "
                           "transformers: auto (float32 on a CPU, bfloat16 or float16 on a "
                           "GPU), float32, bfloat16, float16, 8bit or 4bit (bitsandbytes).")

    def settings(self, max_seconds: float | None = None) -> HeavySettings:
        """How it reads, for one step (``max_seconds``: that step's time budget)."""
        return HeavySettings(runtime=self.runtime, context_tokens=self.context_tokens,
                             permutations=self.permutations, threads=self.threads,
                             device=self.device, max_seconds=max_seconds,
                             precision=self.precision, scoring=self.scoring,
                             batch_size=self.batch_size)
