"""Mining: hard negatives per training request from dense and lexical retrievers (GPL stage 2)."""

from .false_negatives import drop_described
from .hard_negatives import (
    mine_hard_negatives,
    mine_lexical,
    mine_with_encoder,
    read_hard_negatives,
    write_hard_negatives,
)
from .lexical import LEXICAL_METHODS, bm25_matrices, tfidf_matrices

__all__ = [
    "LEXICAL_METHODS",
    "bm25_matrices",
    "drop_described",
    "mine_hard_negatives",
    "mine_lexical",
    "mine_with_encoder",
    "read_hard_negatives",
    "tfidf_matrices",
    "write_hard_negatives",
]
