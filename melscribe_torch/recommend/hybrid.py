"""Hybrid retrieval: fuse dense (bi-encoder) and lexical (TF-IDF) scores per request.

The lexical side is TF-IDF over word n-grams up to ``max_ngram`` words: descriptors are
short phrases ("male voice", "no voice", "low quality"), which bigrams and trigrams match
as phrases where single words match them only in part.

Two fusions, both computed over ALL documents of the corpus (a dense score matrix block is
computed anyway by exact search, and the TF-IDF block is a sparse matmul):

- ``zscore``: ``alpha * z(dense) + (1 - alpha) * z(lexical)``, where ``z`` standardises a
  request's scores over the documents (mean 0, std 1), so the two scales are comparable.
- ``rrf``: reciprocal-rank fusion, ``alpha / (c + rank_dense) + (1 - alpha) / (c + rank_lexical)``
  with ranks from 1 and ``c = 60`` (Cormack et al., 2009).

``alpha = 1`` is the dense ranking, ``alpha = 0`` the lexical one. Choose ``alpha`` on
validation data (`select_weight.select_fusion_weight`), never on a test set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

FUSION_METHODS = ("zscore", "rrf")
RRF_CONSTANT = 60
# Floats in one (requests x documents) score block: bounds memory for large corpora.
MAX_BLOCK_CELLS = 2**24


def zscore(scores: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Standardise each row (a request's scores over documents); a constant row becomes 0.

    Shapes:
        (Q, N) -> (Q, N)
    """
    mean = scores.mean(dim=1, keepdim=True)
    std = scores.std(dim=1, unbiased=False, keepdim=True)
    return (scores - mean) / std.clamp_min(eps)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of each document per row (1 = best; ties broken by index).

    Shapes:
        (Q, N) -> (Q, N) float
    """
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    out = torch.empty_like(order)
    positions = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    out.scatter_(1, order, positions)
    return out.float()


def fuse_scores(
    dense: torch.Tensor, lexical: torch.Tensor, alpha: float, method: str = "zscore"
) -> torch.Tensor:
    """Fused scores from dense and lexical scores of the same requests and documents.

    Args:
        dense: (Q, N) dense scores.
        lexical: (Q, N) lexical scores.
        alpha: Weight of the dense side, in [0, 1].
        method: "zscore" or "rrf".

    Returns:
        (Q, N) fused scores, higher is better.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fusion weight alpha must be in [0, 1], got {alpha}")
    if dense.shape != lexical.shape:
        raise ValueError(
            f"dense and lexical scores differ in shape: {tuple(dense.shape)} vs {tuple(lexical.shape)}"
        )
    dense, lexical = dense.float(), lexical.float()
    if method == "zscore":
        return alpha * zscore(dense) + (1 - alpha) * zscore(lexical)
    if method == "rrf":
        return alpha / (RRF_CONSTANT + ranks(dense)) + (1 - alpha) / (RRF_CONSTANT + ranks(lexical))
    raise ValueError(f"unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")


def check_max_ngram(max_ngram) -> None:
    """Refuse an n-gram length that is not a positive integer."""
    if not isinstance(max_ngram, int) or max_ngram < 1:
        raise ValueError(f"max_ngram must be a positive integer, got {max_ngram!r}")


