"""Exact dense search over an index's stored descriptor-set matrix, streamed once per batch.

The index stores its set embeddings ready for search: L2-normalised for score ``cos`` (so a
score is a plain dot product) and in the index dtype. `SearchMatrix` wraps them once, at
load, as a tensor on the search device (a memory map on CPU: no copy), and `SearchMatrix.topk`
reads it once per batch of requests, keeping a running top-k. Nothing is normalised or
copied per request.

The kernel follows the dtype and the device:

- float32 rows: chunked matmul in float32 (`exact_topk`).
- float16/bfloat16 rows, one request (or two) on CPU, from `FUSED_MIN_ROWS` rows: a kernel
  compiled once per process (``torch.compile``) reads each 16-bit row once and sums its
  products with the request in float32, so every score is the float32 score of the stored
  row; PyTorch's own 16-bit matrix-vector kernel spends about twice the memory scan's CPU
  time per row. The top-k is then taken from the blocks of scores that hold it (`top_of_scores`).
  Where compiling fails (no C++ compiler), and below `FUSED_MIN_ROWS` (where compiling costs
  more than it saves), the 16-bit path below is used instead.
- float16/bfloat16 rows, one request (or two) on CPU otherwise, or any batch on GPU: the
  16-bit kernel (CPU: a matrix-vector product accumulating in float32) picks ``2k + 32``
  candidates; they are re-scored in float32 and the result checked: when a row outside the
  candidates could still beat the k-th re-scored one (its 16-bit score is within the
  rounding bound of it), that request is searched again the float32 way.
- float16/bfloat16 rows, a batch on CPU: CPUs have no fast 16-bit matrix-matrix product, so
  `UPCAST_ROWS` rows at a time are up-cast into one reused float32 buffer that stays in
  cache and multiplied with the whole batch; the top-k is merged once per `SCORE_ROWS` rows.

Every path returns the top-k of a float32 search of the stored rows.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch

from ..retrieval.search import exact_topk

log = logging.getLogger(__name__)

# Rows per float32 matmul: a chunk's scores are (requests, CORPUS_CHUNK) floats.
CORPUS_CHUNK = 262144
# Rows per 16-bit matmul, for a request or a few: its scores are small (2 bytes per row and
# request), and few large calls beat many small ones, each of which starts and joins the
# thread pool (slow when the cores are shared).
HALF_CHUNK = 1 << 22
# Up to this many requests, 16-bit rows on CPU are searched one request at a time (fused or
# matrix-vector kernel); larger batches up-cast the rows in cache-sized pieces instead.
CPU_VECTOR_MAX = 2
# From this many rows, one request over 16-bit rows on CPU uses the compiled kernel: its
# first compilation in a process takes seconds to a minute, a search over fewer rows
# milliseconds.
FUSED_MIN_ROWS = 262144
# Rows up-cast to float32 at a time for a batch: their copy (6 MB at 384 dimensions) and
# the rows it is read from stay in the CPU's cache while the batch is multiplied with them.
UPCAST_ROWS = 4096
# Rows whose batch scores are gathered before one top-k merge: fewer, larger top-k calls.
SCORE_ROWS = 65536
# Scores per block in `top_of_scores`.
SCORE_BLOCK = 1024
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
            if q.shape[0] > CPU_VECTOR_MAX:
                return self._upcast_topk(q, k)
            one = self._fused_topk if len(self) >= FUSED_MIN_ROWS else self._half_topk
            parts = [one(q[i : i + 1], k) for i in range(q.shape[0])]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return exact_topk(q, self.rows, k, score="dot", corpus_chunk=CORPUS_CHUNK)

    def _fused_topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One request: float32 scores of every row from the compiled kernel, then their top-k."""
        dots = fused_dots(self.rows, q[0])
        if dots is None:  # no compiler here
            return self._half_topk(q, k)
        scores, rows = top_of_scores(dots, min(k, len(self)))
        return scores[None], rows[None]

    def _upcast_topk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch on CPU: cache-sized pieces up-cast into one buffer, multiplied in float32."""
        num, dim = self.rows.shape
        k = min(k, num)
        piece = torch.empty(min(UPCAST_ROWS, num), dim)
        # (rows, requests): each piece's scores are a contiguous slice of it
        scores = torch.empty(min(SCORE_ROWS, num), q.shape[0])
        best_scores = torch.full((q.shape[0], 0), float("-inf"))
        best_rows = torch.zeros((q.shape[0], 0), dtype=torch.long)
        for start in range(0, num, SCORE_ROWS):
            stop = min(num, start + SCORE_ROWS)
            for sub in range(start, stop, UPCAST_ROWS):
                end = min(stop, sub + UPCAST_ROWS)
                part = piece[: end - sub]
                part.copy_(self.rows[sub:end])
                torch.mm(part, q.T, out=scores[sub - start : end - start])
            chunk_scores, chunk_rows = torch.topk(scores[: stop - start], min(k, stop - start), dim=0)
            merged = torch.cat([best_scores, chunk_scores.T], dim=1)
            merged_rows = torch.cat([best_rows, chunk_rows.T + start], dim=1)
            best_scores, order = torch.topk(merged, min(k, merged.shape[1]), dim=1)
            best_rows = torch.gather(merged_rows, 1, order)
        return best_scores, best_rows

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


def top_of_scores(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k of (N,) scores, best first, read from the k blocks with the highest maxima.

    The k-th best score is at least the k-th highest block maximum (those k blocks each hold
    a score that high), so no other block holds a score above it: one pass for the block
    maxima, then a top-k over k blocks instead of over all N scores.
    """
    blocks = scores.shape[0] // SCORE_BLOCK
    if blocks <= k:
        return torch.topk(scores, k)
    head = scores[: blocks * SCORE_BLOCK].view(blocks, SCORE_BLOCK)
    chosen = torch.topk(head.amax(dim=1), k).indices
    offsets = torch.arange(SCORE_BLOCK)
    candidates = torch.cat([head[chosen].flatten(), scores[blocks * SCORE_BLOCK :]])
    rows = torch.cat(
        [(chosen[:, None] * SCORE_BLOCK + offsets).flatten(), torch.arange(blocks * SCORE_BLOCK, scores.shape[0])]
    )
    best, order = torch.topk(candidates, k)
    return best, rows[order]


