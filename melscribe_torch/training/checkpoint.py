"""One-file training checkpoints, written atomically.

The checkpoint is one dict::

    {"model", "optimizer", "scaler": state dicts, "step": optimizer steps done,
     "micro_batch": data position, "best_metric": best validation value or None,
     "seed", "config": the run's settings, "rng": python/numpy/torch(/cuda) states}

It is written to a temporary file in the same directory and moved over the old one with
``os.replace``, so a kill while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable or does not fit the model."""


def rng_states() -> dict[str, Any]:
    """The random states that dropout and any sampling draw from."""
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Read a checkpoint and load its weights into ``model``.

    Returns:
        The checkpoint dict (optimizer, scaler, step, rng, ... for the caller to restore).

    Raises:
        CheckpointError: missing, truncated/corrupt, or made for another model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only=False: the file holds RNG states (numpy arrays, tuples); only load
        # checkpoints this code wrote.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for a damaged zip
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); it is damaged or "
            "not a checkpoint: delete it to start over, or point train.resume_from at a good one"
        ) from error
    missing = [
        key for key in ("model", "optimizer", "step", "micro_batch", "rng") if key not in state
    ]
    if not isinstance(state, dict) or missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}: not a checkpoint written by this code"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {path} does not match the model (was it made with another model.name_or_path?): {error}"
        ) from error
    return state
