"""Evaluation: IR metrics, retrievers by name and the paper's 3-seed protocol."""

from .metrics import METRIC_NAMES, ranking_metrics
from .protocol import (
    aggregate,
    count_empty_set_requests,
    evaluate_over_seeds,
    evaluate_retrieval_set,
)
from .retrievers import build_retriever

__all__ = [
    "METRIC_NAMES", "aggregate", "build_retriever",
    "count_empty_set_requests", "evaluate_over_seeds", "evaluate_retrieval_set", "ranking_metrics",
]
