"""MarginKL: the teacher's preference for the positive over the negative as a soft target."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LossComponent, StudentBatch, check_pair_similarity, pair_scores


def bernoulli_kl_from_logits(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(sigmoid(target_logits)) || Bernoulli(sigmoid(logits))), element-wise.

    Written with log-sigmoids so that margins of tens of logits stay finite.
    """
    t = torch.sigmoid(target_logits)
    return t * (F.logsigmoid(target_logits) - F.logsigmoid(logits)) + (1 - t) * (
        F.logsigmoid(-target_logits) - F.logsigmoid(-logits)
    )


class MarginKL(LossComponent):
    """KL divergence between the teacher's and the student's softmax over (positive, negative).

    With two candidates a softmax depends on the score margin alone, so the loss is

        mean_i KL(sigmoid(m_i / temperature) || sigmoid(scale * (s(q_i, d+_i) - s(q_i, d-_i))))

    where m_i is the teacher's margin. MarginMSE asks the student for the teacher's margin
    itself, a number on the teacher's scale (an ensemble's margins reach tens of logits
    while a unit-vector student's lie in [-2, 2]); this loss asks only for the teacher's
    confidence that the positive ranks first, which saturates: a margin of 20 asks little
    more than a margin of 8. The gradient on the student's margin is
    scale * (sigmoid(student) - sigmoid(teacher)), bounded by scale.

    Args:
        similarity: "dot" or "cos" student scores.
        scale: multiplies the student's margin into a logit (20 with cos: the in-batch loss's
            logit scale).
        temperature: divides the teacher's margin into its logit.

    Shapes:
        batch.q, batch.p, batch.n: (B, H); batch.margins: (B,); output: ().

    References:
        Hinton et al. 2015, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531
        (soft targets at a temperature); Hofstätter et al. 2020, arXiv:2010.02666 (the same
        pairs and margins, regressed by MarginMSE).
    """

    needs_margins = True
    needs_negatives = True

    def __init__(self, similarity: str, scale: float, temperature: float) -> None:
        super().__init__()
        check_pair_similarity(similarity)
        if not scale > 0:
            raise ValueError(f"loss.margin_kl.scale must be positive, got {scale!r}")
        if not temperature > 0:
            raise ValueError(f"loss.margin_kl.temperature must be positive, got {temperature!r}")
        self.similarity = similarity
        self.scale = float(scale)
        self.temperature = float(temperature)

    def forward(self, batch: StudentBatch) -> torch.Tensor:
        pos, neg = pair_scores(batch, self.similarity)
        student = self.scale * (pos - neg)
        teacher = batch.margins.float() / self.temperature
        return bernoulli_kl_from_logits(teacher, student.float()).mean()
