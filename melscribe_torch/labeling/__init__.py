"""Pseudo-labelling (GPL stage 4): training tuples and the teacher's margins."""

from .pseudo_labels import (
    label_margins,
    read_gpl_training_data,
    read_training_tuples,
    sample_training_tuples,
    write_gpl_training_data,
    write_training_tuples,
)

__all__ = [
    "label_margins",
    "read_gpl_training_data",
    "read_training_tuples",
    "sample_training_tuples",
    "write_gpl_training_data",
    "write_training_tuples",
]
