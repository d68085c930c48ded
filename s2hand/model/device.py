"""The torch device a model runs on, from a params setting ("auto", "cpu" or "cuda").

    device = pick_device(params.evaluate.device)                  # cuda (the current one) or cpu
    device = pick_device(params.train.runtime.device, local_rank)  # cuda:<local_rank> under DDP
"""
from __future__ import annotations

import torch


def pick_device(name: str, index: int | None = None) -> torch.device:
    """CUDA when `name` is "cuda", or "auto" and CUDA is available (device `index`, or the current
    one when None); the CPU otherwise."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda") if index is None else torch.device("cuda", index)
    return torch.device("cpu")
