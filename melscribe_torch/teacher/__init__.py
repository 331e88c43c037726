"""The cross-encoder teacher (GPL stage 3): training examples, the training loop, its metrics.

A trained or given teacher is a ``models.CrossEncoder``; loading an existing one is
``CrossEncoder.from_pretrained(directory)``.
"""

from .examples import build_teacher_examples, split_examples
from .metrics import binary_metrics
from .training import evaluate_cross_encoder, lr_at, train_cross_encoder

__all__ = [
    "binary_metrics",
    "build_teacher_examples",
    "evaluate_cross_encoder",
    "lr_at",
    "split_examples",
    "train_cross_encoder",
]
