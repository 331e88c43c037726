"""Evaluation: exact top-k search, IR metrics, retrievers and the paper's 3-seed protocol."""

from .metrics import DEFAULT_K_VALUES, METRIC_NAMES, ranking_metrics
from .protocol import (
    PAPER_SEEDS,
    aggregate,
    count_empty_set_requests,
    evaluate_over_seeds,
    evaluate_retrieval_set,
)
from .retrievers import DenseRetriever, Retriever, TfidfRetriever, build_retriever, sparse_topk
from .search import SCORE_FUNCTIONS, exact_topk

__all__ = [
    "DEFAULT_K_VALUES", "DenseRetriever", "METRIC_NAMES", "PAPER_SEEDS", "Retriever", "SCORE_FUNCTIONS",
    "TfidfRetriever", "aggregate", "build_retriever", "count_empty_set_requests", "evaluate_over_seeds", "evaluate_retrieval_set", "exact_topk",
    "ranking_metrics", "sparse_topk",
]
