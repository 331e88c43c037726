"""Sparse lexical scorers for mining: TF-IDF and BM25 as (request matrix, document matrix) pairs.

Both return scipy CSR matrices whose product ``q_mat @ d_mat.T`` is the retrieval score, so
``evaluation.sparse_topk`` can rank them a block of requests at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEXICAL_METHODS = ("tfidf", "bm25")


def tfidf_matrices(queries: Sequence[str], corpus: Sequence[str]):
    """TF-IDF (scikit-learn defaults) fitted on ``corpus``; L2-normalised rows, so scores are cosines.

    Returns:
        (q_mat (Q, V), d_mat (N, V)), scipy CSR.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer()
    d_mat = vectorizer.fit_transform(list(corpus))
    return vectorizer.transform(list(queries)), d_mat


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
