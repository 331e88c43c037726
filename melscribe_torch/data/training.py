"""Training data: records from the configured sources, a validation split by clip, training pairs.

Sources (names used in config):

- ``musiccaps``: MusicCaps training clips (``is_audioset_eval == False``), human captions.
- ``lp-musiccaps-mc``: LP-MusicCaps-MC training records, four LLM caption styles per clip.
- ``conceptcaps``: ConceptCaps synthetic captions (ids are tag-list ids, not clips).
- ``lp-musiccaps-mtt`` / ``lp-musiccaps-msd``: the paper's training data, where a user has it.

The validation split holds out whole clips (the same clip id in every source), so no
validation request shares a clip with a training request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .records import CaptionRecord
from .sampling import RetrievalSet, build_sampled_set, split_sentences, stable_seed
from .sources import (
    LP_MUSICCAPS_CAPTION_STYLES,
    DataError,
    held_out_clip_ids,
    load_conceptcaps,
    load_lp_musiccaps,
    load_musiccaps,
)

log = logging.getLogger(__name__)

TRAINING_SOURCES = ("musiccaps", "lp-musiccaps-mc", "conceptcaps", "lp-musiccaps-mtt", "lp-musiccaps-msd")


def load_training_records(root: str | Path, sources: Sequence[str]) -> list[CaptionRecord]:
    """Read the training records of each source, in the order given."""
    records: list[CaptionRecord] = []
    for source in sources:
        if source == "musiccaps":
            part = load_musiccaps(root, "train")
        elif source == "lp-musiccaps-mc":
            part = load_lp_musiccaps(root, "mc", "train", LP_MUSICCAPS_CAPTION_STYLES)
        elif source == "conceptcaps":
            part = load_conceptcaps(root)
        elif source in ("lp-musiccaps-mtt", "lp-musiccaps-msd"):
            part = load_lp_musiccaps(root, source.rsplit("-", 1)[1], "train")
        else:
            raise ValueError(f"unknown training source {source!r}; valid: {', '.join(TRAINING_SOURCES)}")
        log.info("training source %s: %d records", source, len(part))
        records += part
    if not records:
        raise DataError(f"no training records in {root} for sources {list(sources)}")
    return records


def check_no_test_clips(records: Iterable[CaptionRecord], root: str | Path) -> None:
    """Refuse training data that holds any test clip (MusicCaps eval clips = the MC test set)."""
    held_out = held_out_clip_ids(root)
    leaked = sorted({r.clip_id for r in records if r.clip_id in held_out})
    if leaked:
        raise DataError(
            f"{len(leaked)} test clip(s) found in the training data, e.g. {leaked[:5]}: "
            "training on them would inflate the MC/MC_reco results; remove them from the training sources"
        )


def is_validation_clip(clip_id: str, fraction: float, seed: int) -> bool:
    """A stable, seeded draw per clip id: the same clip lands in the same split in every source."""
    return stable_seed(f"{seed}:{clip_id}") / 2**64 < fraction


def split_by_clip(
    records: Sequence[CaptionRecord], valid_fraction: float, seed: int
) -> tuple[list[CaptionRecord], list[CaptionRecord]]:
    """(train, validation) records, holding out about ``valid_fraction`` of the clips."""
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    train, valid = [], []
    for record in records:
        (valid if is_validation_clip(record.clip_id, valid_fraction, seed) else train).append(record)
    return train, valid


def source_rank(source: str, prefixes: Sequence[str] | None) -> int | None:
    """Index of the first prefix ``source`` starts with (0 when ``prefixes`` is None), else None."""
    if prefixes is None:
        return 0
    return next((i for i, prefix in enumerate(prefixes) if source.startswith(prefix)), None)


def split_for_validation(
    records: Sequence[CaptionRecord],
    valid_fraction: float,
    seed: int,
    request_sources: Sequence[str] | None,
    layout: str,
) -> tuple[list[CaptionRecord], list[CaptionRecord]]:
    """(train, validation) records for :func:`build_validation_set`.

    With ``one_per_clip`` only held-out clips that can give a request stay out of training:
    the others (for example ConceptCaps tag lists when ConceptCaps gives no requests) would
    never be used, and no validation request shares their id.
    """
    train, valid = split_by_clip(records, valid_fraction, seed)
    if layout != "one_per_clip" or request_sources is None:
        return train, valid
    requesting = {r.clip_id for r in valid if source_rank(r.source, request_sources) is not None}
    train += [r for r in valid if r.clip_id not in requesting]
    return train, [r for r in valid if r.clip_id in requesting]


def build_training_pairs(
    records: Sequence[CaptionRecord],
    *,
    seed: int,
    docs_per_query: int,
    rewrite: Callable[[str, str, Sequence[str]], str] | None = None,
) -> RetrievalSet:
    """Requests and sampled descriptor sets for training; empty descriptor sets are dropped and counted.

    Human captions often have sentences that contain none of their descriptors: the paper's
    sampling then yields the empty set, which teaches nothing. ``seed`` and ``docs_per_query``
    are ``data.pair_seed`` and ``data.docs_per_query``. ``rewrite``: see
    :func:`~melscribe_torch.data.sampling.build_sampled_set`.
    """
    pairs = build_sampled_set(
        records, seed=seed, docs_per_query=docs_per_query, name="train", rewrite=rewrite
    )
    empty_ids = {doc_id for doc_id, text in pairs.corpus.items() if not text.strip()}
    dropped_pairs = 0
    for qid in list(pairs.qrels):
        kept = pairs.qrels[qid] - empty_ids
        dropped_pairs += len(pairs.qrels[qid]) - len(kept)
        if kept:
            pairs.qrels[qid] = kept
        else:
            del pairs.qrels[qid]
            del pairs.queries[qid]
    for doc_id in empty_ids:
        del pairs.corpus[doc_id]
    log.info(
        "training pairs: %d requests, %d descriptor sets; dropped %d pairs with an empty descriptor set",
        len(pairs.queries), len(pairs.corpus), dropped_pairs,
    )
    if not pairs.queries:
        raise DataError("training data is empty after dropping empty descriptor sets: check the training sources")
    return pairs


VALIDATION_LAYOUTS = ("one_per_clip", "all_sentences")


def build_validation_set(
    records: Sequence[CaptionRecord],
    seed: int,
    request_sources: Sequence[str] | None,
    layout: str,
    rewrite: Callable[[str, str, Sequence[str]], str] | None = None,
    name: str = "validation",
) -> RetrievalSet:
    """A validation set from held-out clips, shaped like the test sets.

    ``request_sources`` and ``layout`` are ``data.valid_request_sources`` and ``data.valid_layout``.
    ``one_per_clip`` (the default) mirrors MC / MC_reco: each test clip gives one request (a
    single-sentence LLM caption) and one descriptor set, so no two documents describe the
    same music. Here each held-out clip gives one request: the first sentence with a non-empty
    set of its record from the earliest of ``request_sources`` (source prefixes, in order of
    preference; all when None), and the corpus is those sets.

    ``all_sentences`` (the earlier layout) keeps every sentence of the request sources as a
    request and every non-empty sampled set of every held-out record in the corpus. A clip then
    has many near-identical sets (its other sentences and caption styles), so the set rewards
    telling apart sets of the same music, which the test sets never ask for.

    ``rewrite`` changes each sentence before its set is drawn (see
    :func:`~melscribe_torch.data.sampling.build_sampled_set`).

    Raises:
        DataError: no request is left (names the sources asked for).
    """
    if layout not in VALIDATION_LAYOUTS:
        raise ValueError(f"unknown validation layout {layout!r}; valid: {', '.join(VALIDATION_LAYOUTS)}")

    def wanted(source: str) -> bool:
        return source_rank(source, request_sources) is not None

    if layout == "one_per_clip":
        # Per clip, the record of the earliest source in request_sources (file order breaks ties).
        chosen: dict[str, tuple[int, CaptionRecord]] = {}  # clip -> (source rank, record)
        for record in records:
            rank = source_rank(record.source, request_sources)
            if rank is not None and rank < chosen.get(record.clip_id, (rank + 1,))[0]:
                chosen[record.clip_id] = (rank, record)
        records = [record for _, record in chosen.values()]
    full = build_sampled_set(
        records, seed=seed, docs_per_query=1, name=f"{name}-{seed}", rewrite=rewrite
    )
    # build_sampled_set numbers requests in record order, one per sentence.
    request_record = [i for i, r in enumerate(records) for _ in split_sentences(r.caption)]
    if len(request_record) != len(full.queries):
        raise RuntimeError("build_sampled_set no longer makes one request per sentence")
    empty_ids = {doc_id for doc_id, text in full.corpus.items() if not text.strip()}
    out = RetrievalSet(name=full.name)
    taken: set[int] = set()
    for qid, index in zip(list(full.queries), request_record):
        relevant = full.qrels[qid] - empty_ids
        if not relevant or not wanted(records[index].source):
            continue
        if layout == "one_per_clip":
            if index in taken:
                continue
            taken.add(index)
        out.queries[qid] = full.queries[qid]
        out.qrels[qid] = relevant
    kept_docs = set().union(*out.qrels.values()) if layout == "one_per_clip" and out.qrels else None
    out.corpus = {
        d: t for d, t in full.corpus.items()
        if d not in empty_ids and (kept_docs is None or d in kept_docs)
    }
    if not out.queries:
        raise DataError(
            f"no validation requests from sources {list(request_sources or [])} among "
            f"{len(records)} held-out records: set data.valid_request_sources to sources "
            "you train on, or raise data.valid_fraction"
        )
    return out
