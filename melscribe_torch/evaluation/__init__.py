"""Evaluation: IR metrics, retrievers by name and the paper's 3-seed protocol."""

from .metrics import DEFAULT_K_VALUES, METRIC_NAMES, ranking_metrics
from .protocol import (
    PAPER_SEEDS,
    aggregate,
    count_empty_set_requests,
    evaluate_over_seeds,
    evaluate_retrieval_set,
)
from .retrievers import build_retriever

__all__ = [
    "DEFAULT_K_VALUES", "METRIC_NAMES", "PAPER_SEEDS", "aggregate", "build_retriever",
    "count_empty_set_requests", "evaluate_over_seeds", "evaluate_retrieval_set", "ranking_metrics",
]
