"""The heavy reader: a causal LM scoring the answer letter, on the runtime that suits it.

A GGUF model on a CPU runs on llama.cpp (:mod:`pipeline.answering.readers.llama_cpp`: the quantised
weights as they are, about twice as fast as transformers here); anything else, and any model on a
GPU, on transformers (:mod:`pipeline.answering.readers.causal_lm`). Both score a question the same
way, listing only the question's own options (2 to 10, lettered A onwards), and return the
log-softmax over its letters, one score per option, so the cascade and its cache do not care
which ran.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from pipeline.answering.readers import llama_cpp
from pipeline.devices import torch_device
from pipeline.models import ResolvedModel
from pipeline.questions.question import Question

Runtime = Literal["auto", "llama.cpp", "transformers"]
DEFAULT_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"


class LetterReader(Protocol):
    last_tokens: int  # the prompt tokens of the latest question (all its rotations)

    def score(self, question: Question, context: str) -> np.ndarray:
        """One score per option the question has, in order (log-probabilities of its answer
        letters)."""
        ...


def choose_runtime(model: ResolvedModel, runtime: Runtime, device: str) -> str:
    """``auto``: llama.cpp for a GGUF file on the CPU when the binding is installed, else
    transformers (which dequantises a GGUF, and runs on a GPU)."""
    if runtime != "auto":
        return runtime
    on_cpu = torch_device(device).type == "cpu"
    return "llama.cpp" if model.file and on_cpu and llama_cpp.available() else "transformers"


def load(model: ResolvedModel, runtime: Runtime = "auto", *, context_tokens: int = 256,
         permutations: int = 1, threads: int | None = None, device: str = "auto"
         ) -> LetterReader:
    """The heavy reader of ``model`` on the chosen runtime."""
    chosen = choose_runtime(model, runtime, device)
    if chosen == "llama.cpp":
        return llama_cpp.LlamaCppReader(model, context_tokens=context_tokens,
                                        permutations=permutations, threads=threads)
    if chosen != "transformers":
        raise ValueError(f"unknown runtime {runtime!r}: use auto, llama.cpp or transformers")
    from pipeline.answering.readers.causal_lm import CausalLMReader

    if threads:
        import torch

        torch.set_num_threads(threads)
    return CausalLMReader(model, max_context_tokens=context_tokens, permutations=permutations,
                          device=device)
