"""Device choice (CUDA, then MPS, then CPU) and the precision ``auto`` picks for it."""

import torch

from melscribe_torch.models import device, pick_device
from melscribe_torch.models.device import native_bf16, resolve_precision


def test_cpu_when_no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")


def test_cuda_first(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


def test_auto_precision_is_bf16_only_where_the_device_runs_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "native_bf16", lambda d: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device, "native_bf16", lambda d: False)
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"  # an explicit choice is kept


def test_a_cpu_without_fast_bf16_kernels_is_reported_as_such(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert not native_bf16(cpu)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert native_bf16(cpu)
    assert not native_bf16(torch.device("mps"))  # kept on fp32 there
