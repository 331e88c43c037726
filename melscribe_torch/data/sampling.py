"""From caption records to a retrieval set: requests, descriptor-set documents, relevance.

The paper's sampling (kept step for step as its released code does it, so that test sets and
numbers are comparable): each caption is split into sentences on ``". "``; each sentence is a
request; for each of ``docs_per_query`` variations, a descriptor set is drawn from the
record's descriptors that occur in the sentence (substring match), then from the others::

    k1 = random.choice(range(1, len(match) + 1)); random.sample(match, k1)            if match
    k2 = random.choice(range(0, min(len(match), len(others)) + 1)); random.sample(others, k2)  if others
    random.shuffle(...); ", ".join(...)

with one ``random.seed(seed)`` per build and records in file order. A sentence that contains
none of its descriptors gets the empty descriptor set ``""`` (kept in test sets as the paper
does; training drops it). The corpus is the unique descriptor-set texts.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .descriptors import descriptor_set_text
from .records import CaptionRecord

SENTENCE_SEPARATOR = ". "


@dataclass
class RetrievalSet:
    """Requests, documents and relevance, in the BeIR sense.

    Attributes:
        queries: Request id -> request text. Ids are ``"<clip_id>_<n>"``.
        corpus: Document id -> descriptor-set text (unique texts).
        qrels: Request id -> ids of its relevant documents.
        name: A label for reports.
    """

    queries: dict[str, str] = field(default_factory=dict)
    corpus: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, set[str]] = field(default_factory=dict)
    name: str = ""

    @property
    def num_queries(self) -> int:
        return len(self.queries)

    @property
    def num_documents(self) -> int:
        return len(self.corpus)


class _CorpusBuilder:
    """Assigns one id per distinct descriptor-set text, in order of first appearance."""

    def __init__(self, retrieval_set: RetrievalSet) -> None:
        self.retrieval_set = retrieval_set
        self.ids: dict[str, str] = {}

    def add(self, text: str) -> str:
        doc_id = self.ids.get(text)
        if doc_id is None:
            doc_id = f"d{len(self.ids)}"
            self.ids[text] = doc_id
            self.retrieval_set.corpus[doc_id] = text
        return doc_id


def stable_seed(key: str) -> int:
    """A 64-bit seed from ``key``, the same in every process (unlike ``hash``), for draws per id."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def split_sentences(caption: str) -> list[str]:
    return caption.split(SENTENCE_SEPARATOR)


def sample_descriptor_set(match: list[str], others: list[str], rng: random.Random) -> list[str]:
    """One draw of the paper's sampling (see module docstring); ``rng`` state advances as in the paper."""
    sampled: list[str] = []
    if match:
        k1 = rng.choice(range(1, len(match) + 1))
        sampled.extend(rng.sample(match, k1))
    if others:
        k2 = rng.choice(range(0, min(len(match), len(others)) + 1))
        sampled.extend(rng.sample(others, k2))
    rng.shuffle(sampled)
    return sampled


def build_sampled_set(
    records: Iterable[CaptionRecord],
    seed: int,
    docs_per_query: int = 1,
    name: str = "",
    rewrite: Callable[[str, str, Sequence[str]], str] | None = None,
) -> RetrievalSet:
    """Build requests and sampled descriptor sets with the paper's procedure.

    Args:
        records: Caption records, in file order.
        seed: Seed of the one random generator used for the whole build.
        docs_per_query: Descriptor-set variations drawn per request (1 for test sets, 3 for training).
        name: A label for the set.
        rewrite: (request id, sentence, descriptors) -> the request text, applied before the
            descriptor sets are drawn from it (``request_style.RequestRewriter``); it must not
            use this build's generator, so the draws stay the paper's.
    """
    if docs_per_query < 1:
        raise ValueError(f"docs_per_query must be >= 1, got {docs_per_query}")
    # A private generator seeded like the paper's global one gives the same draws without
    # touching the caller's global random state.
    rng = random.Random(seed)
    out = RetrievalSet(name=name)
    corpus = _CorpusBuilder(out)
    for record in records:
        descriptors = list(record.descriptors)
        for sentence in split_sentences(record.caption):
            qid = f"{record.clip_id}_{len(out.queries)}"
            if rewrite is not None:
                sentence = rewrite(qid, sentence, descriptors)
            match = [d for d in descriptors if d in sentence]
            others = [d for d in descriptors if d not in sentence]
            out.queries[qid] = sentence
            texts = {descriptor_set_text(sample_descriptor_set(match, others, rng)) for _ in range(docs_per_query)}
            # Sorted so that document ids do not depend on set iteration order.
            out.qrels[qid] = {corpus.add(text) for text in sorted(texts)}
    return out


def build_full_set(records: Iterable[CaptionRecord], name: str = "") -> RetrievalSet:
    """Each record's whole text is a request and its full descriptor set is the one relevant document."""
    out = RetrievalSet(name=name)
    corpus = _CorpusBuilder(out)
    for record in records:
        qid = f"{record.clip_id}_{len(out.queries)}"
        out.queries[qid] = record.caption
        out.qrels[qid] = {corpus.add(descriptor_set_text(record.descriptors))}
    return out
