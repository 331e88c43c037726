"""The cross-encoder teacher (GPL stage 3): training examples and groups, losses, the loop, metrics.

A trained or given teacher is a ``models.CrossEncoder``; loading an existing one is
``CrossEncoder.from_pretrained(directory)``.
"""

from .examples import build_teacher_examples, build_teacher_groups, split_examples, split_groups
from .losses import ListwiseSoftmax, PointwiseBCE, build_teacher_loss, listwise_softmax_loss
from .metrics import binary_metrics, constant_score_losses, group_ranking_metrics
from .training import evaluate_cross_encoder, evaluate_groups, lr_at, train_cross_encoder

__all__ = [
    "ListwiseSoftmax",
    "PointwiseBCE",
    "binary_metrics",
    "build_teacher_examples",
    "build_teacher_groups",
    "build_teacher_loss",
    "constant_score_losses",
    "evaluate_cross_encoder",
    "evaluate_groups",
    "group_ranking_metrics",
    "listwise_softmax_loss",
    "lr_at",
    "split_examples",
    "split_groups",
    "train_cross_encoder",
]
