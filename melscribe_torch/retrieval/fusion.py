"""Score fusion: mix dense (bi-encoder) and lexical (TF-IDF) scores per request.

Two fusions, both computed over ALL documents of the corpus (a dense score matrix block is
computed anyway by exact search, and the TF-IDF block is a sparse matmul):

- ``zscore``: ``alpha * z(dense) + (1 - alpha) * z(lexical)``, where ``z`` standardises a
  request's scores over the documents (mean 0, std 1), so the two scales are comparable.
- ``rrf``: reciprocal-rank fusion, ``alpha / (c + rank_dense) + (1 - alpha) / (c + rank_lexical)``
  with ranks from 1 and ``c = 60`` (Cormack et al., 2009).

``alpha = 1`` is the dense ranking, ``alpha = 0`` the lexical one. Choose ``alpha`` on
validation data (``melscribe-recommend select-weight``), never on a test set.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .search import blockwise_topk

FUSION_METHODS = ("zscore", "rrf")
RRF_CONSTANT = 60


def check_fusion(alpha: float, method: str) -> None:
    """Refuse a dense weight outside [0, 1] or an unknown fusion method."""
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fusion weight alpha must be in [0, 1], got {alpha}")


def zscore(scores: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Standardise each row (a request's scores over documents); a constant row becomes 0.

    Shapes:
        (Q, N) -> (Q, N)
    """
    mean = scores.mean(dim=1, keepdim=True)
    std = scores.std(dim=1, unbiased=False, keepdim=True)
    return (scores - mean) / std.clamp_min(eps)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of each document per row (1 = best; ties broken by index).

    Shapes:
        (Q, N) -> (Q, N) float
    """
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    out = torch.empty_like(order)
    positions = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    out.scatter_(1, order, positions)
    return out.float()


def fuse_scores(
    dense: torch.Tensor, lexical: torch.Tensor, alpha: float, method: str = "zscore"
) -> torch.Tensor:
    """Fused scores from dense and lexical scores of the same requests and documents.

    Args:
        dense: (Q, N) dense scores.
        lexical: (Q, N) lexical scores.
        alpha: Weight of the dense side, in [0, 1].
        method: "zscore" or "rrf".

    Returns:
        (Q, N) fused scores, higher is better.
    """
    check_fusion(alpha, method)
    if dense.shape != lexical.shape:
        raise ValueError(
            f"dense and lexical scores differ in shape: {tuple(dense.shape)} vs {tuple(lexical.shape)}"
        )
    dense, lexical = dense.float(), lexical.float()
    if method == "zscore":
        return alpha * zscore(dense) + (1 - alpha) * zscore(lexical)
    return alpha / (RRF_CONSTANT + ranks(dense)) + (1 - alpha) / (RRF_CONSTANT + ranks(lexical))


def fused_topk(
    dense_block: Callable[[int, int], torch.Tensor],
    lexical_block: Callable[[int, int], torch.Tensor],
    num_queries: int,
    num_docs: int,
    k: int,
    alpha: float,
    method: str = "zscore",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of fused scores, a block of requests at a time.

    Args:
        dense_block / lexical_block: ``(start, stop) -> (stop - start, N)`` scores of those requests.
        k: Documents per request (capped at N).

    Returns:
        (scores, indices), each (num_queries, min(k, N)), best first.
    """
    return blockwise_topk(
        lambda a, b: fuse_scores(dense_block(a, b), lexical_block(a, b), alpha, method),
        num_queries,
        num_docs,
        k,
    )