def _dots(rows: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(N,) float32 dot products of 16-bit rows with a float32 request, up-cast element by element."""
    return (rows.float() * q).sum(dim=1)


_compiled = None  # the compiled `_dots` (None: not tried yet; False: compiling failed)
_compile_lock = threading.Lock()


def fused_dots(rows: torch.Tensor, q: torch.Tensor) -> torch.Tensor | None:
    """`_dots` through the kernel ``torch.compile`` makes of it (one for every N), compiled on first use.

    Returns None when compiling failed (a warning says why, once): callers use eager kernels.
    """
    global _compiled
    if _compiled is None:
        with _compile_lock:
            if _compiled is None:
                compiled = torch.compile(_dots, dynamic=True)
                try:
                    compiled(rows[:SCORE_BLOCK], q)
                    _compiled = compiled
                except Exception as error:  # noqa: BLE001 - any compiler failure means: use eager kernels
                    _compiled = False
                    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    log.warning(
                        "compiling the fused 16-bit search kernel failed (%s: %s); single requests "
                        "use PyTorch's 16-bit matrix-vector kernel instead (slower)",
                        type(error).__name__,
                        first,
                    )
    return _compiled(rows, q) if _compiled else None


def _writable(emb) -> np.ndarray:
    """torch.from_numpy needs a writable array: a copy-on-write memory map (the index's) is one as it is."""
    emb = np.asarray(emb)
    return emb if emb.flags.writeable else np.array(emb)
