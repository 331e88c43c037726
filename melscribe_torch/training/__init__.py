"""Bi-encoder training (GPL stage 5): the plain loop, its schedule, batches, checkpoints and DDP plumbing."""

from .batches import TrainingExample, batch_indices, examples_from_tuples, known_positive_texts
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .loop import TrainingFiles, set_dropout, train_bi_encoder
from .schedule import lr_at, warmup_for
from .validation import validation_metrics, validation_recall

__all__ = [
    "CheckpointError",
    "TrainingExample",
    "TrainingFiles",
    "batch_indices",
    "examples_from_tuples",
    "known_positive_texts",
    "load_checkpoint",
    "lr_at",
    "save_checkpoint",
    "set_dropout",
    "train_bi_encoder",
    "validation_metrics",
    "validation_recall",
    "warmup_for",
]
