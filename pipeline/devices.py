"""Which torch device a model runs on: ``"auto"`` picks a CUDA GPU when there is one."""

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
