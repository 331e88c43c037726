"""Named test sets: the paper's (mc, mc_reco, mtt, msd) and a user's own CSV (custom).

Each test set is a function of the seed; the paper's protocol builds three (seeds 0, 1, 2)
with one sampled descriptor set per request.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .records import CaptionRecord
from .sampling import RetrievalSet, build_full_set, build_sampled_set
from .sources import DataError, load_custom, load_lp_musiccaps, load_mc_test

TEST_SETS = ("mc", "mc_reco", "mtt", "msd", "custom")
SAMPLING_MODES = ("paper", "full")


def load_test_records(name: str, root: str | Path) -> list[CaptionRecord]:
    """The caption records of a paper test set (not ``custom``: see ``custom_test_set``)."""
    if name == "mc":
        return load_mc_test(root, rephrased=False)
    if name == "mc_reco":
        return load_mc_test(root, rephrased=True)
    if name in ("mtt", "msd"):
        return load_lp_musiccaps(root, name, "test")
    raise ValueError(f"unknown test set {name!r}; valid: {', '.join(TEST_SETS)}")


def make_test_set(
    records: list[CaptionRecord], name: str, sampling: str = "paper"
) -> Callable[[int], RetrievalSet]:
    """A function ``seed -> RetrievalSet`` over fixed records, with the given sampling."""
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling {sampling!r}; valid: {', '.join(SAMPLING_MODES)}")
    if not records:
        raise DataError(f"test set {name!r} has 0 requests: check the data files it reads")

    def build(seed: int) -> RetrievalSet:
        if sampling == "full":
            return build_full_set(records, name=name)
        return build_sampled_set(records, seed=seed, docs_per_query=1, name=name)

    return build


def paper_test_set(name: str, root: str | Path) -> Callable[[int], RetrievalSet]:
    return make_test_set(load_test_records(name, root), name)


def custom_test_set(
    path: str | Path,
    request_column: str,
    descriptor_column: str,
    sampling: str,
    id_column: str | None = None,
) -> Callable[[int], RetrievalSet]:
    records = load_custom(path, request_column, descriptor_column, id_column)
    return make_test_set(records, "custom", sampling)
