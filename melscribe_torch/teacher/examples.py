"""Teacher training examples, pointwise (for BCE) and grouped (for the listwise loss).

Pointwise examples are (request text, descriptor-set text, label) with label 1.0 or 0.0. Per
positive document of each request, in order: the positive (label 1), up to
``negatives_per_positive`` hard negatives drawn without replacement from the union of every
retriever's mined list, then ``random_negatives`` documents drawn uniformly from the corpus
(never a positive). Hard negatives teach the fine distinctions; random ones keep the teacher
calibrated on easy pairs, which most pseudo-labelled negatives are not but some are.

A group is (request text, [descriptor-set texts]) with ``group_size`` texts: the positive at
index 0, then up to ``group_size - 1`` distinct hard negatives drawn from the same union, then
distinct random corpus documents (never a positive) to fill the group. One group per positive.
"""

from __future__ import annotations

import random

from melscribe_torch.data import RetrievalSet


def build_teacher_examples(
    pairs: RetrievalSet,
    hard_negatives: dict[str, dict] | None,
    *,
    negatives_per_positive: int,
    random_negatives: int,
    seed: int,
) -> list[tuple[str, str, float]]:
    """Labelled pairs to train the cross-encoder teacher on; deterministic for a seed.

    Args:
        pairs: Training requests, corpus and positives.
        hard_negatives: As ``mining.read_hard_negatives`` returns (request id -> record with
            ``neg``: retriever -> doc ids), or None for random negatives only.
        negatives_per_positive: Hard negatives per positive (fewer when fewer were mined).
        random_negatives: Random corpus negatives per positive.
        seed: Seed of the sampling.

    Returns:
        (request, descriptor set, label) tuples.
    """
    if negatives_per_positive < 0 or random_negatives < 0:
        raise ValueError("negatives_per_positive and random_negatives must be >= 0")
    rng = random.Random(seed)
    doc_ids = list(pairs.corpus)
    examples: list[tuple[str, str, float]] = []
    for qid, query in pairs.queries.items():
        positives = pairs.qrels.get(qid, set())
        mined = mined_negatives(qid, pairs, hard_negatives)
        can_draw_random = len(doc_ids) > len(positives)
        for pos_id in sorted(positives):
            examples.append((query, pairs.corpus[pos_id], 1.0))
            for neg_id in rng.sample(mined, min(negatives_per_positive, len(mined))):
                examples.append((query, pairs.corpus[neg_id], 0.0))
            for _ in range(random_negatives if can_draw_random else 0):
                neg_id = rng.choice(doc_ids)
                while neg_id in positives:
                    neg_id = rng.choice(doc_ids)
                examples.append((query, pairs.corpus[neg_id], 0.0))
    return examples


def build_teacher_groups(
    pairs: RetrievalSet,
    hard_negatives: dict[str, dict] | None,
    *,
    group_size: int,
    seed: int,
) -> list[tuple[str, list[str]]]:
    """One group per positive: the positive first, then hard, then random negatives (see module).

    Args:
        pairs: Training requests, corpus and positives.
        hard_negatives: As for ``build_teacher_examples``; None for random negatives only.
        group_size: Descriptor sets per group (>= 2).
        seed: Seed of the sampling; the same seed gives the same groups.

    Returns:
        (request, [positive, negative, ...]) tuples, each list ``group_size`` long.
    """
    if group_size < 2:
        raise ValueError(f"teacher.group_size must be >= 2 (one positive, one negative), got {group_size}")
    rng = random.Random(seed)
    doc_ids = list(pairs.corpus)
    groups: list[tuple[str, list[str]]] = []
    for qid, query in pairs.queries.items():
        positives = pairs.qrels.get(qid, set())
        if positives and len(doc_ids) - len(positives) < group_size - 1:
            raise ValueError(
                f"request {qid!r}: the corpus has {len(doc_ids) - len(positives)} documents that are "
                f"not its positives, fewer than the {group_size - 1} negatives a group needs; "
                "lower teacher.group_size"
            )
        mined = mined_negatives(qid, pairs, hard_negatives)
        for pos_id in sorted(positives):
            negatives = rng.sample(mined, min(group_size - 1, len(mined)))
            taken = positives | set(negatives)
            while len(negatives) < group_size - 1:
                neg_id = rng.choice(doc_ids)
                if neg_id not in taken:
                    negatives.append(neg_id)
                    taken.add(neg_id)
            groups.append((query, [pairs.corpus[doc_id] for doc_id in [pos_id, *negatives]]))
    return groups


def mined_negatives(
    qid: str, pairs: RetrievalSet, hard_negatives: dict[str, dict] | None
) -> list[str]:
    """The union of every retriever's mined negatives of ``qid``, less its positives, sorted."""
    if hard_negatives is None or qid not in hard_negatives:
        return []
    lists = hard_negatives[qid]["neg"].values()
    mined = sorted({doc_id for ids in lists for doc_id in ids} - pairs.qrels.get(qid, set()))
    unknown = [doc_id for doc_id in mined if doc_id not in pairs.corpus]
    if unknown:
        raise KeyError(
            f"hard negatives of request {qid!r} name document(s) {unknown[:3]} that are not in the "
            "corpus: the hard-negatives file was mined on other training pairs; mine again"
        )
    return mined


def split_examples(
    examples: list[tuple[str, str, float]], valid_fraction: float, seed: int
) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """(train, validation) examples, holding out whole requests so validation requests are unseen.

    Args:
        examples: As ``build_teacher_examples`` returns.
        valid_fraction: Share of distinct requests held out, in [0, 1).
        seed: Seed of the draw.
    """
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    requests = list(dict.fromkeys(query for query, _, _ in examples))
    held_out = set(random.Random(seed).sample(requests, round(valid_fraction * len(requests))))
    train = [ex for ex in examples if ex[0] not in held_out]
    valid = [ex for ex in examples if ex[0] in held_out]
    return train, valid


def split_groups(
    groups: list[tuple[str, list[str]]], held_out: set[str]
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]]]:
    """(train, validation) groups: a group is held out when its request is in ``held_out``.

    Pass the requests ``split_examples`` held out, so both losses validate on the same requests.
    """
    return (
        [group for group in groups if group[0] not in held_out],
        [group for group in groups if group[0] in held_out],
    )
