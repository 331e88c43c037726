"""Cached encoding: each distinct text is encoded once per cache.

The three sampled sets of the paper's protocol (and of validation) share their requests and
many descriptor sets, so an evaluation or a weight search over seeds encodes most texts once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class EmbeddingCache:
    """Embeddings of the texts an encoder has been asked for, kept on CPU in float32.

    Args:
        encoder: A bi-encoder (``encode(texts, batch_size=..., precision=...)``).
        normalize: L2-normalise the embeddings (for score "cos": a dot product is then the cosine).
    """

    def __init__(
        self, encoder, batch_size: int = 64, precision: str = "fp32", normalize: bool = True
    ) -> None:
        self.encoder, self.batch_size, self.precision = encoder, batch_size, precision
        self.normalize = normalize
        self._embeddings: dict[str, torch.Tensor] = {}

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), H) embeddings; the texts not seen before are encoded in one call, in
        order of first appearance. No texts: a (0, 0) tensor."""
        new = [t for t in dict.fromkeys(texts) if t not in self._embeddings]
        if new:
            emb = self.encoder.encode(new, batch_size=self.batch_size, precision=self.precision)
            emb = emb.float().cpu()
            if self.normalize:
                emb = F.normalize(emb, dim=-1)
            self._embeddings.update(zip(new, emb))
        if not texts:
            return torch.empty(0, 0)
        return torch.stack([self._embeddings[t] for t in texts])
