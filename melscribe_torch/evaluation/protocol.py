"""The paper's evaluation protocol: metrics on each sampled test set, mean ± std over seeds.

The std is the population std (numpy's default, ddof=0), as in the paper's released code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..data.sampling import RetrievalSet
from ..retrieval import Retriever
from .metrics import ranking_metrics


def evaluate_retrieval_set(
    retriever: Retriever, retrieval_set: RetrievalSet, k_values: Sequence[int]
) -> dict[str, float]:
    """Metrics of one retriever on one retrieval set (requests without a relevant document are left out).

    Beside the paper's metrics, ``nonempty_recall@k`` is Recall@k over the requests that have a
    non-empty relevant descriptor set (see ``count_empty_set_requests``): what a retriever
    does on the requests it can answer at all. NaN when there are none.
    """
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
    relevant = [retrieval_set.qrels[q] for q in query_ids]
    metrics = ranking_metrics(rankings, relevant, k_values)
    answerable = [i for i, rel in enumerate(relevant) if not _only_empty_set(retrieval_set, rel)]
    subset = (
        ranking_metrics([rankings[i] for i in answerable], [relevant[i] for i in answerable], k_values)
        if answerable
        else {}
    )
    for k in k_values:
        metrics[f"nonempty_recall@{k}"] = subset.get(f"recall@{k}", float("nan"))
    return metrics


def _only_empty_set(retrieval_set: RetrievalSet, relevant: set[str]) -> bool:
    return all(retrieval_set.corpus[d] == "" for d in relevant)


def count_empty_set_requests(retrieval_set: RetrievalSet) -> int:
    """Requests whose only relevant document is the empty descriptor set ``""``.

    The paper's sampling gives a request the empty set when it names none of its clip's
    descriptors, and its protocol keeps such requests. A retriever that never ranks the empty
    text among its top 10 (neither TF-IDF nor a trained bi-encoder does) misses them all, so
    they cap its Recall@10 at ``1 - count / num_requests``: 3 of 2,350 requests on MC, 84 of
    2,351 on MC_reco.
    """
    return sum(
        1 for relevant in retrieval_set.qrels.values() if relevant and _only_empty_set(retrieval_set, relevant)
    )


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
    seeds: Sequence[int],
    k_values: Sequence[int],
) -> dict:
    """Evaluate on the test set built with each seed; returns metrics with mean/std/per_seed and sizes.

    ``seeds`` and ``k_values``: the evaluate config's (the paper's 0, 1, 2 and 1, 3, 5, 10, 100).
    """
    per_seed, num_requests, num_documents, num_empty = [], [], [], []
    for seed in seeds:
        retrieval_set = build_test_set(seed)
        per_seed.append(evaluate_retrieval_set(retriever, retrieval_set, k_values))
        num_requests.append(sum(1 for q in retrieval_set.queries if retrieval_set.qrels.get(q)))
        num_documents.append(retrieval_set.num_documents)
        num_empty.append(count_empty_set_requests(retrieval_set))
    return {
        "metrics": aggregate(per_seed),
        "num_requests": num_requests,
        "num_descriptor_sets": num_documents,
        "num_empty_set_requests": num_empty,
        "seeds": list(seeds),
    }
