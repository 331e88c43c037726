"""The Hydra configs that ship with the package: ``train.yaml``, ``evaluate.yaml`` and their groups."""

from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parent


def read_option(group: str, option: str = "default") -> dict:
    """One option of a config group as a dict, for code that runs without Hydra (the recommender)."""
    return yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text(encoding="utf-8")) or {}


def read_config(name: str) -> dict:
    """A top-level config (``train``, ``evaluate``) as written, without composing its groups:
    e.g. ``read_config("train")["data"]`` holds train.py's validation settings."""
    return yaml.safe_load((CONF_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}
