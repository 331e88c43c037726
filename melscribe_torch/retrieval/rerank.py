"""A rerank cascade: a first-stage retriever proposes candidates, a cross-encoder reorders them.

The cross-encoder reads each (request, candidate) pair jointly, so it sees interactions a
bi-encoder's two separate embeddings cannot, at the cost of one forward pass per pair: the
cost grows with the rerank depth, the number of first-stage candidates it reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .retrievers import Retriever


def rerank_top(
    cross_encoder,
    queries: Sequence[str],
    documents: Sequence[str],
    candidates: torch.Tensor,
    depth: int,
    *,
    batch_size: int = 64,
    precision: str = "fp32",
    dense_scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder the first ``depth`` candidates of each row by the cross-encoder's logits.

    Candidates past ``depth`` follow in their first-stage order, with scores below every
    reranked one, so Recall@k past the depth is the first stage's. A negative index (FAISS's
    padding when it finds fewer) stays last, scored -inf.

    Args:
        cross_encoder: anything with ``predict(pairs, batch_size=, precision=)`` -> (N,) logits.
        queries: the requests, one per row of ``candidates``.
        documents: the texts the candidate indices point into.
        candidates: (Q, N) document indices, best first, e.g. a first stage's top-N.
        depth: how many candidates of each row the cross-encoder reads.
        dense_scores: (Q, >= depth) cosines of the candidates, for a reranker whose ``predict``
            takes them (an ensemble teacher whose dense member is the first stage's model).

    Returns:
        (scores, indices), each (Q, N), best first.
    """
    if depth < 1:
        raise ValueError(f"rerank depth must be >= 1, got {depth}")
    if candidates.shape[0] != len(queries):
        raise ValueError(f"{len(queries)} requests but {candidates.shape[0]} candidate rows")
    head, tail = candidates[:, :depth], candidates[:, depth:]
    scores = torch.full(head.shape, float("-inf"))
    valid = head >= 0
    rows, cols = valid.nonzero(as_tuple=True)  # row-major, the order of scores[valid]
    pairs = [(queries[r], documents[i]) for r, i in zip(rows.tolist(), head[rows, cols].tolist())]
    if pairs:
        known = {} if dense_scores is None else {"dense_scores": dense_scores[:, :depth][valid]}
        scores[valid] = cross_encoder.predict(
            pairs, batch_size=batch_size, precision=precision, **known
        )
    # stable: equal logits keep the first stage's order
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    scores, head = scores.gather(1, order), head.gather(1, order)
    if tail.shape[1]:
        finite = torch.where(scores.isfinite(), scores, torch.zeros_like(scores))
        floor = finite.min(dim=1, keepdim=True).values
        tail_scores = floor - 1 - torch.arange(tail.shape[1], dtype=scores.dtype)
        tail_scores[tail < 0] = float("-inf")
        scores, head = torch.cat([scores, tail_scores], 1), torch.cat([head, tail], 1)
    return scores, head


class RerankRetriever:
    """A first-stage retriever's top ``depth`` reordered by a cross-encoder (``rerank_top``)."""

    def __init__(
        self,
        cross_encoder,
        first_stage: Retriever,
        depth: int,
        name: str,
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        if depth < 1:
            raise ValueError(f"rerank depth must be >= 1, got {depth}")
        self.cross_encoder = cross_encoder
        self.first_stage = first_stage
        self.depth = depth
        self.name = name
        self.batch_size = batch_size
        self.precision = precision

    def search(
        self, queries: Sequence[str], corpus: Sequence[str], k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, candidates = self.first_stage.search(queries, corpus, max(k, self.depth))
        if hasattr(self.cross_encoder, "fit"):  # an ensemble teacher's TF-IDF member: idf of this corpus
            self.cross_encoder.fit(corpus)
        scores, indices = rerank_top(
            self.cross_encoder,
            queries,
            corpus,
            candidates,
            self.depth,
            batch_size=self.batch_size,
            precision=self.precision,
        )
        return scores[:, :k], indices[:, :k]
