"""Exact dense search over an index's stored descriptor-set matrix, streamed once per batch.

The index stores its set embeddings ready for search: L2-normalised for score ``cos`` (so a
score is a plain dot product) and in the index dtype. `SearchMatrix` wraps them once, at
load, as a tensor on the search device (a memory map on CPU: no copy), and `SearchMatrix.topk`
reads it once per batch of requests, chunk by chunk, keeping a running top-k. Nothing is
normalised or copied per request.

The kernel follows the dtype:

- float32 rows: chunked matmul in float32.
- float16/bfloat16 rows, one request on CPU, or any batch on GPU: the 16-bit kernel (CPU: a
  matrix-vector product that reads the half-size rows at memory speed, accumulating in
  float32) picks ``2k + 32`` candidates; they are re-scored in float32 and the result
  checked: when a row outside the candidates could still beat the k-th re-scored one (its
  16-bit score is within the rounding bound of it), that request is searched again the
  float32 way. So results equal a float32 search of the stored rows.
- float16/bfloat16 rows, a batch on CPU: CPUs have no fast 16-bit matrix-matrix product, so
  each chunk is up-cast once for the whole batch and multiplied in float32.
"""

from __future__ import annotations

import numpy as np
import torch

from ..retrieval.search import exact_topk

# Rows per float32 matmul: a chunk's scores are (requests, CORPUS_CHUNK) floats.
CORPUS_CHUNK = 262144
# Rows per 16-bit matmul, for a request or a few: its scores are small (2 bytes per row and
# request), and few large calls beat many small ones, each of which starts and joins the
# thread pool (slow when the cores are shared).
HALF_CHUNK = 1 << 22
# Up to this many requests, 16-bit rows on CPU are searched one request at a time with the
# matrix-vector kernel; larger batches up-cast each chunk once instead.
CPU_VECTOR_MAX = 2
_HALF = (torch.float16, torch.bfloat16)


class SearchMatrix:
    """The (N, H) descriptor-set matrix of an index, held on the search device.

    Args:
        emb: The stored rows (a numpy memory map or array, or a tensor).
        device: Where search runs; CPU keeps the memory map, GPU copies the rows there once.
        max_norm: The largest row norm (1 for a normalised index), used in the rounding
            bound of 16-bit candidates; computed when None.
    """

    def __init__(
        self, emb, device: torch.device | str = "cpu", max_norm: float | None = None
    ) -> None:
        rows = emb if isinstance(emb, torch.Tensor) else torch.from_numpy(_writable(emb))
        self.device = torch.device(device)
        self.rows = rows.to(self.device)
        if max_norm is None:
            max_norm = max(
                (
                    float(self.rows[i : i + CORPUS_CHUNK].float().norm(dim=1).max())
                    for i in range(0, len(self.rows), CORPUS_CHUNK)
                ),
                default=0.0,
            )
        self.max_norm = max_norm

    def __len__(self) -> int:
        return self.rows.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.rows.dtype

    @torch.inference_mode()
    def topk(self, q_emb: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, rows), each (Q, min(k, N)), best first, on CPU: the exact float32 dot-product top-k.

        Args:
            q_emb: (Q, H) request embeddings (normalised for score ``cos``).
            k: Rows per request.
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        q = q_emb.to(self.device, torch.float32)
        if self.dtype in _HALF and q.shape[0] > 0:
            if self.device.type != "cpu":
                return self._half_topk(q, k)
            if q.shape[0] <= CPU_VECTOR_MAX:
                parts = [self._half_topk(q[i : i + 1], k) for i in range(q.shape[0])]
                return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return exact_topk(q, self.rows, k, score="dot", corpus_chunk=CORPUS_CHUNK)

    def _half_topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """16-bit candidates, re-scored in float32; requests whose candidates may miss a row are redone."""
        num = len(self)
        k = min(k, num)
        pool = min(num, 2 * k + 32)
        q16 = q.to(self.dtype)
        best_scores = torch.full((q.shape[0], 0), float("-inf"), device=self.device)
        best_rows = torch.zeros((q.shape[0], 0), dtype=torch.long, device=self.device)
        for start in range(0, num, HALF_CHUNK):
            scores = q16 @ self.rows[start : start + HALF_CHUNK].T
            chunk_scores, chunk_rows = torch.topk(scores, min(pool, scores.shape[1]), dim=1)
            merged = torch.cat([best_scores, chunk_scores.float()], dim=1)
            merged_rows = torch.cat([best_rows, chunk_rows + start], dim=1)
            best_scores, order = torch.topk(merged, min(pool, merged.shape[1]), dim=1)
            best_rows = torch.gather(merged_rows, 1, order)
        exact = torch.einsum("qh,qch->qc", q, self.rows[best_rows].float())
        scores, order = torch.topk(exact, k, dim=1)
        rows = torch.gather(best_rows, 1, order)
        if pool < num:
            # A row left out scored at most best_scores[:, -1] in 16 bits, so at most that plus
            # the rounding bound in float32; it could belong in the top-k only above the k-th.
            eps = torch.finfo(self.dtype).eps
            bound = 2 * eps * (best_scores[:, -1].abs() + q.norm(dim=1) * self.max_norm)
            unsure = (best_scores[:, -1] + bound >= scores[:, -1]).nonzero().flatten().tolist()
            if unsure:
                redo_scores, redo_rows = exact_topk(
                    q[unsure], self.rows, k, score="dot", corpus_chunk=CORPUS_CHUNK
                )
                scores[unsure], rows[unsure] = (
                    redo_scores.to(self.device),
                    redo_rows.to(self.device),
                )
        return scores.cpu(), rows.cpu()


def _writable(emb) -> np.ndarray:
    """torch.from_numpy needs a writable array: a copy-on-write memory map (the index's) is one as it is."""
    emb = np.asarray(emb)
    return emb if emb.flags.writeable else np.array(emb)
