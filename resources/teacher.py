"""The teacher resource: the heavy reader that labels the distillation pool and is measured on
the scorecard, configured once for both.

It imports nothing of the pipeline: every asset module imports the resources, and their code
versions must not change with the answering code (``tests/pipeline/test_source_version.py``).
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class Teacher(ConfigurableResource):
    """Which causal LM teaches the distilled student, and how it reads (the same prompt and
    letter scoring as the cascade's heavy reader, so equal settings share cached readings)."""

    model: str = Field(default="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", description="A causal LM "
                       "by hub id or path (a GGUF file runs on llama.cpp on the CPU; any "
                       "larger model by hub id on a GPU, through transformers).")
    runtime: str = Field(default="auto", description="auto, llama.cpp or transformers.")
    context_tokens: int = Field(default=128, description="Context tokens in its prompt.")
    permutations: int = Field(default=1, description="Cyclic option rotations averaged (1-5).")
    threads: int | None = Field(default=None, description="CPU threads (default: all).")
    device: str = Field(default="auto", description="torch device of the transformers runtime.")
    batch_size: int = Field(default=1, ge=1, description="Questions a forward pass on "
                            "transformers (8-32 on a GPU; 1 on a CPU).")
    scoring: str = Field(default="letter", description="letter (the answer letter of the "
                         "listed options) or option (each option proposed alone, yes/no).")
    precision: str = Field(default="auto", description="Weights' precision on transformers: "
                           "auto (float32 on a CPU, bfloat16 or float16 on a GPU), float32, "
                           "bfloat16, float16, 8bit or 4bit (bitsandbytes, the gpu extra).")
