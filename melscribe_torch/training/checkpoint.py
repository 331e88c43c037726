"""One-file training checkpoints, written atomically, read without running any code.

The checkpoint is one dict of tensors and plain Python values::

    {"model", "optimizer", "scaler": state dicts, "step": optimizer steps done,
     "micro_batch": data position, "best_metric": best validation value or None,
     "seed", "config": the run's settings, "rng": python/numpy/torch(/cuda) states}

It is read with ``torch.load(weights_only=True)``: a file crafted to run code when
unpickled (``train.resume_from`` pointing at a stranger's file) is refused instead. The
numpy RNG state is therefore stored as a tensor, not as a numpy array.

It is written to a temporary file in the same directory and moved over the old one with
``os.replace``, so a kill while saving leaves the previous checkpoint intact. Its sha256 is
kept beside it (``checkpoint.pt.sha256``, see ``integrity``) and checked at load, so a file
corrupted in place is refused rather than resumed from.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..integrity import IntegrityError, check_finite, check_sidecar, replace_with_sidecar
from ..io import temp_beside


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, corrupt, or does not fit the model."""


def rng_states() -> dict[str, Any]:
    """The random states that dropout and any sampling draw from, as tensors and plain types."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, ``os.replace``) with its sha256 beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        replace_with_sidecar(tmp, path, os.replace)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, model: nn.Module, verify: bool = True) -> dict[str, Any]:
    """Read a checkpoint and load its weights into ``model``.

    Args:
        path: The checkpoint file.
        model: Receives the weights.
        verify: Check the file against its ``.sha256`` sidecar (when it has one).

    Returns:
        The checkpoint dict (optimizer, scaler, step, rng, ... for the caller to restore).

    Raises:
        CheckpointError: missing, truncated/corrupt, not a plain-data checkpoint, holding
            non-finite weights, or made for another model.
    """
    state = read_checkpoint(path, verify)
    load_weights(state, model, path)
    return state


def read_checkpoint(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """A checkpoint's dict, checked (sha256, plain data, its keys, finite weights) but not
    loaded into any model; ``load_checkpoint`` without the model."""
    path = Path(path)
    fix = "delete it to start over, or point train.resume_from at a good checkpoint"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if verify:
            check_sidecar(path, fix)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except IntegrityError as error:
        raise CheckpointError(str(error)) from None
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain values "
            f"({str(error).splitlines()[0]}); it was not written by this code and is not loaded; {fix}"
        ) from None
    except Exception as error:  # torch raises several types for a damaged zip
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(error).__name__}: {str(error).splitlines()[0]}); "
            f"it is damaged or not a checkpoint: {fix}"
        ) from None
    missing = [
        key for key in ("model", "optimizer", "step", "micro_batch", "rng") if key not in state
    ] if isinstance(state, dict) else ["everything"]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}: not a checkpoint written by this code"
        )
    try:
        check_finite(state["model"], f"checkpoint {path}")
        if "ema" in state:
            check_finite(state["ema"]["average"], f"checkpoint {path} (weight average)")
    except IntegrityError as error:
        raise CheckpointError(str(error)) from None
    return state


def load_weights(state: dict[str, Any], model: nn.Module, path: str | Path) -> None:
    """``state["model"]`` into ``model``; a mismatch names the checkpoint ``path``."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {path} does not match the model (was it made with another model.name_or_path?): {error}"
        ) from error
