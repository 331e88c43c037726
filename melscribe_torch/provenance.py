"""What produced a result: library versions, machine, seeds. Every results file carries it."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from . import __version__

_PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scikit-learn", "hydra-core")


def library_versions() -> dict[str, str]:
    versions = {"melscribe-torch": __version__, "python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, object]:
    import os

    import torch

    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
