"""Short model names (``minilm-l6``, ``bert-base``...): the ``model/`` config group's files.

Every entry point resolves a model name here: training (mining retrievers, the teacher),
evaluation (retriever names) and ``melscribe-recommend --model``. A name that is not a short
name is a model directory, ``package:<module>`` or a hub id, used as it is.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..conf import CONF_DIR

MODEL_CONF_DIR = CONF_DIR / "model"


def load_model_aliases(model_conf_dir: str | Path = MODEL_CONF_DIR) -> dict[str, dict]:
    """``{name: {"name_or_path": ..., "pooling": ..., "max_length": ...}}`` from ``<dir>/<name>.yaml``."""
    return {
        path.stem: yaml.safe_load(path.read_text()) or {}
        for path in sorted(Path(model_conf_dir).glob("*.yaml"))
    }


def model_spec(name: str, aliases: dict[str, dict] | None = None) -> dict:
    """The settings a model name stands for: its ``model/<name>.yaml`` for a short name, else
    ``{"name_or_path": name}``.

    Args:
        aliases: Short name -> settings; None reads the package's ``model/`` group.
    """
    aliases = load_model_aliases() if aliases is None else aliases
    return aliases[name] if name in aliases else {"name_or_path": name}


def load_bi_encoder(name: str, aliases: dict[str, dict] | None = None, device=None):
    """A `BiEncoder` from a short name (with its pooling, length and normalisation) or a path / hub id."""
    from .bi_encoder import BiEncoder  # here: resolving a name must not pay for importing transformers

    spec = model_spec(name, aliases)
    return BiEncoder.from_pretrained(
        spec["name_or_path"],
        pooling=spec.get("pooling"),
        max_length=spec.get("max_length"),
        normalize=spec.get("normalize"),
        device=device,
    )
