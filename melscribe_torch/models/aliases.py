"""Short model names (``minilm-l6``, ``bert-base``...) from the ``model/`` config group's files."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_model_aliases(model_conf_dir: str | Path) -> dict[str, dict]:
    """``{name: {"name_or_path": ..., "pooling": ..., "max_length": ...}}`` from ``<dir>/<name>.yaml``."""
    return {
        path.stem: yaml.safe_load(path.read_text()) or {}
        for path in sorted(Path(model_conf_dir).glob("*.yaml"))
    }
