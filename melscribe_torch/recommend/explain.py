"""Why a song was recommended: its descriptors ranked by similarity to the request."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def explain(
    q_emb: torch.Tensor,
    descriptors: Sequence[str],
    descriptor_rows: dict[str, int],
    descriptor_emb: np.ndarray,
    top: int = 3,
) -> list[tuple[str, float]]:
    """The song's ``top`` descriptors most similar (cosine) to the request, best first.

    Cosine whatever the index's score function: an explanation compares single descriptors,
    whose norms say nothing about relevance.

    Args:
        q_emb: The request embedding, (H,).
        descriptors: The song's descriptors.
        descriptor_rows: Descriptor -> row of ``descriptor_emb``.
        descriptor_emb: (D, H) embeddings of the index's distinct descriptors.
        top: How many to return (all when fewer).

    Returns:
        ``[(descriptor, cosine), ...]``, duplicates listed once.
    """
    distinct = list(dict.fromkeys(descriptors))
    if not distinct or top <= 0:
        return []
    rows = [descriptor_rows[d] for d in distinct]
    d = F.normalize(torch.as_tensor(np.asarray(descriptor_emb[rows])).float(), dim=-1)  # (n, H)
    q = F.normalize(q_emb.float().reshape(1, -1), dim=-1)  # (1, H)
    sims = (d @ q.T).squeeze(1)
    order = torch.argsort(sims, descending=True, stable=True)[:top]
    return [(distinct[i], round(float(sims[i]), 4)) for i in order.tolist()]
