"""A student loss component: what it sees, what it needs, and the pair scores margin losses use."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class StudentBatch:
    """One micro-batch of the student, as a loss component reads it.

    Shapes:
        q, p: (B, H) fp32 embeddings of the requests and their positives.
        n: (B, H) fp32 embeddings of the mined negatives; None unless a component
            ``needs_negatives`` (the loop then saves a third of the step's compute).
        margins: (B,) the teacher's margins, CE(q, p) - CE(q, n); None unless a component
            ``needs_margins`` (no teacher is trained otherwise).
    """

    requests: Sequence[str]
    positives: Sequence[str]
    q: Tensor
    p: Tensor
    n: Tensor | None = None
    margins: Tensor | None = None
    # Request text -> the texts of all its positives; None unless ``needs_known_positives``.
    known_positives: Mapping[str, Collection[str]] | None = None


class LossComponent(nn.Module):
    """One term of the student's loss: ``forward(batch) -> ()`` tensor.

    A component says what it reads beyond the requests' and positives' embeddings; the
    pipeline trains a teacher and labels margins only for a loss that ``needs_margins``, and
    the loop embeds the mined negatives only for one that ``needs_negatives``. Subclasses
    set these in ``__init__`` (they may depend on the component's options).

    ``options_added_later`` maps an option added after run folders existed to the value that
    reproduces what came before; at that value a run folder does not record it
    (``recorded_loss_settings``), so folders begun before the option still resume.
    """

    options_added_later: ClassVar[Mapping[str, Any]] = {}
    needs_margins: bool = False
    needs_negatives: bool = False
    needs_known_positives: bool = False

    def forward(self, batch: StudentBatch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def check_pair_similarity(similarity: str) -> None:
    """One clear error for a pair loss's ``similarity`` option."""
    if similarity not in ("dot", "cos"):
        raise ValueError(f"unknown similarity {similarity!r}; valid: dot, cos")


def pair_scores(batch: StudentBatch, similarity: str) -> tuple[Tensor, Tensor]:
    """The student's s(q_i, d+_i) and s(q_i, d-_i), (B,) each: dot products, or cosines ("cos")."""
    q, p, n = batch.q, batch.p, batch.n
    if similarity == "cos":
        q, p, n = (F.normalize(e, dim=-1) for e in (q, p, n))
    return (q * p).sum(-1), (q * n).sum(-1)
