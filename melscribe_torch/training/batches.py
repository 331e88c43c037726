"""Training examples and the batch order.

A training example is one GPL tuple with its texts::

    (request, positive descriptor set, hard-negative descriptor set, teacher margin)

where ``margin = CE(request, positive) - CE(request, negative)`` from the cross-encoder teacher,
or None when the loss reads no margin (no teacher was trained).

The batch order is a pure function of (seed, epoch): micro-batch ``m`` (counted over the
whole run) is found without replaying the ones before it, so a resumed run sees exactly
the data an uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.sampling import RetrievalSet

TrainingExample = tuple[str, str, str, float | None]


def examples_from_tuples(pairs: RetrievalSet, rows: Sequence[tuple]) -> list[TrainingExample]:
    """Look up the texts of (qid, pos_id, neg_id, margin) rows (``labeling.read_gpl_training_data``)
    or of (qid, pos_id, neg_id) rows without a teacher (``labeling.read_training_tuples``).

    Raises:
        ValueError: no rows, or a row whose id is not in ``pairs`` (the row number says which).
    """
    if not rows:
        raise ValueError(
            "no GPL training tuples: the training data is empty; check the pseudo-label stage"
        )
    examples = []
    for i, (qid, pos_id, neg_id, *margin) in enumerate(rows):
        if qid not in pairs.queries:
            raise ValueError(f"GPL tuple {i}: request id {qid!r} is not in the training requests")
        for doc_id in (pos_id, neg_id):
            if doc_id not in pairs.corpus:
                raise ValueError(
                    f"GPL tuple {i}: document id {doc_id!r} is not in the training corpus"
                )
        examples.append(
            (
                pairs.queries[qid],
                pairs.corpus[pos_id],
                pairs.corpus[neg_id],
                float(margin[0]) if margin else None,
            )
        )
    return examples


def known_positive_texts(pairs: RetrievalSet) -> dict[str, frozenset[str]]:
    """Request text -> the texts of all its relevant descriptor sets.

    Keyed by text because one sentence can be a request of several clips ("There are no voices
    in this song"): its positives are then the union over those requests. In-batch negatives
    use it to drop other requests' positives that are positives of this request too.
    """
    positives: dict[str, set[str]] = {}
    for qid, doc_ids in pairs.qrels.items():
        positives.setdefault(pairs.queries[qid], set()).update(pairs.corpus[d] for d in doc_ids)
    return {text: frozenset(docs) for text, docs in positives.items()}


def batches_per_epoch(num_examples: int, batch_size: int, world_size: int = 1) -> int:
    """Full micro-batches per epoch and rank (the remainder of each shuffle is dropped)."""
    per_epoch = num_examples // (batch_size * world_size)
    if per_epoch == 0:
        raise ValueError(
            f"{num_examples} training example(s) cannot fill one batch of {batch_size} on each of "
            f"{world_size} process(es): lower train.batch_size or add training data"
        )
    return per_epoch


def batch_indices(
    micro_batch: int,
    num_examples: int,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[int]:
    """Example indices of micro-batch ``micro_batch`` (0-based over the run) on ``rank``.

    Each epoch is a fresh permutation seeded by (seed, epoch); ranks take interleaved
    slices of it (as DistributedSampler does), so no two ranks see the same example in an epoch.
    """
    per_epoch = batches_per_epoch(num_examples, batch_size, world_size)
    epoch, position = divmod(micro_batch, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_examples, generator=generator)
    start = (position * world_size + rank) * batch_size
    return order[start : start + batch_size].tolist()
