"""Validation Recall@k of a bi-encoder on retrieval sets built from held-out training clips."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.sampling import RetrievalSet
from ..evaluation.metrics import ranking_metrics
from ..retrieval import exact_topk


def validation_recall(
    model,
    sets: Sequence[RetrievalSet],
    k: int = 10,
    score: str = "cos",
    *,
    batch_size: int,
    precision: str,
) -> float:
    """Mean Recall@k over ``sets`` (the paper's protocol: one sampled set per seed).

    Args:
        model: A ``BiEncoder``.
        sets: Validation retrieval sets (never a test set).
        k: The cut-off.
        score: "cos" or "dot" ranking.
        batch_size, precision: Encoding settings (``train.encode_batch_size``, ``train.precision``).
    """
    if not sets:
        raise ValueError(
            "no validation sets: the validation split is empty; raise data.valid_fraction"
        )
    recalls = []
    for retrieval_set in sets:
        qids = [q for q in retrieval_set.queries if retrieval_set.qrels.get(q)]
        doc_ids = list(retrieval_set.corpus)
        q_emb = model.encode(
            [retrieval_set.queries[q] for q in qids], batch_size=batch_size, precision=precision
        )
        d_emb = model.encode(
            [retrieval_set.corpus[d] for d in doc_ids], batch_size=batch_size, precision=precision
        )
        _, indices = exact_topk(q_emb, d_emb, k, score=score, device=model.device)
        rankings = [[doc_ids[i] for i in row] for row in indices.tolist()]
        recalls.append(
            ranking_metrics(rankings, [retrieval_set.qrels[q] for q in qids], [k])[f"recall@{k}"]
        )
    return sum(recalls) / len(recalls)


def validation_metrics(
    model,
    caption_sets: Sequence[RetrievalSet],
    request_sets: Sequence[RetrievalSet] = (),
    k: int = 10,
    score: str = "cos",
    *,
    batch_size: int,
    precision: str,
) -> dict[str, float]:
    """Validation Recall@k on caption requests and, where given, on request-like ones.

    ``request_sets`` are built from the same held-out clips with their requests made more like
    listeners' (``data.request_style.RequestRewriter``), one per seed.

    Returns:
        ``{"valid_recall@10": captions}``, plus ``"valid_request_recall@10"`` and
        ``"valid_mean_recall@10"`` (the mean of the two) when ``request_sets`` is given.
    """
    captions = validation_recall(model, caption_sets, k, score, batch_size=batch_size, precision=precision)
    metrics = {f"valid_recall@{k}": captions}
    if request_sets:
        requests = validation_recall(model, request_sets, k, score, batch_size=batch_size, precision=precision)
        metrics[f"valid_request_recall@{k}"] = requests
        metrics[f"valid_mean_recall@{k}"] = (captions + requests) / 2
    return metrics
