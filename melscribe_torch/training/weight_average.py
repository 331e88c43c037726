"""An exponential moving average (EMA) of a model's weights, kept beside the training weights.

The average is a second set of fp32 tensors: ``avg ← avg + (1 − d) · (w − avg)`` after every
optimizer step, with the decay ``d`` warmed up as ``min(decay, (1 + n) / (10 + n))`` so that
the first steps do not weigh the initial weights for thousands of steps. To score or save the
averaged model, ``swapped_in(model)`` puts the average into the model and the training weights
back afterwards; the training weights themselves never see the average.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """EMA of ``model``'s floating-point parameters and buffers.

    Args:
        model: The model being trained (its current weights start the average).
        decay: Weight of the old average per update, in [0, 1); 0.999 averages over about
            the last 1,000 steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = {
            name: tensor.detach().float().clone() for name, tensor in _float_state(model).items()
        }

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        state = _float_state(model)
        names = list(self.average)
        torch._foreach_lerp_(
            [self.average[name] for name in names], [state[name].float() for name in names], weight
        )
        self.updates += 1

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` holds the averaged weights inside the block, its own weights after it."""
        state = _float_state(model)
        training_weights = {name: tensor.detach().clone() for name, tensor in state.items()}
        try:
            self.copy_to(model)
            yield model
        finally:
            with torch.no_grad():
                for name, tensor in state.items():
                    tensor.copy_(training_weights[name])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Replace ``model``'s weights with the average for good (e.g. at the end of training)."""
        for name, tensor in _float_state(model).items():
            tensor.copy_(self.average[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.average) - set(state["average"])
        if missing:
            raise KeyError(
                f"the stored weight average lacks {len(missing)} tensor(s), e.g. {sorted(missing)[0]}"
            )
        self.updates = state["updates"]
        self.average = {
            name: state["average"][name].to(device=tensor.device, dtype=torch.float32)
            for name, tensor in self.average.items()
        }


def _float_state(model: nn.Module) -> dict[str, Tensor]:
    """The parameters and floating-point buffers (integer buffers such as position ids stay put)."""
    return {
        name: tensor
        for name, tensor in model.state_dict(keep_vars=True).items()
        if tensor.is_floating_point()
    }
