"""Mining: hard negatives per training request from dense and lexical retrievers (GPL stage 2)."""

from .false_negatives import drop_described
from .hard_negatives import (
    HARD_NEGATIVES_FILE,
    mine_hard_negatives,
    mine_lexical,
    mine_with_encoder,
    read_hard_negatives,
    write_hard_negatives,
)

__all__ = [
    "HARD_NEGATIVES_FILE",
    "drop_described",
    "mine_hard_negatives",
    "mine_lexical",
    "mine_with_encoder",
    "read_hard_negatives",
    "write_hard_negatives",
]
