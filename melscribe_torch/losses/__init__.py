"""The student's losses: one component per file, combined by a weighted sum built from the ``loss`` config.

A component (``base.LossComponent``) reads a ``StudentBatch`` and says what it needs (the
teacher's margins, the mined negatives, the known positives); ``build_loss`` turns the
``loss`` config node into a ``WeightedSum`` of them. ``MarginMSELoss`` and
``MultipleNegativesRankingLoss`` are the plain score/embedding losses the components wrap.
docs/extending.md adds a loss.
"""

from .base import LossComponent, StudentBatch
from .margin_kl import MarginKL
from .margin_mse import MarginMSE, MarginMSELoss
from .multiple_negatives_ranking import InBatchNegatives, MultipleNegativesRankingLoss
from .weighted_sum import WeightedSum, build_loss, recorded_loss_settings

__all__ = [
    "InBatchNegatives",
    "LossComponent",
    "MarginKL",
    "MarginMSE",
    "MarginMSELoss",
    "MultipleNegativesRankingLoss",
    "StudentBatch",
    "WeightedSum",
    "build_loss",
    "recorded_loss_settings",
]
