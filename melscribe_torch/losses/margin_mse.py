"""MarginMSE: regress the student's score margin onto the teacher's (``loss=margin_mse``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from .base import LossComponent, StudentBatch, check_pair_similarity, pair_scores


class MarginMSELoss(nn.Module):
    """Mean squared error between student and teacher margins.

    loss = mean_i ((s(q_i, d+_i) - s(q_i, d-_i)) - (t(q_i, d+_i) - t(q_i, d-_i)))^2

    The loss sees scores, not the model: the same module trains a bi-encoder (scores are dot
    products or cosines of embeddings) or a cross-encoder (scores are logits).

    Args:
        reduction: "mean" (default) or "sum" or "none".

    Shapes:
        pos_scores: (B,) student scores of (request, positive).
        neg_scores: (B,) student scores of (request, negative).
        teacher_margins: (B,) teacher score margins, positive minus negative.
        output: () for "mean"/"sum", (B,) for "none".

    References:
        Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
        Knowledge Distillation", arXiv:2010.02666.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.mse = nn.MSELoss(reduction=reduction)

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor, teacher_margins: torch.Tensor) -> torch.Tensor:
        return self.mse((pos_scores - neg_scores).float(), teacher_margins.float())


class MarginMSE(LossComponent):
    """The student's MarginMSE (GPL): its (q·p − q·n) regressed onto the teacher's margin.

    Args:
        similarity: "dot" (the paper) or "cos" student scores.
        scale: multiplies the student's scores before the margin, as the in-batch loss scales
            its cosines into logits: a unit-vector student's margins lie in [-2, 2], and a
            scale lets them reach a teacher's logit margins without dropping normalisation.
    """

    options_added_later: ClassVar[Mapping[str, Any]] = {"scale": 1.0}  # the student's scores as they are
    needs_margins = True
    needs_negatives = True

    def __init__(self, similarity: str, scale: float) -> None:
        super().__init__()
        check_pair_similarity(similarity)
        if not scale > 0:
            raise ValueError(f"loss.margin_mse.scale must be positive, got {scale!r}")
        self.similarity = similarity
        self.scale = float(scale)
        self.margin_mse = MarginMSELoss()

    def forward(self, batch: StudentBatch) -> torch.Tensor:
        pos, neg = pair_scores(batch, self.similarity)
        return self.margin_mse(self.scale * pos, self.scale * neg, batch.margins)
