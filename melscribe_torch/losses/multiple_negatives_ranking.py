"""In-batch negatives: each request's positive against every other document in the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultipleNegativesRankingLoss(nn.Module):
    """Cross-entropy over scaled similarities of each request to all documents in the batch.

    Documents come in groups of ``group_size`` per request (the positive first, then hard
    negatives): the positive of request i sits at column ``i * group_size``, and every other
    column (other requests' positives and all hard negatives) is a negative.

    Args:
        scale: Inverse temperature multiplying the similarities (20 is the usual value with cosine).
        similarity: "cos" or "dot".

    Shapes:
        q_emb: (B, H) request embeddings.
        d_emb: (B * G, H) document embeddings, G = group_size.
        output: () mean loss.

    References:
        Henderson et al. 2017, "Efficient Natural Language Response Suggestion for Smart Reply",
        arXiv:1705.00652.
    """

    def __init__(self, scale: float = 20.0, similarity: str = "cos") -> None:
        super().__init__()
        if similarity not in ("cos", "dot"):
            raise ValueError(f"unknown similarity {similarity!r}; valid: cos, dot")
        self.scale = scale
        self.similarity = similarity

    def forward(self, q_emb: torch.Tensor, d_emb: torch.Tensor) -> torch.Tensor:
        if d_emb.shape[0] % q_emb.shape[0]:
            raise ValueError(f"{d_emb.shape[0]} documents is not a multiple of {q_emb.shape[0]} requests")
        group_size = d_emb.shape[0] // q_emb.shape[0]
        if self.similarity == "cos":
            q_emb, d_emb = F.normalize(q_emb, dim=-1), F.normalize(d_emb, dim=-1)
        scores = self.scale * (q_emb.float() @ d_emb.float().T)  # (B, B*G)
        targets = torch.arange(q_emb.shape[0], device=q_emb.device) * group_size
        return F.cross_entropy(scores, targets)
