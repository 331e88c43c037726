"""Pool token embeddings into one vector per text, honouring the attention mask."""

from __future__ import annotations

import torch
from torch import Tensor

POOLING_MODES = ("mean", "cls", "max")


def pool(token_embeddings: Tensor, attention_mask: Tensor, mode: str = "mean") -> Tensor:
    """Reduce a batch of token embeddings to text embeddings.

    Args:
        token_embeddings: the backbone's last hidden state.
        attention_mask: 1 for real tokens, 0 for padding (any integer, bool or float dtype).
        mode: "mean" (masked sum over a clamped token count, as sentence-transformers),
            "cls" (first token) or "max" (masked max over tokens).

    Returns:
        The pooled embeddings, in float32 (float64 stays float64): a bf16/fp16 hidden state
        from autocast is upcast first, since summing hundreds of bf16 tokens loses precision.

    Shapes:
        token_embeddings (B, T, H), attention_mask (B, T) -> (B, H)
    """
    if mode not in POOLING_MODES:
        raise ValueError(
            f"unknown pooling mode {mode!r}; valid modes are {', '.join(POOLING_MODES)}"
        )
    dtype = torch.promote_types(token_embeddings.dtype, torch.float32)
    token_embeddings = token_embeddings.to(dtype)
    if mode == "cls":
        return token_embeddings[:, 0]
    mask = attention_mask.to(dtype).unsqueeze(-1)  # (B, T, 1)
    if mode == "mean":
        counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1); the clamp keeps all-padding rows finite
        return (token_embeddings * mask).sum(dim=1) / counts
    # max: padding must never win, so it becomes the most negative finite value
    padded = token_embeddings.masked_fill(mask == 0, torch.finfo(dtype).min)
    return padded.max(dim=1).values
