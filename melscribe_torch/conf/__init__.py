"""The Hydra configs that ship with the package: ``train.yaml``, ``evaluate.yaml`` and their groups."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
