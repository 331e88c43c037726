"""The teacher's training saved part-way, so a killed run resumes it instead of starting over.

A teacher is the longest stage of the recipe on a CPU (a 1,200-step MiniLM teacher takes
half an hour to an hour on two cores, a 400-step mpnet one longer), and it used to be lost
whole to a kill. The file is a ``training.checkpoint`` file (atomic, sha256 beside it, read
without running code) holding what the teacher's loop needs to go on exactly where it
stopped: weights, optimizer and scaler states, the step, the shuffle's random state and the
rest of its pass, dropout's random states and the last losses.

It is keyed to the teacher stage's settings hash (which chains the stages before it): a file
left by a run with other settings or other data is not resumed, it is replaced.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..integrity import sidecar
from ..training.checkpoint import (
    load_weights,
    read_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherCheckpoint:
    """Where and how often the teacher's loop saves itself.

    Args:
        path: The checkpoint file (the run folder's ``teacher-checkpoint.pt``).
        every: Save after every ``every`` steps (and after the last one); 0 only after the last.
        key: The settings hash the file must carry to be resumed.
    """

    path: Path
    every: int
    key: str

    def due(self, steps_done: int, steps: int) -> bool:
        return steps_done == steps or (self.every > 0 and steps_done % self.every == 0)


@dataclass
class LoopState:
    """The loop's own state beside the model's and the optimizer's."""

    steps_done: int
    shuffle: random.Random
    order: list[int]
    losses: list[float]


def save_teacher_checkpoint(
    checkpoint: TeacherCheckpoint, model, optimizer, scaler, loop: LoopState
) -> None:
    save_checkpoint(
        checkpoint.path,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": loop.steps_done,
            "micro_batch": loop.steps_done,  # one batch per step
            "config": {"key": checkpoint.key},
            "rng": rng_states(),
            "shuffle": loop.shuffle.getstate(),
            "order": torch.tensor(loop.order, dtype=torch.int64),
            "losses": loop.losses[-10:],  # what train_loss reads
        },
    )


def resume_teacher_checkpoint(
    checkpoint: TeacherCheckpoint, model, optimizer, scaler
) -> LoopState | None:
    """Load the saved state into ``model``, ``optimizer`` and ``scaler``; None when there is no
    file to resume or it was made with other settings (then the loop starts from step 0).

    Raises:
        CheckpointError: the file is corrupt, not plain data, or does not fit the model.
    """
    if not checkpoint.path.is_file():
        return None
    state = read_checkpoint(checkpoint.path)  # the sha256, plain data, finite weights
    if state.get("config", {}).get("key") != checkpoint.key:
        log.warning(
            "teacher checkpoint %s was made with other settings or data; the teacher starts over",
            checkpoint.path,
        )
        return None
    load_weights(state, model, checkpoint.path)
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    shuffle = random.Random()
    shuffle.setstate(state["shuffle"])
    log.info("teacher: resumed from %s at step %d", checkpoint.path, state["step"])
    return LoopState(state["step"], shuffle, state["order"].tolist(), list(state["losses"]))


def remove_teacher_checkpoint(path: Path) -> None:
    """Once the teacher is saved its checkpoint has done its job."""
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)
