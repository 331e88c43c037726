"""int8 dynamic quantisation of an encoder's linear layers, for CPU serving.

Weights of every ``nn.Linear`` are stored as int8 and activations quantised on the fly
(``torch.ao.quantization.quantize_dynamic``): about 4x smaller linear weights and faster
matmuls on CPUs with int8 kernels, at a small cost in embedding accuracy. CPU only.
"""

from __future__ import annotations

import torch
from torch import nn

QUANTIZATIONS = ("none", "int8")


def quantize_encoder(model: nn.Module, quantize: str) -> nn.Module:
    """``model`` with its backbone's linear layers quantised (``"int8"``), or unchanged (``"none"``).

    Raises:
        ValueError: an unknown scheme, or a model that is not on CPU (the int8 kernels are CPU-only).
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; valid: {', '.join(QUANTIZATIONS)}")
    if quantize == "none":
        return model
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(
            f"int8 quantization runs on CPU only, the model is on {device}; use --device cpu"
        )
    model.backbone = torch.ao.quantization.quantize_dynamic(
        model.backbone, {nn.Linear}, dtype=torch.qint8
    )
    return model
