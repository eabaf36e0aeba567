"""Fixtures shared by the answering tests."""

import pytest

from pipeline.answering.readers import llama_cpp
from pipeline.models import ModelNotFoundError, ResolvedModel, resolve


@pytest.fixture(scope="module")
def smollm() -> ResolvedModel:
    """The small real GGUF causal LM the heavy-reader tests read with through llama.cpp."""
    if not llama_cpp.available():
        pytest.skip("llama-cpp-python is not installed (make installs it)")
    try:
        return resolve("HuggingFaceTB/SmolLM2-135M-Instruct", log=lambda _: None)
    except ModelNotFoundError as exc:
        pytest.skip(f"SmolLM2 cannot be had: {exc.reason()}")
