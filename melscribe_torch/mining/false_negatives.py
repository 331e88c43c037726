"""Mined negatives that the paper's own sampling would have made positives.

A training request's descriptor sets are drawn from the descriptors that occur in its sentence
(``data.sampling``). So a descriptor set of another clip whose every descriptor occurs in the
request describes the request just as well as its positives do: "There are no voices in this
song" and "no voices", "It sounds emotional, sad, passionate ..." and "sad, passionate". Both
retrievers rank such sets near the top, and in the default run 5.7% of the training tuples drew
one as their negative. MarginMSE's teacher can give them a small margin; an in-batch loss that
takes the mined negative as a column pushes the request away from a set that describes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from melscribe_torch.data import RetrievalSet
from melscribe_torch.data.descriptors import describes


def drop_described(
    negatives: Mapping[str, list[str]], pairs: RetrievalSet, k: int
) -> tuple[dict[str, list[str]], int]:
    """Drop each request's negatives that its request describes, then keep the first ``k``.

    Args:
        negatives: Request id -> negative document ids, best first (one retriever's).
        pairs: The training requests and corpus the ids refer to.
        k: Negatives to keep per request (mine more than ``k`` so that dropping still leaves ``k``).

    Returns:
        The filtered lists (request id -> at most ``k`` ids, order kept) and how many negatives
        were dropped among the first ``k`` that would have been kept otherwise.
    """
    kept: dict[str, list[str]] = {}
    dropped = 0
    for qid, doc_ids in negatives.items():
        request = pairs.queries[qid]
        described = [describes(pairs.corpus[d], request) for d in doc_ids]
        dropped += sum(described[:k])
        kept[qid] = [d for d, drop in zip(doc_ids, described) if not drop][:k]
    return kept, dropped
