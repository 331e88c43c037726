"""The optimizer both training loops use: AdamW, fused where the device has the kernel."""

from __future__ import annotations

from collections.abc import Iterable

import torch

# One kernel per step instead of a loop over parameters: on 2 CPU cores a MiniLM step of
# AdamW takes 18 ms fused against 98 ms (6-7% of a default training step). The Hugging Face
# Trainer (and so sentence-transformers') defaults to it too.
FUSED_DEVICE_TYPES = ("cpu", "cuda")


def build_adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW over ``params`` (all on ``device``), fused on CPU and CUDA."""
    return torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, fused=device.type in FUSED_DEVICE_TYPES
    )
