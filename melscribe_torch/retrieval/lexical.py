"""Lexical scoring: TF-IDF and BM25 as sparse (request matrix, document matrix) pairs.

The product ``q_mat @ d_mat.T`` of a pair is the retrieval score, so `sparse_topk` ranks any
of them a block of requests at a time. TF-IDF has one implementation, `TfidfScorer`: the
paper's sparse baseline (single words), hard-negative mining, and the lexical side of the
hybrid (word n-grams up to ``max_ngram``) all use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .search import blockwise_topk

LEXICAL_METHODS = ("tfidf", "bm25")


def check_max_ngram(max_ngram) -> None:
    """Refuse an n-gram length that is not a positive integer."""
    if not isinstance(max_ngram, int) or max_ngram < 1:
        raise ValueError(f"max_ngram must be a positive integer, got {max_ngram!r}")


class TfidfScorer:
    """TF-IDF (scikit-learn defaults, L2-normalised) fitted on a corpus; scores requests against it.

    Rows are L2-normalised (the TfidfVectorizer default), so a score is the cosine.

    Args:
        corpus: The descriptor-set texts.
        max_ngram: Terms are word n-grams of 1 to ``max_ngram`` words (1: scikit-learn's default).
    """

    def __init__(self, corpus: Sequence[str], max_ngram: int = 1) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        check_max_ngram(max_ngram)
        self.vectorizer = TfidfVectorizer(ngram_range=(1, max_ngram))
        self.d_mat = self.vectorizer.fit_transform(list(corpus))  # (N, V) CSR
        # Transposed once here, not per request block: the recommender scores many small batches.
        self.d_mat_t = self.d_mat.T.tocsr()

    def transform(self, queries: Sequence[str]):
        """(len(queries), V) scipy CSR request vectors."""
        return self.vectorizer.transform(list(queries))

    def scores(self, queries: Sequence[str]) -> torch.Tensor:
        """(len(queries), N) cosine scores."""
        return _dense_rows(self.transform(queries) @ self.d_mat_t)

    def topk(self, queries: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, indices), each (len(queries), min(k, N)), a block of requests at a time."""
        q_mat = self.transform(queries)
        return blockwise_topk(
            lambda a, b: _dense_rows(q_mat[a:b] @ self.d_mat_t), q_mat.shape[0], self.d_mat.shape[0], k
        )


def bm25_matrices(queries: Sequence[str], corpus: Sequence[str], k1: float = 1.5, b: float = 0.75):
    """Okapi BM25 with Lucene's idf, as sparse matrices.

    A document's row holds, per term t, ``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``
    with ``idf(t) = log(1 + (N - df + 0.5) / (df + 0.5))``; a request's row holds its term counts,
    so a term repeated in the request counts once per occurrence, as in the BM25 sum.

    Returns:
        (q_mat (Q, V), d_mat (N, V)), scipy CSR.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer()
    counts = vectorizer.fit_transform(list(corpus)).tocsr().astype(np.float64)  # (N, V)
    num_docs = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log(1.0 + (num_docs - df + 0.5) / (df + 0.5))
    doc_len = np.asarray(counts.sum(axis=1)).ravel()
    avg_len = max(doc_len.mean(), 1e-9)
    # Per stored entry: its row's length normalisation and its column's idf.
    row_of_entry = np.repeat(np.arange(num_docs), np.diff(counts.indptr))
    tf = counts.data
    norm = k1 * (1.0 - b + b * doc_len[row_of_entry] / avg_len)
    weights = counts.copy()
    weights.data = idf[counts.indices] * tf * (k1 + 1.0) / (tf + norm)
    q_mat = vectorizer.transform(list(queries)).tocsr().astype(np.float64)
    return q_mat, weights


def lexical_matrices(method: str, queries: Sequence[str], corpus: Sequence[str]):
    """(q_mat (Q, V), d_mat (N, V)) of ``method`` ("tfidf": scikit-learn defaults; "bm25": k1=1.5, b=0.75)."""
    if method == "tfidf":
        scorer = TfidfScorer(corpus)
        return scorer.transform(queries), scorer.d_mat
    if method == "bm25":
        return bm25_matrices(queries, corpus)
    raise ValueError(f"unknown lexical method {method!r}; valid: {', '.join(LEXICAL_METHODS)}")


def sparse_topk(q_mat, d_mat, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``q_mat @ d_mat.T`` for scipy sparse matrices, a block of requests at a time.

    Returns:
        (scores, indices), each (Q, min(k, N)), best first.
    """
    d_t = d_mat.T.tocsr()
    return blockwise_topk(lambda a, b: _dense_rows(q_mat[a:b] @ d_t), q_mat.shape[0], d_mat.shape[0], k)


def _dense_rows(product) -> torch.Tensor:
    """A sparse score block as a dense float32 tensor."""
    return torch.from_numpy(np.asarray(product.todense(), dtype=np.float32))