class TfidfScorer:
    """TF-IDF (scikit-learn defaults, L2-normalised) fitted on a corpus; scores request blocks against it.

    Args:
        corpus: The descriptor-set texts.
        max_ngram: Terms are word n-grams of 1 to ``max_ngram`` words (1: scikit-learn's default).
    """

    def __init__(self, corpus: Sequence[str], max_ngram: int = 1) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        check_max_ngram(max_ngram)
        self.vectorizer = TfidfVectorizer(ngram_range=(1, max_ngram))
        self.d_mat_t = self.vectorizer.fit_transform(list(corpus)).T.tocsr()

    def scores(self, queries: Sequence[str]) -> torch.Tensor:
        """(len(queries), N) cosine scores."""
        q_mat = self.vectorizer.transform(list(queries))
        return torch.from_numpy(np.asarray((q_mat @ self.d_mat_t).todense(), dtype=np.float32))

    def topk(self, queries: Sequence[str], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, indices), each (len(queries), min(k, N)), a block of requests at a time."""
        num_docs = self.d_mat_t.shape[1]
        block = max(1, MAX_BLOCK_CELLS // max(num_docs, 1))
        parts = [
            torch.topk(self.scores(queries[i : i + block]), min(k, num_docs), dim=1)
            for i in range(0, len(queries), block)
        ]
        return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


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


def fused_topk(
    dense_block: Callable[[int, int], torch.Tensor],
    lexical_block: Callable[[int, int], torch.Tensor],
    num_queries: int,
    num_docs: int,
    k: int,
    alpha: float,
    method: str = "zscore",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of fused scores, a block of requests at a time.

    Args:
        dense_block / lexical_block: ``(start, stop) -> (stop - start, N)`` scores of those requests.
        k: Documents per request (capped at N).

    Returns:
        (scores, indices), each (num_queries, min(k, N)), best first.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    k = min(k, num_docs)
    scores_out = torch.empty(num_queries, k)
    indices_out = torch.empty(num_queries, k, dtype=torch.long)
    block = max(1, MAX_BLOCK_CELLS // max(num_docs, 1))
    for start in range(0, num_queries, block):
        stop = min(start + block, num_queries)
        fused = fuse_scores(dense_block(start, stop), lexical_block(start, stop), alpha, method)
        scores_out[start:stop], indices_out[start:stop] = torch.topk(fused, k, dim=1)
    return scores_out, indices_out


class HybridRetriever:
    """Dense + TF-IDF fusion as a `Retriever` (``name``, ``search``), for `evaluate.py`.

    Args:
        encoder: A bi-encoder (``encode(texts, batch_size=..., precision=...)``).
        name: Row label, e.g. ``"hybrid:minilm-l6"``.
        alpha: Weight of the dense side (chosen on validation data).
        method: "zscore" or "rrf".
        score: "cos" or "dot" for the dense side.
        max_ngram: Longest word n-gram of the TF-IDF side.
    """

    def __init__(
        self,
        encoder,
        name: str,
        alpha: float,
        method: str = "zscore",
        score: str = "cos",
        batch_size: int = 64,
        precision: str = "fp32",
        max_ngram: int = 1,
    ) -> None:
        if method not in FUSION_METHODS:
            raise ValueError(
                f"unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"fusion weight alpha must be in [0, 1], got {alpha}")
        self.encoder, self.name, self.alpha, self.method, self.score = (
            encoder,
            name,
            alpha,
            method,
            score,
        )
        self.batch_size, self.precision, self.max_ngram = batch_size, precision, max_ngram
        self._cache: dict[str, torch.Tensor] = {}  # text -> embedding (CPU, float32)

    def search(
        self, queries: Sequence[str], corpus: Sequence[str], k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q_emb, d_emb = self.embed(queries, corpus)
        lexical = TfidfScorer(corpus, self.max_ngram)
        return fused_topk(
            lambda a, b: dense_scores(q_emb[a:b], d_emb),
            lambda a, b: lexical.scores(queries[a:b]),
            len(queries),
            len(corpus),
            k,
            self.alpha,
            self.method,
        )

    def embed(
        self, queries: Sequence[str], corpus: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, H) and (N, H) embeddings, L2-normalised for score "cos".

        Texts already seen by this retriever are not encoded again: the three sampled test
        sets of the protocol share their requests and many descriptor sets.
        """
        texts = list(dict.fromkeys([*corpus, *queries]))
        new = [t for t in texts if t not in self._cache]
        if new:
            emb = self.encoder.encode(new, batch_size=self.batch_size, precision=self.precision)
            emb = emb.float().cpu()
            if self.score == "cos":
                emb = torch.nn.functional.normalize(emb, dim=-1)
            self._cache.update(zip(new, emb))
        return (
            torch.stack([self._cache[t] for t in queries]),
            torch.stack([self._cache[t] for t in corpus]),
        )
