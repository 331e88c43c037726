"""Pick the compute device, and the precision it runs fastest without losing accuracy."""

from __future__ import annotations

import torch


def pick_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU.

    Returns:
        A `torch.device`.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` has fast bf16 kernels.

    A CPU without them (AVX2 only: no AVX-512 or AMX) emulates bf16: on a 2-core AVX2 CPU a
    bf16 training step ran 15x slower than fp32 and encoding 6.7x slower
    (docs/training.md#precision). MPS is reported as without, to stay on fp32 there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 either
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` becomes ``bf16`` where `device` runs it natively, else ``fp32``; others stay."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"
