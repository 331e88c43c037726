"""In-batch negatives: each request's positive against every other document in the batch (``loss=mnrl``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data.descriptors import describes
from .base import LossComponent, StudentBatch


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


class InBatchNegatives(LossComponent):
    """MNRL on the student's batch: each request against every positive of the batch.

    Args:
        scale: Inverse temperature (``MultipleNegativesRankingLoss``).
        similarity: "cos" or "dot".
        symmetric: Also rank the batch's requests for each positive.
        hard_negatives: Each request's mined negative joins the batch's columns (G = 2);
            False: only the batch's positives (G = 1), and the negatives are not embedded.
        exclude_known_positives: Another request's positive that is also a positive of this
            request is not one of its negatives (the loop then passes ``known_positives``).
        exclude_described: Another request's positive whose every descriptor this request names
            (``data.descriptors.describes``: the sampling would have made it a positive) is not
            one of its negatives: about 6 of the 992 negatives of a batch of 32.
        denoise_margin: With ``hard_negatives``, a request's mined negative whose teacher margin
            CE(q, p) - CE(q, n) is below this is not that request's negative: the teacher
            ranks it (nearly) as high as the positive, so it is likely relevant too (RocketQA's
            denoised hard negatives, Qu et al. 2021). None: every mined negative counts, and
            no teacher is needed.
    """

    options_added_later: ClassVar[Mapping[str, Any]] = {"denoise_margin": None}  # every mined negative counts

    def __init__(
        self,
        scale: float,
        similarity: str,
        symmetric: bool,
        hard_negatives: bool,
        exclude_known_positives: bool,
        exclude_described: bool,
        denoise_margin: float | None = None,
    ) -> None:
        super().__init__()
        if denoise_margin is not None and not hard_negatives:
            raise ValueError("loss.mnrl.denoise_margin filters mined negatives: set loss.mnrl.hard_negatives=true")
        self.scale, self.similarity, self.symmetric = scale, similarity, symmetric
        self.hard_negatives = hard_negatives
        self.exclude_known_positives = exclude_known_positives
        self.exclude_described = exclude_described
        self.denoise_margin = denoise_margin
        self.needs_negatives = hard_negatives
        self.needs_margins = denoise_margin is not None
        self.needs_known_positives = exclude_known_positives
        self.mnrl = MultipleNegativesRankingLoss(scale=scale, similarity=similarity, symmetric=symmetric)

    def exclusions(self, batch: StudentBatch) -> torch.Tensor | None:
        """(B, B) bool: True where positive j must not be a negative of request i; None: no mask.

        The diagonal is the loss's target and never masked there.
        """
        if not (self.exclude_known_positives or self.exclude_described):
            return None
        if self.exclude_known_positives and batch.known_positives is None:
            raise ValueError("in-batch negatives exclude known positives: the batch needs known_positives")
        rows = []
        for request in batch.requests:
            known = batch.known_positives.get(request, ()) if self.exclude_known_positives else ()
            rows.append(
                [p in known or (self.exclude_described and describes(p, request)) for p in batch.positives]
            )
        return torch.tensor(rows, dtype=torch.bool, device=batch.q.device)

    def forward(self, batch: StudentBatch) -> torch.Tensor:
        documents, columns = batch.p, self.exclusions(batch)
        if self.hard_negatives:
            documents = torch.stack([batch.p, batch.n], dim=1).flatten(0, 1)  # (2B, H): p0, n0, p1, n1, ...
            if columns is not None or self.denoise_margin is not None:
                size = len(batch.requests)
                positives = columns if columns is not None else torch.zeros(size, size, dtype=torch.bool, device=batch.q.device)
                negatives = torch.zeros_like(positives)  # a mined negative counts, unless the teacher says below
                if self.denoise_margin is not None:  # only a request's own mined negative has a teacher margin
                    negatives.diagonal().copy_(batch.margins.to(negatives.device) < self.denoise_margin)
                columns = torch.stack([positives, negatives], dim=2).flatten(1, 2)  # p0, n0, p1, n1, ...
        return self.mnrl(batch.q, documents, columns)
