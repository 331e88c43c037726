"""A cross-encoder's held-out metrics: binary classification of pairs, ranking within groups."""

from __future__ import annotations

import math

import numpy as np
import torch


def binary_metrics(
    scores: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
) -> tuple[float, float]:
    """Accuracy at logit 0 and ROC AUC.

    The AUC is the Mann-Whitney statistic: the probability that a random positive outscores
    a random negative, ties counting one half (average ranks over tied scores).

    Args:
        scores: Logits, (N,).
        labels: 1 for relevant, 0 for not, (N,).

    Returns:
        (accuracy, auc); auc is nan when only one class is present.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if scores.size == 0:
        raise ValueError("binary_metrics needs at least one example")
    accuracy = float(np.mean((scores > 0) == labels))
    num_pos = int(labels.sum())
    num_neg = labels.size - num_pos
    if num_pos == 0 or num_neg == 0:
        return accuracy, float("nan")
    _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # 1-based rank of each group of tied scores: the mean of the ranks it spans.
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2.0)[group]
    auc = (ranks[labels].sum() - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg)
    return accuracy, float(auc)


def group_ranking_metrics(scores: torch.Tensor | np.ndarray) -> tuple[float, float]:
    """Mean reciprocal rank of each group's positive and the share ranked first (accuracy@1).

    The positive's rank is 1 + the number of its negatives scoring at least as high: a tie
    counts against it, so a scorer that gives every pair one score gets MRR 1/group_size.

    Args:
        scores: Logits, one row per group, the positive at column 0.

    Shapes:
        scores: (G, group_size)

    Returns:
        (mrr, accuracy_at_1).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (groups >= 1, group_size >= 2), got {scores.shape}")
    ranks = 1 + (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    return float(np.mean(1.0 / ranks)), float(np.mean(ranks == 1))


def constant_score_losses(labels: torch.Tensor | np.ndarray, group_size: int) -> dict[str, float]:
    """The held-out losses of a scorer that gives every pair one score: what a teacher that
    learned nothing reaches.

    The binary cross-entropy of the best constant logit is the entropy of the positive rate;
    a softmax over equal logits spreads ``1 / group_size`` on each set.

    Returns:
        ``{"constant_loss", "constant_group_loss"}``, beside ``loss`` and ``group_loss``.
    """
    rate = float(np.mean(np.asarray(labels, dtype=np.float64) > 0.5))
    entropy = -sum(p * math.log(p) for p in (rate, 1.0 - rate) if p > 0)
    return {"constant_loss": entropy, "constant_group_loss": math.log(group_size)}
