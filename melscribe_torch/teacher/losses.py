"""The teacher's training losses: pointwise BCE on labelled pairs, or listwise softmax over groups.

A loss says what one training item is and how many a step takes, turns a batch of items into
the (request, descriptor set) pairs the cross-encoder scores, and scores the logits. Both
spend ``batch_size`` pairs per step, so a step costs the same whichever is chosen.

- ``bce``: an item is a (request, descriptor set, label) example; binary cross-entropy on
  each pair's logit. Calibrated logits (0 separates relevant from not).
- ``listwise``: an item is a group (request, [positive, negative, ...]) of ``group_size``
  descriptor sets (``examples.build_teacher_groups``); softmax cross-entropy over the
  group's logits with the positive as the target (localized contrastive estimation). Only
  differences within a group are trained, which is what reranking and margins read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("bce", "listwise")


def listwise_softmax_loss(logits: Tensor) -> Tensor:
    """Mean softmax cross-entropy of each group's logits, the positive at column 0.

    loss = mean over groups of ``logsumexp(logits[g]) - logits[g, 0]``.

    Args:
        logits: One row per group: the positive's logit, then its negatives'.

    Shapes:
        logits: (G, group_size) -> ()

    References:
        Gao, Dai and Callan 2021, "Rethink Training of BERT Rerankers in Multi-Stage
        Retrieval Pipeline" (localized contrastive estimation), arXiv 2101.08751.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (groups, group_size >= 2), got {tuple(logits.shape)}")
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), targets)


class TeacherLoss(Protocol):
    """What the training loop asks of a teacher loss."""

    trains_on: str  # "examples" (labelled pairs) or "groups": which items the loss reads
    held_out_loss: str  # the key of this loss on held-out data in the teacher's metrics

    def items_per_step(self, batch_size: int) -> int:
        """Training items one step draws, for ``batch_size`` pairs."""

    def pairs(self, items: Sequence) -> tuple[list[str], list[str]]:
        """(requests, descriptor sets) of the pairs to score, in the order ``__call__`` reads."""

    def __call__(self, logits: Tensor, items: Sequence) -> Tensor:
        """The loss of the items' logits, (pairs,) -> ()."""


class PointwiseBCE:
    """Binary cross-entropy with logits on labelled (request, descriptor set, label) pairs."""

    trains_on = "examples"
    held_out_loss = "loss"  # the held-out metric (training.evaluate_cross_encoder) of this loss

    def items_per_step(self, batch_size: int) -> int:
        return batch_size

    def pairs(self, items: Sequence[tuple[str, str, float]]) -> tuple[list[str], list[str]]:
        return [query for query, _, _ in items], [doc for _, doc, _ in items]

    def __call__(self, logits: Tensor, items: Sequence[tuple[str, str, float]]) -> Tensor:
        targets = torch.tensor([label for _, _, label in items], dtype=torch.float32, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), targets)


class ListwiseSoftmax:
    """``listwise_softmax_loss`` over groups of ``group_size`` descriptor sets, positive first."""

    trains_on = "groups"
    held_out_loss = "group_loss"  # the held-out metric (training.evaluate_groups) of this loss

    def __init__(self, group_size: int):
        if group_size < 2:
            raise ValueError(f"teacher.group_size must be >= 2 (one positive, one negative), got {group_size}")
        self.group_size = group_size

    def items_per_step(self, batch_size: int) -> int:
        if batch_size % self.group_size:
            raise ValueError(
                f"teacher.batch_size ({batch_size}) counts pairs and must be a multiple of "
                f"teacher.group_size ({self.group_size}) with teacher.loss=listwise"
            )
        return batch_size // self.group_size

    def pairs(self, items: Sequence[tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
        for query, documents in items:
            if len(documents) != self.group_size:
                raise ValueError(
                    f"a group of request {query[:60]!r} holds {len(documents)} descriptor sets, "
                    f"not teacher.group_size={self.group_size}"
                )
        return (
            [query for query, documents in items for _ in documents],
            [doc for _, documents in items for doc in documents],
        )

    def __call__(self, logits: Tensor, items: Sequence[tuple[str, list[str]]]) -> Tensor:
        return listwise_softmax_loss(logits.view(len(items), self.group_size))


def build_teacher_loss(name: str, group_size: int, batch_size: int) -> TeacherLoss:
    """The loss ``teacher.loss`` names, checked against the batch size (before any stage runs).

    ``group_size`` is read by ``listwise`` only.
    """
    if name == "bce":
        loss: TeacherLoss = PointwiseBCE()
    elif name == "listwise":
        loss = ListwiseSoftmax(group_size)
    else:
        raise ValueError(f"unknown teacher.loss {name!r}; valid: {', '.join(LOSSES)}")
    loss.items_per_step(batch_size)
    return loss
