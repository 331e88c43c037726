"""Choose the hybrid fusion weight on validation data carved from the training clips.

Validation sets: the same ones ``train.py`` selects on by default. The training records of
the default sources are split by clip (``split_for_validation`` with the defaults of
``data.training``: 30% of the clips, split seed 0); each held-out clip gives one request (its
LLM caption where it has one) and one descriptor set, sampled with the paper's procedure for
seeds 0, 1, 2, as the test sets are (``build_validation_set``). No test clip is involved: the
MC / MC_reco test sets never tune anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.training import (
    DEFAULT_VALID_FRACTION,
    DEFAULT_VALID_LAYOUT,
    DEFAULT_VALID_REQUEST_SOURCES,
    build_validation_set,
    check_no_test_clips,
    load_training_records,
    split_for_validation,
)
from ..evaluation.metrics import ranking_metrics
from .hybrid import TfidfScorer, fuse_scores

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
VALIDATION_SOURCES = ("musiccaps", "lp-musiccaps-mc")  # train.py's default sources


def select_fusion_weight(
    encoder,
    root: str | Path,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seeds: Sequence[int] = (0, 1, 2),
    method: str = "zscore",
    metric: str = "recall@10",
    batch_size: int = 64,
    precision: str = "fp32",
) -> dict:
    """Grid-search the dense weight ``alpha`` by validation ``metric`` (mean over seeds).

    Args:
        encoder: The bi-encoder whose hybrid is tuned.
        root: The data directory.
        alphas: Candidate weights in [0, 1].
        seeds: Sampling seeds of the validation sets.
        method: Fusion method ("zscore" or "rrf").

    Returns:
        ``{"alpha", "method", "metric", "table": [{"alpha", "mean", "std", "per_seed"}],
        "num_requests", "num_descriptor_sets", "seeds"}``; ties go to the smaller alpha.
    """
    records = load_training_records(root, list(VALIDATION_SOURCES))
    check_no_test_clips(records, root)
    _, valid = split_for_validation(
        records, DEFAULT_VALID_FRACTION, 0, DEFAULT_VALID_REQUEST_SOURCES, DEFAULT_VALID_LAYOUT
    )
    per_alpha: dict[float, list[float]] = {a: [] for a in alphas}
    num_requests, num_sets = [], []
    cache: dict[str, torch.Tensor] = {}  # the requests are the same sentences for every seed
    for seed in seeds:
        vset = build_validation_set(valid, seed, DEFAULT_VALID_REQUEST_SOURCES, DEFAULT_VALID_LAYOUT)
        qids = [q for q in vset.queries if vset.qrels.get(q)]
        doc_ids = list(vset.corpus)
        queries = [vset.queries[q] for q in qids]
        corpus = [vset.corpus[d] for d in doc_ids]
        relevant = [vset.qrels[q] for q in qids]
        d_emb = _encode(encoder, corpus, cache, batch_size, precision)
        q_emb = _encode(encoder, queries, cache, batch_size, precision)
        dense = q_emb @ d_emb.T  # (Q, N): small for a validation set
        lexical = TfidfScorer(corpus).scores(queries)
        k = int(metric.split("@")[1])
        for alpha in alphas:
            top = torch.topk(
                fuse_scores(dense, lexical, alpha, method), min(k, len(corpus)), dim=1
            ).indices
            rankings = [[doc_ids[i] for i in row] for row in top.tolist()]
            per_alpha[alpha].append(ranking_metrics(rankings, relevant, [k])[metric])
        num_requests.append(len(qids))
        num_sets.append(len(corpus))
        log.info(
            "validation seed %d: %d requests, %d descriptor sets", seed, len(qids), len(corpus)
        )
    table = [
        {"alpha": a, "mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v}
        for a, v in per_alpha.items()
    ]
    best = max(table, key=lambda row: (round(row["mean"], 12), -row["alpha"]))
    return {
        "alpha": best["alpha"],
        "method": method,
        "metric": metric,
        "table": table,
        "num_requests": num_requests,
        "num_descriptor_sets": num_sets,
        "seeds": list(seeds),
        "validation": {
            "sources": list(VALIDATION_SOURCES),
            "request_sources": list(DEFAULT_VALID_REQUEST_SOURCES),
            "valid_fraction": DEFAULT_VALID_FRACTION,
            "layout": DEFAULT_VALID_LAYOUT,
            "split_seed": 0,
        },
    }


def _encode(
    encoder, texts: list[str], cache: dict[str, torch.Tensor], batch_size: int, precision: str
) -> torch.Tensor:
    """(len(texts), H) L2-normalised embeddings, encoding only texts not in ``cache``."""
    new = [t for t in dict.fromkeys(texts) if t not in cache]
    if new:
        emb = encoder.encode(new, batch_size=batch_size, precision=precision).float()
        cache.update(zip(new, torch.nn.functional.normalize(emb, dim=-1)))
    return torch.stack([cache[t] for t in texts]) if texts else torch.empty(0, 0)


def format_selection(result: dict) -> str:
    """A Markdown table of the grid, the chosen weight marked."""
    lines = [f"| alpha | {result['metric']} (mean ± std, %) | per seed |", "|---|---|---|"]
    for row in result["table"]:
        mark = " **chosen**" if row["alpha"] == result["alpha"] else ""
        seeds = ", ".join(f"{100 * v:.1f}" for v in row["per_seed"])
        lines.append(
            f"| {row['alpha']:.1f}{mark} | {100 * row['mean']:.1f} ± {100 * row['std']:.1f} | {seeds} |"
        )
    return "\n".join(lines) + "\n"
