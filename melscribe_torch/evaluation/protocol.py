"""The paper's evaluation protocol: metrics on each sampled test set, mean ± std over seeds.

The std is the population std (numpy's default, ddof=0), as in the paper's released code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..data.sampling import RetrievalSet
from .metrics import DEFAULT_K_VALUES, ranking_metrics
from .retrievers import Retriever

PAPER_SEEDS = (0, 1, 2)


def evaluate_retrieval_set(
    retriever: Retriever, retrieval_set: RetrievalSet, k_values: Sequence[int] = DEFAULT_K_VALUES
) -> dict[str, float]:
    """Metrics of one retriever on one retrieval set (requests without a relevant document are left out)."""
    query_ids = [qid for qid in retrieval_set.queries if retrieval_set.qrels.get(qid)]
    if not query_ids:
        raise ValueError(f"test set {retrieval_set.name!r} has 0 requests with a relevant document")
    doc_ids = list(retrieval_set.corpus)
    _, indices = retriever.search(
        [retrieval_set.queries[q] for q in query_ids],
        [retrieval_set.corpus[d] for d in doc_ids],
        max(k_values),
    )
    rankings = [[doc_ids[i] for i in row] for row in indices.tolist()]
    return ranking_metrics(rankings, [retrieval_set.qrels[q] for q in query_ids], k_values)


def aggregate(per_seed: Sequence[dict[str, float]]) -> dict[str, dict]:
    """``{metric: {"mean", "std", "per_seed"}}`` from one metrics dict per seed."""
    return {
        name: {
            "mean": float(np.mean([m[name] for m in per_seed])),
            "std": float(np.std([m[name] for m in per_seed])),
            "per_seed": [m[name] for m in per_seed],
        }
        for name in per_seed[0]
    }


def evaluate_over_seeds(
    retriever: Retriever,
    build_test_set: Callable[[int], RetrievalSet],
    seeds: Sequence[int] = PAPER_SEEDS,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
) -> dict:
    """Evaluate on the test set built with each seed; returns metrics with mean/std/per_seed and sizes."""
    per_seed, num_requests, num_documents = [], [], []
    for seed in seeds:
        retrieval_set = build_test_set(seed)
        per_seed.append(evaluate_retrieval_set(retriever, retrieval_set, k_values))
        num_requests.append(sum(1 for q in retrieval_set.queries if retrieval_set.qrels.get(q)))
        num_documents.append(retrieval_set.num_documents)
    return {
        "metrics": aggregate(per_seed),
        "num_requests": num_requests,
        "num_descriptor_sets": num_documents,
        "seeds": list(seeds),
    }
