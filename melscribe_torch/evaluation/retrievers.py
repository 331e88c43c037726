"""Retrievers: given requests and a corpus of descriptor-set texts, the top-k documents per request.

A retriever is anything with ``name`` and ``search(queries, corpus, k) -> (scores, indices)``;
TF-IDF (the paper's sparse baseline) and dense bi-encoders ship here, the hybrid of both in
``melscribe_torch.recommend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from .search import exact_topk


class Retriever(Protocol):
    name: str

    def search(self, queries: Sequence[str], corpus: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (scores, indices), each (len(queries), min(k, len(corpus))), best first."""
        ...


def sparse_topk(q_mat, d_mat, k: int, max_cells: int = 2**25) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of ``q_mat @ d_mat.T`` for scipy sparse matrices, a block of requests at a time.

    Blocks are sized so that one dense score block holds at most ``max_cells`` floats.
    """
    num_queries, num_docs = q_mat.shape[0], d_mat.shape[0]
    k = min(k, num_docs)
    scores_out = torch.empty(num_queries, k)
    indices_out = torch.empty(num_queries, k, dtype=torch.long)
    d_t = d_mat.T.tocsr()
    block = max(1, max_cells // max(num_docs, 1))
    for start in range(0, num_queries, block):
        dense = torch.from_numpy(np.asarray((q_mat[start : start + block] @ d_t).todense(), dtype=np.float32))
        scores_out[start : start + block], indices_out[start : start + block] = torch.topk(dense, k, dim=1)
    return scores_out, indices_out


class TfidfRetriever:
    """TF-IDF with scikit-learn defaults, fitted on the corpus being searched (as the paper did).

    Vectors are L2-normalised (the TfidfVectorizer default), so the dot product is the cosine.
    """

    name = "tfidf"

    def search(self, queries: Sequence[str], corpus: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer()
        d_mat = vectorizer.fit_transform(list(corpus))
        q_mat = vectorizer.transform(list(queries))
        return sparse_topk(q_mat, d_mat, k)


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


BASELINES = ("tfidf",)


def build_retriever(
    name: str,
    model_aliases: dict[str, dict] | None = None,
    score: str = "cos",
    batch_size: int = 64,
    precision: str = "fp32",
    hybrid: dict | None = None,
    rerank: dict | None = None,
) -> tuple[Retriever, str]:
    """A retriever from its name: a baseline, a short model name, or a model directory / hub id.

    Args:
        name: ``"tfidf"``, a key of ``model_aliases`` (e.g. ``"minilm-l6"``), or a path / hub id;
            ``"hybrid:<model>"`` fuses that model with TF-IDF (``melscribe_torch.recommend.hybrid``).
        model_aliases: Short name -> ``{"name_or_path": ..., "pooling": ..., "max_length": ...}``.
        hybrid: Fusion settings for ``hybrid:`` names: ``{"alpha": ..., "method": "zscore"|"rrf",
            "max_ngram": ...}``.
        rerank: Cascade settings for ``rerank:<cross-encoder dir>@<first stage>`` names
            (``evaluation.rerank``): ``{"depth": ...}``, the first-stage candidates reordered.

    Returns:
        (retriever, what it loaded: the model path or the baseline name).
    """
    if name == "tfidf":
        return TfidfRetriever(), "tfidf"
    from ..models import BiEncoder, CrossEncoder

    if name.startswith("rerank:"):
        from .rerank import RerankRetriever, parse_rerank_name

        cross_encoder_path, first_name = parse_rerank_name(name)
        if not rerank or "depth" not in rerank:
            raise ValueError(f"retriever {name!r} needs a rerank depth: set rerank.depth")
        first, source = build_retriever(first_name, model_aliases, score, batch_size, precision, hybrid)
        retriever = RerankRetriever(
            CrossEncoder.from_pretrained(cross_encoder_path), first, int(rerank["depth"]), name,
            batch_size, precision,
        )
        return retriever, f"{cross_encoder_path} over {source}"

    if name.startswith("hybrid:"):
        from ..recommend.hybrid import HybridRetriever

        dense, source = build_retriever(name.removeprefix("hybrid:"), model_aliases, score, batch_size, precision)
        settings = hybrid or {}
        if "alpha" not in settings:
            raise ValueError(f"retriever {name!r} needs a fusion weight: set hybrid.alpha (chosen on validation data)")
        retriever = HybridRetriever(dense.encoder, name, float(settings["alpha"]), settings.get("method", "zscore"),
                                    score, batch_size, precision, int(settings.get("max_ngram", 1)))
        return retriever, source
    alias = (model_aliases or {}).get(name)
    if alias is not None:
        encoder = BiEncoder.from_pretrained(
            alias["name_or_path"], pooling=alias.get("pooling"), max_length=alias.get("max_length")
        )
        source = alias["name_or_path"]
    else:
        encoder = BiEncoder.from_pretrained(name)
        source = name
    return DenseRetriever(encoder, name=name, score=score, batch_size=batch_size, precision=precision), source
