"""In-batch negatives: each request's positive against every other document in the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultipleNegativesRankingLoss(nn.Module):
    """Cross-entropy over scaled similarities of each request to all documents in the batch.

    Documents come in groups of ``group_size`` per request (the positive first, then hard
    negatives): the positive of request i sits at column ``i * group_size``, and every other
    column (other requests' positives and all hard negatives) is a negative, unless
    ``exclude`` marks it as another positive of that request (a false negative).

    Args:
        scale: Inverse temperature multiplying the similarities (20 is the usual value with cosine).
        similarity: "cos" or "dot".
        symmetric: Also rank the requests for each positive (the transposed problem), and
            average both directions.

    Shapes:
        q_emb: (B, H) request embeddings.
        d_emb: (B * G, H) document embeddings, G = group_size.
        exclude: optional (B, B * G) bool, True where a column must not count as a negative
            for that row (it is ignored wherever it marks the row's own positive).
        output: () mean loss.

    References:
        Henderson et al. 2017, "Efficient Natural Language Response Suggestion for Smart Reply",
        arXiv:1705.00652.
    """

    def __init__(self, scale: float = 20.0, similarity: str = "cos", symmetric: bool = False) -> None:
        super().__init__()
        if similarity not in ("cos", "dot"):
            raise ValueError(f"unknown similarity {similarity!r}; valid: cos, dot")
        self.scale = scale
        self.similarity = similarity
        self.symmetric = symmetric

    def forward(
        self, q_emb: torch.Tensor, d_emb: torch.Tensor, exclude: torch.Tensor | None = None
    ) -> torch.Tensor:
        if d_emb.shape[0] % q_emb.shape[0]:
            raise ValueError(f"{d_emb.shape[0]} documents is not a multiple of {q_emb.shape[0]} requests")
        group_size = d_emb.shape[0] // q_emb.shape[0]
        if exclude is not None and exclude.shape != (q_emb.shape[0], d_emb.shape[0]):
            raise ValueError(
                f"exclude has shape {tuple(exclude.shape)}, expected {(q_emb.shape[0], d_emb.shape[0])}"
            )
        if self.similarity == "cos":
            q_emb, d_emb = F.normalize(q_emb, dim=-1), F.normalize(d_emb, dim=-1)
        scores = self.scale * (q_emb.float() @ d_emb.float().T)  # (B, B*G)
        targets = torch.arange(q_emb.shape[0], device=q_emb.device) * group_size
        if exclude is not None:
            exclude = exclude.clone()
            exclude[torch.arange(len(targets), device=exclude.device), targets] = False
            scores = scores.masked_fill(exclude, float("-inf"))
        loss = F.cross_entropy(scores, targets)
        if self.symmetric:
            # Each positive against every request of the batch: (B, B), same masking transposed.
            loss = (loss + F.cross_entropy(scores[:, targets].T, targets // group_size)) / 2
        return loss
