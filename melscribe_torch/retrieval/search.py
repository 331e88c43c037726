"""Exact top-k search, chunked so memory stays bounded.

`exact_topk`: for each block of requests, scores against each block of documents are
computed with one matmul and merged into a running top-k: peak memory is
O(query_chunk * (corpus_chunk + k)) whatever the corpus size, which is what lets mining and
recommendation scale to millions of descriptor sets.

`blockwise_topk`: the top-k of any full score rows (lexical, fused) computed a block of
requests at a time, so one (requests x documents) block is alive at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

SCORE_FUNCTIONS = ("cos", "dot")
# Floats in one (requests x documents) score block of `blockwise_topk`: bounds memory for large corpora.
MAX_BLOCK_CELLS = 2**24


def _prepare(emb: torch.Tensor, score: str) -> torch.Tensor:
    if score == "cos":
        return F.normalize(emb.float(), p=2, dim=-1)
    if score == "dot":
        return emb
    raise ValueError(f"unknown score function {score!r}; valid: {', '.join(SCORE_FUNCTIONS)}")


@torch.inference_mode()
def exact_topk(
    q_emb: torch.Tensor,
    d_emb: torch.Tensor,
    k: int,
    score: str = "cos",
    query_chunk: int = 1024,
    corpus_chunk: int = 65536,
    device: torch.device | str | None = None,
    exclude: list[list[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k documents per request by cosine or dot score.

    Args:
        q_emb: Request embeddings, (Q, H).
        d_emb: Document embeddings, (N, H); may stay on CPU (e.g. a memory map): chunks are
            moved to ``device`` one at a time.
        k: How many documents to return per request (capped at N).
        score: "cos" or "dot".
        device: Where the matmuls run (default: the device of ``q_emb``). fp16/bf16 inputs
            are multiplied in that precision; scores are merged in float32.
        exclude: Optional, per request, document indices that must not be returned (e.g.
            positives when mining negatives).

    Returns:
        (scores, indices), each (Q, min(k, N)), sorted by decreasing score, on CPU.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if q_emb.shape[-1] != d_emb.shape[-1]:
        raise ValueError(f"request and document embeddings differ in size: {q_emb.shape[-1]} vs {d_emb.shape[-1]}")
    device = torch.device(device) if device is not None else q_emb.device
    num_queries, num_docs = q_emb.shape[0], d_emb.shape[0]
    k = min(k, num_docs)
    all_scores = torch.empty(num_queries, k, dtype=torch.float32)
    all_indices = torch.empty(num_queries, k, dtype=torch.long)
    if num_queries == 0 or k == 0:
        return all_scores, all_indices
    for q_start in range(0, num_queries, query_chunk):
        q = _prepare(q_emb[q_start : q_start + query_chunk].to(device), score)
        best_scores = torch.full((q.shape[0], 0), float("-inf"), device=device)
        best_indices = torch.zeros((q.shape[0], 0), dtype=torch.long, device=device)
        for d_start in range(0, num_docs, corpus_chunk):
            d = _prepare(torch.as_tensor(d_emb[d_start : d_start + corpus_chunk]).to(device), score)
            scores = (q @ d.to(q.dtype).T).float()  # (q, d)
            if exclude is not None:
                _mask_excluded(scores, exclude[q_start : q_start + q.shape[0]], d_start)
            chunk_scores, chunk_indices = torch.topk(scores, min(k, scores.shape[1]), dim=1)
            merged_scores = torch.cat([best_scores, chunk_scores], dim=1)
            merged_indices = torch.cat([best_indices, chunk_indices + d_start], dim=1)
            best_scores, order = torch.topk(merged_scores, min(k, merged_scores.shape[1]), dim=1)
            best_indices = torch.gather(merged_indices, 1, order)
            # Free this block's scores before the next block is allocated: one score block alive at a time.
            del scores, chunk_scores, chunk_indices, merged_scores, merged_indices, d
        all_scores[q_start : q_start + q.shape[0]] = best_scores.cpu()
        all_indices[q_start : q_start + q.shape[0]] = best_indices.cpu()
    return all_scores, all_indices


def _mask_excluded(scores: torch.Tensor, exclude: list[list[int]], offset: int) -> None:
    rows, cols = [], []
    width = scores.shape[1]
    for row, indices in enumerate(exclude):
        for index in indices:
            if offset <= index < offset + width:
                rows.append(row)
                cols.append(index - offset)
    if rows:
        scores[rows, cols] = float("-inf")


def blockwise_topk(
    score_rows: Callable[[int, int], torch.Tensor], num_queries: int, num_docs: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of score rows computed a block of requests at a time.

    Args:
        score_rows: ``(start, stop) -> (stop - start, num_docs)`` scores of those requests.
        k: Documents per request (capped at ``num_docs``).

    Returns:
        (scores, indices), each (num_queries, min(k, num_docs)), best first.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    k = min(k, num_docs)
    scores_out = torch.empty(num_queries, k)
    indices_out = torch.empty(num_queries, k, dtype=torch.long)
    block = max(1, MAX_BLOCK_CELLS // max(num_docs, 1))
    for start in range(0, num_queries, block):
        stop = min(start + block, num_queries)
        scores_out[start:stop], indices_out[start:stop] = torch.topk(score_rows(start, stop), k, dim=1)
    return scores_out, indices_out


def dense_scores(
    q_emb: torch.Tensor, d_emb, device: torch.device | str = "cpu", corpus_chunk: int = 262144
) -> torch.Tensor:
    """(Q, N) dot scores of (normalised) request embeddings against a possibly memory-mapped (N, H) matrix."""
    q = q_emb.to(device).float()
    blocks = []
    for start in range(0, d_emb.shape[0], corpus_chunk):
        d = torch.as_tensor(np.asarray(d_emb[start : start + corpus_chunk])).to(device).float()
        blocks.append((q @ d.T).cpu())
    return torch.cat(blocks, dim=1) if blocks else torch.empty(q.shape[0], 0)
