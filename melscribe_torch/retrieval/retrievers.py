"""Retrievers: given requests and a corpus of descriptor-set texts, the top-k documents per request.

A retriever is anything with ``name`` and ``search(queries, corpus, k) -> (scores, indices)``;
TF-IDF (the paper's sparse baseline), BM25, dense bi-encoders and the hybrid of dense and
TF-IDF ship here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from .encoding import EmbeddingCache
from .fusion import check_fusion, fused_topk
from .lexical import TfidfScorer, bm25_matrices, check_max_ngram, sparse_topk
from .search import dense_scores, exact_topk


class Retriever(Protocol):
    name: str

    def search(self, queries: Sequence[str], corpus: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (scores, indices), each (len(queries), min(k, len(corpus))), best first."""
        ...


class TfidfRetriever:
    """TF-IDF with scikit-learn defaults, fitted on the corpus being searched (as the paper did)."""

    name = "tfidf"

    def search(self, queries: Sequence[str], corpus: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return TfidfScorer(corpus).topk(queries, k)


class Bm25Retriever:
    """Okapi BM25 (k1=1.5, b=0.75, Lucene's idf; `lexical.bm25_matrices`) fitted on the corpus being searched."""

    name = "bm25"

    def search(self, queries: Sequence[str], corpus: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return sparse_topk(*bm25_matrices(queries, corpus), k)


class DenseRetriever:
    """A bi-encoder: encode requests and documents, exact top-k by cosine or dot score."""

    def __init__(
        self,
        encoder,
        name: str,
        score: str = "cos",
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        self.encoder = encoder
        self.name = name
        self.score = score
        self.batch_size = batch_size
        self.precision = precision

    def search(self, queries: Sequence[str], corpus: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        d_emb = self.encoder.encode(list(corpus), batch_size=self.batch_size, precision=self.precision)
        q_emb = self.encoder.encode(list(queries), batch_size=self.batch_size, precision=self.precision)
        return exact_topk(q_emb, d_emb, k, score=self.score)


class HybridRetriever:
    """Dense + TF-IDF fusion (`fusion.fuse_scores`) as a `Retriever`.

    The lexical side is TF-IDF over word n-grams up to ``max_ngram`` words: descriptors are
    short phrases ("male voice", "no voice", "low quality"), which bigrams and trigrams match
    as phrases where single words match them only in part.

    Texts already seen by this retriever are not encoded again (`EmbeddingCache`).

    Args:
        encoder: A bi-encoder (``encode(texts, batch_size=..., precision=...)``).
        name: Row label, e.g. ``"hybrid:minilm-l6"``.
        alpha: Weight of the dense side.
        method: "zscore" or "rrf".
        max_ngram: Longest word n-gram of the TF-IDF side.
        (The three are chosen together on validation data: the ``hybrid`` config group.)
        score: "cos" or "dot" for the dense side.
    """

    def __init__(
        self,
        encoder,
        name: str,
        alpha: float,
        method: str,
        max_ngram: int,
        score: str = "cos",
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        check_fusion(alpha, method)
        check_max_ngram(max_ngram)
        self.encoder, self.name, self.alpha, self.method = encoder, name, alpha, method
        self.score, self.max_ngram = score, max_ngram
        self._embeddings = EmbeddingCache(encoder, batch_size, precision, normalize=score == "cos")

    def search(
        self, queries: Sequence[str], corpus: Sequence[str], k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Documents first, then requests: one encoder call for every text not seen yet.
        emb = self._embeddings.encode([*corpus, *queries])
        d_emb, q_emb = emb[: len(corpus)], emb[len(corpus) :]
        lexical = TfidfScorer(corpus, self.max_ngram)
        return fused_topk(
            lambda a, b: dense_scores(q_emb[a:b], d_emb),
            lambda a, b: lexical.scores(queries[a:b]),
            len(queries),
            len(corpus),
            k,
            self.alpha,
            self.method,
        )
