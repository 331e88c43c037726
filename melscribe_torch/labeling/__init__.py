"""Pseudo-labelling (GPL stage 4): training tuples and the teacher's margins."""

from .pseudo_labels import (
    GPL_TRAINING_FILE,
    label_margins,
    read_gpl_training_data,
    sample_training_tuples,
    write_gpl_training_data,
)

__all__ = [
    "GPL_TRAINING_FILE",
    "label_margins",
    "read_gpl_training_data",
    "sample_training_tuples",
    "write_gpl_training_data",
]
