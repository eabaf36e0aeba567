"""Which torch device a model runs on (``"auto"`` picks a CUDA GPU when there is one), and in
which precision its weights are loaded there."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def torch_device(name: str = "auto") -> torch.device:
    """``"auto"``: ``cuda`` when torch sees a GPU, else ``cpu``; any other name as torch has it
    (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


PRECISIONS = ("auto", "float32", "bfloat16", "float16", "8bit", "4bit")


def weight_precision(device: torch.device, precision: str = "auto") -> str:
    """The precision a model's weights are loaded in on ``device``.

    ``auto``: float32 on a CPU (its half-precision kernels are slow, and a GGUF dequantised to
    float32 answers as llama.cpp does) and the GPU's half precision elsewhere: bfloat16 where
    the device supports it (it keeps float32's range, so no loss scaling), else float16, as the
    Kaggle solutions ran 7B-70B readers. ``8bit`` and ``4bit`` load through bitsandbytes.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if device.type == "cpu":
        return "float32"
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float16"
