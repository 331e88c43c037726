"""The student's loss: a weighted sum of components, built from the ``loss`` config group.

The ``loss`` node maps a component name to its class (``_target_``), its ``weight`` and its
own options::

    margin_mse: {_target_: melscribe_torch.losses.margin_mse.MarginMSE, weight: 0.1, similarity: dot}
    mnrl: {_target_: melscribe_torch.losses.multiple_negatives_ranking.InBatchNegatives, weight: 1.0, ...}

A component with weight 0 is left out (so ``loss.margin_mse.weight=0`` turns one off).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from torch import Tensor, nn

from .base import LossComponent, StudentBatch


class WeightedSum(nn.Module):
    """``sum_i weight_i * component_i(batch)``, in the config's order.

    Args:
        components: name -> (weight > 0, component).

    Returns from forward: the loss () and each component's value by name (floats, for logs).
    """

    def __init__(self, components: Mapping[str, tuple[float, LossComponent]]) -> None:
        super().__init__()
        if not components:
            raise ValueError("the loss has no component with a weight > 0")
        self.weights = {name: float(weight) for name, (weight, _) in components.items()}
        self.components = nn.ModuleDict({name: part for name, (_, part) in components.items()})

    def _any(self, need: str) -> bool:
        return any(getattr(part, need) for part in self.components.values())

    @property
    def needs_margins(self) -> bool:
        return self._any("needs_margins")

    @property
    def needs_negatives(self) -> bool:
        return self._any("needs_negatives")

    @property
    def needs_known_positives(self) -> bool:
        return self._any("needs_known_positives")

    def forward(self, batch: StudentBatch) -> tuple[Tensor, dict[str, float]]:
        if batch.n is None and self.needs_negatives:
            raise ValueError("this loss needs the mined negatives' embeddings")
        if batch.margins is None and self.needs_margins:
            raise ValueError("this loss needs the teacher's margins")
        loss = batch.q.new_zeros(())
        parts = {}
        for name, part in self.components.items():
            value = part(batch)
            loss = loss + self.weights[name] * value
            parts[name] = value.item()
        return loss, parts


def build_loss(config: Mapping[str, Mapping[str, Any]]) -> WeightedSum:
    """The student's loss from the ``loss`` config node (name -> ``_target_``, weight, options)."""
    components = {}
    for name, spec in config.items():
        if not isinstance(spec, Mapping) or "_target_" not in spec or "weight" not in spec:
            raise ValueError(f"loss.{name}: needs _target_ (the component's class) and weight")
        options = {key: value for key, value in spec.items() if key != "weight"}
        weight = float(spec["weight"])
        if weight < 0:
            raise ValueError(f"loss.{name}.weight must be >= 0, got {weight}")
        if weight == 0:
            continue
        try:
            part = instantiate(options, _convert_="all")
        except InstantiationException as error:
            raise ValueError(f"loss.{name}: {error}") from error
        if not isinstance(part, LossComponent):
            raise ValueError(f"loss.{name}: {spec['_target_']} is not a LossComponent")
        components[name] = (weight, part)
    return WeightedSum(components)


def recorded_loss_settings(config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``loss`` config as a run folder records it (its settings and the student stage's).

    Each component's ``options_added_later`` are left out at the value that reproduces what
    came before them, so run folders begun before an option existed still resume.
    """
    recorded = {}
    for name, spec in config.items():
        try:
            added = get_class(spec["_target_"]).options_added_later
        except (AttributeError, ImportError, KeyError, TypeError, ValueError):
            added = {}  # not a component: build_loss names what is wrong
        recorded[name] = {key: value for key, value in spec.items() if not (key in added and value == added[key])}
    return recorded
