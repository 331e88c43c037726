"""The Hydra configs that ship with the package: ``train.yaml``, ``evaluate.yaml`` and their groups."""

from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parent


def read_option(group: str, option: str = "default") -> dict:
    """One option of a config group as a dict, for code that runs without Hydra (the recommender)."""
    return yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text(encoding="utf-8")) or {}
