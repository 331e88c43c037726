"""Ranking metrics at cut-off k, with the definitions of the BEIR / sentence-transformers IR evaluators.

For one request with relevant set R and ranking r_1..r_k (binary relevance):

- accuracy@k  = 1 if any r_i in R
- precision@k = |top-k ∩ R| / k
- recall@k    = |top-k ∩ R| / |R|
- MRR@k       = 1 / rank of the first relevant document in the top k (0 if none)
- nDCG@k      = sum_{r_i in R} 1/log2(i+1)  /  sum_{i <= min(|R|, k)} 1/log2(i+1)
- MAP@k       = sum_{r_i in R} (hits up to i / i)  /  min(k, |R|)

Each metric is averaged over requests; values are fractions, not percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METRIC_NAMES = ("accuracy", "precision", "recall", "mrr", "ndcg", "map")


def ranking_metrics(
    rankings: Sequence[Sequence[str]],
    relevant: Sequence[set[str]],
    k_values: Sequence[int],
) -> dict[str, float]:
    """Mean metrics over requests.

    Args:
        rankings: Per request, document ids by decreasing score (at least max(k_values) long
            where the corpus allows).
        relevant: Per request, the set of relevant document ids (non-empty).
        k_values: Cut-offs.

    Returns:
        ``{"recall@10": 0.87, "mrr@10": ..., ...}`` for every metric and cut-off.
    """
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings for {len(relevant)} relevance sets")
    if not rankings:
        raise ValueError("no requests to evaluate: a test set with 0 requests is an error, not a score of 0")
    totals = {f"{name}@{k}": 0.0 for name in METRIC_NAMES for k in k_values}
    for ranking, rel in zip(rankings, relevant):
        if not rel:
            raise ValueError("a request has no relevant document; drop it before evaluating")
        hits = [doc_id in rel for doc_id in ranking]
        for k in k_values:
            top = hits[:k]
            num_hits = sum(top)
            first = next((i for i, hit in enumerate(top) if hit), None)
            dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(top) if hit)
            idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
            precision_sum, seen = 0.0, 0
            for i, hit in enumerate(top):
                if hit:
                    seen += 1
                    precision_sum += seen / (i + 1)
            totals[f"accuracy@{k}"] += float(num_hits > 0)
            totals[f"precision@{k}"] += num_hits / k
            totals[f"recall@{k}"] += num_hits / len(rel)
            totals[f"mrr@{k}"] += 0.0 if first is None else 1.0 / (first + 1)
            totals[f"ndcg@{k}"] += dcg / idcg
            totals[f"map@{k}"] += precision_sum / min(k, len(rel))
    return {name: value / len(rankings) for name, value in totals.items()}
