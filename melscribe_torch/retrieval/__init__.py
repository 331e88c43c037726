"""Retrieval building blocks shared by mining, training, evaluation and recommendation.

``search``: exact top-k by cosine or dot score, chunked; ``lexical``: TF-IDF (one
implementation) and BM25; ``fusion``: dense + lexical score fusion; ``encoding``: cached
encoding; ``retrievers``: TF-IDF, BM25, dense and hybrid retrievers behind one ``search`` protocol;
``rerank``: a cross-encoder reordering a first stage's top candidates.
This package imports no other part of melscribe_torch, so everything can build on it.
"""

from .encoding import EmbeddingCache
from .fusion import FUSION_METHODS, check_fusion, fuse_scores, fused_topk, zscore
from .lexical import (
    LEXICAL_METHODS,
    TfidfScorer,
    bm25_matrices,
    check_max_ngram,
    lexical_matrices,
    sparse_topk,
)
from .retrievers import Bm25Retriever, DenseRetriever, HybridRetriever, Retriever, TfidfRetriever
from .search import SCORE_FUNCTIONS, blockwise_topk, dense_scores, exact_topk

__all__ = [
    "FUSION_METHODS",
    "LEXICAL_METHODS",
    "SCORE_FUNCTIONS",
    "Bm25Retriever",
    "DenseRetriever",
    "EmbeddingCache",
    "HybridRetriever",
    "Retriever",
    "TfidfRetriever",
    "TfidfScorer",
    "blockwise_topk",
    "bm25_matrices",
    "check_fusion",
    "check_max_ngram",
    "dense_scores",
    "exact_topk",
    "fuse_scores",
    "fused_topk",
    "lexical_matrices",
    "sparse_topk",
    "zscore",
]
