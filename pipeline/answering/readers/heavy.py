"""The heavy reader: a causal LM scoring the answer letter, on the runtime that suits it.

A GGUF model on a CPU runs on llama.cpp (:mod:`pipeline.answering.readers.llama_cpp`: the quantised
weights as they are, about twice as fast as transformers here); anything else, and any model on a
GPU, on transformers (:mod:`pipeline.answering.readers.causal_lm`). Both score a question the same
way, listing only the question's own options (2 to 10, lettered A onwards), and return the
log-softmax over its letters, one score per option, so the cascade and its cache do not care
which ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np

from pipeline.answering.readers import llama_cpp
from pipeline.devices import torch_device, weight_precision
from pipeline.models import ResolvedModel
from pipeline.questions.question import Question

Runtime = Literal["auto", "llama.cpp", "transformers"]
# The official Q4_K_M GGUF, which llama.cpp reads on a CPU (bundled: see pipeline.models). On a
# GPU name the full-precision hub id (config/gpu.yaml), loaded in half precision.
DEFAULT_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"


class LetterReader(Protocol):
    last_tokens: int  # the prompt tokens of the latest question (all its rotations)
    batch_size: int  # questions read in one forward pass (1 on llama.cpp)

    def score(self, question: Question, context: str) -> np.ndarray:
        """One score per option the question has, in order (log-probabilities of its answer
        letters)."""
        ...

    def score_batch(self, items: Sequence[tuple[Question, str]]
                    ) -> tuple[list[np.ndarray], list[int]]:
        """:meth:`score` of each pair, ``batch_size`` at a time, and each one's prompt
        tokens."""
        ...


def choose_runtime(model: ResolvedModel, runtime: Runtime, device: str) -> str:
    """``auto``: llama.cpp for a GGUF file on the CPU when the binding is installed, else
    transformers (which dequantises a GGUF, and runs on a GPU)."""
    if runtime != "auto":
        return runtime
    on_cpu = torch_device(device).type == "cpu"
    return "llama.cpp" if model.file and on_cpu and llama_cpp.available() else "transformers"


@dataclass(frozen=True)
class Setup:
    """What a reading is made with besides the weights and the prompt: the runtime, the device
    type and the weights' precision. Readings made on another setup differ (llama.cpp's Q4_K_M
    kernels, a bfloat16 GPU model), so the reading cache matches on all three."""

    runtime: str
    device: str
    dtype: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def setup(model: ResolvedModel, runtime: Runtime = "auto", device: str = "auto",
          precision: str = "auto") -> Setup:
    """The setup ``model`` would be read with: the runtime :func:`choose_runtime` picks, and
    for transformers the device type and :func:`pipeline.devices.weight_precision`."""
    chosen = choose_runtime(model, runtime, device)
    if chosen == "llama.cpp":
        return Setup("llama.cpp", "cpu", "gguf")
    torch_dev = torch_device(device)
    return Setup(chosen, torch_dev.type, weight_precision(torch_dev, precision))


def load(model: ResolvedModel, runtime: Runtime = "auto", *,
         context_tokens: int = llama_cpp.DEFAULT_CONTEXT_TOKENS,
         permutations: int = 1, threads: int | None = None, device: str = "auto",
         precision: str = "auto", scoring: str = "letter", batch_size: int = 1
         ) -> LetterReader:
    """The heavy reader of ``model`` on the chosen runtime (``batch_size`` questions a forward
    pass on transformers; llama.cpp reads one at a time)."""
    chosen = choose_runtime(model, runtime, device)
    if chosen == "llama.cpp":
        return llama_cpp.LlamaCppReader(model, context_tokens=context_tokens,
                                        permutations=permutations, threads=threads,
                                        scoring=scoring)
    if chosen != "transformers":
        raise ValueError(f"unknown runtime {runtime!r}: use auto, llama.cpp or transformers")
    from pipeline.answering.readers.causal_lm import CausalLMReader

    if threads:
        import torch

        torch.set_num_threads(threads)
    return CausalLMReader(model, max_context_tokens=context_tokens, permutations=permutations,
                          device=device, precision=precision, scoring=scoring,
                          batch_size=batch_size)
