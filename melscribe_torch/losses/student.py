"""The student's objective: a weighted sum of MarginMSE and in-batch negatives on its embeddings."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.descriptors import describes
from .margin_mse import MarginMSELoss
from .multiple_negatives_ranking import MultipleNegativesRankingLoss


class StudentLoss(nn.Module):
    """Weighted sum of MarginMSE and in-batch negatives on the student's embeddings.

    Args:
        margin_mse_weight: Weight of MarginMSE on (q·p − q·n) vs the teacher margin (the paper: 1).
        mnrl_weight: Weight of MNRL with groups (positive, hard negative), G = 2.
        mnrl_hard_negatives: False: MNRL sees only the batch's positives (G = 1); the mined
            negatives, some of which are unlabelled positives, then only feed MarginMSE.
        similarity: "dot" (the paper) or "cos" scores for MarginMSE.
        mnrl_scale: Inverse temperature of MNRL.
        mnrl_similarity: "cos" or "dot" for MNRL.
        mnrl_symmetric: MNRL also ranks the batch's requests for each positive.
        mnrl_exclude_known_positives: Another request's positive that is also a positive of
            this request is not one of its in-batch negatives (the training loop then needs
            the relevance judgements, ``known_positives``).
        mnrl_exclude_described: Another request's positive whose every descriptor this request
            names (``data.descriptors.describes``: the sampling would have made it a positive) is not one
            of its in-batch negatives: about 6 of the 992 negatives of a batch of 32.

    Shapes:
        q_emb, p_emb, n_emb: (B, H) (n_emb may be None when ``uses_negatives`` is False);
        margins: (B,); exclude: optional (B, B) bool, True where positive j is also a
        positive of request i, or described by it (masked out of MNRL's negatives) -> loss ()
        and a dict of float parts (``in_batch_exclusions`` builds ``exclude``).
    """

    def __init__(
        self,
        margin_mse_weight: float = 1.0,
        mnrl_weight: float = 0.0,
        similarity: str = "dot",
        mnrl_scale: float = 20.0,
        mnrl_similarity: str = "cos",
        mnrl_hard_negatives: bool = True,
        mnrl_symmetric: bool = False,
        mnrl_exclude_known_positives: bool = False,
        mnrl_exclude_described: bool = False,
    ) -> None:
        super().__init__()
        if similarity not in ("dot", "cos"):
            raise ValueError(f"unknown similarity {similarity!r}; valid: dot, cos")
        if margin_mse_weight <= 0 and mnrl_weight <= 0:
            raise ValueError("at least one loss weight must be > 0")
        self.margin_mse_weight, self.mnrl_weight, self.similarity = (
            margin_mse_weight,
            mnrl_weight,
            similarity,
        )
        self.mnrl_hard_negatives = mnrl_hard_negatives
        self.exclude_known_positives = mnrl_weight > 0 and mnrl_exclude_known_positives
        self.exclude_described = mnrl_weight > 0 and mnrl_exclude_described
        self.margin_mse = MarginMSELoss()
        self.mnrl = MultipleNegativesRankingLoss(
            scale=mnrl_scale, similarity=mnrl_similarity, symmetric=mnrl_symmetric
        )

    @property
    def uses_negatives(self) -> bool:
        return self.margin_mse_weight > 0 or (self.mnrl_weight > 0 and self.mnrl_hard_negatives)

    def forward(
        self,
        q_emb: Tensor,
        p_emb: Tensor,
        n_emb: Tensor | None,
        margins: Tensor,
        exclude: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        if n_emb is None and self.uses_negatives:
            raise ValueError("this loss needs the hard negatives' embeddings")
        q_emb, p_emb = q_emb.float(), p_emb.float()
        n_emb = n_emb.float() if n_emb is not None else None
        loss = q_emb.new_zeros(())
        parts = {}
        if self.margin_mse_weight > 0:
            q, p, n = (
                (F.normalize(e, dim=-1) for e in (q_emb, p_emb, n_emb))
                if self.similarity == "cos"
                else (q_emb, p_emb, n_emb)
            )
            part = self.margin_mse((q * p).sum(-1), (q * n).sum(-1), margins)
            loss = loss + self.margin_mse_weight * part
            parts["margin_mse"] = part.item()
        if self.mnrl_weight > 0:
            documents, columns = p_emb, exclude
            if self.mnrl_hard_negatives:
                documents = torch.stack([p_emb, n_emb], dim=1).flatten(0, 1)  # (2B, H): p0, n0, p1, n1, ...
                if exclude is not None:  # a mined negative is never masked
                    columns = torch.stack([exclude, torch.zeros_like(exclude)], dim=2).flatten(1, 2)
            part = self.mnrl(q_emb, documents, columns)
            loss = loss + self.mnrl_weight * part
            parts["mnrl"] = part.item()
        return loss, parts


def in_batch_exclusions(
    loss_fn: StudentLoss,
    requests: Sequence[str],
    positives: Sequence[str],
    known_positives: Mapping[str, Collection[str]] | None,
    device: torch.device | str = "cpu",
) -> Tensor | None:
    """(B, B) bool: True where positive j must not be a negative of request i; None: no mask.

    Positive j is masked for request i when it is a known positive of i
    (``loss_fn.exclude_known_positives``) or when i names every descriptor of it
    (``loss_fn.exclude_described``). The diagonal is the loss's target and never masked there.
    """
    if not (loss_fn.exclude_known_positives or loss_fn.exclude_described):
        return None
    rows = []
    for request in requests:
        known = known_positives.get(request, ()) if loss_fn.exclude_known_positives else ()
        rows.append(
            [p in known or (loss_fn.exclude_described and describes(p, request)) for p in positives]
        )
    return torch.tensor(rows, dtype=torch.bool, device=device)
