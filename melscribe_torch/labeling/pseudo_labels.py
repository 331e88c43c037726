"""Stage 4 of GPL: training tuples and their teacher margins.

File schema (``gpl-training-data.tsv``, GPL's layout): one tuple per line, tab-separated, no
header::

    <qid>\t<pos doc id>\t<neg doc id>\t<margin>

with ``margin = CE(request, positive) - CE(request, negative)``, the cross-encoder teacher's
logit difference: the bi-encoder is trained to reproduce it with MarginMSE.

A loss that uses no margin (in-batch negatives alone) needs no teacher: the same tuples are
then written without margins to ``training-tuples.tsv`` (``<qid>\t<pos>\t<neg>``), so that
no file ever holds a margin the teacher did not give.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from melscribe_torch.data import RetrievalSet
from melscribe_torch.io import atomic_write_text

Tuple = tuple[str, str, str]


def sample_training_tuples(
    hard_negatives: dict[str, dict], num_tuples: int, seed: int
) -> list[Tuple]:
    """Draw (qid, pos_id, neg_id) tuples as GPL does; deterministic for a seed.

    Each draw: a request uniformly, one of its positives uniformly, a retriever uniformly
    among those that mined any negative for it, then one of that retriever's negatives.
    Requests with no positive or no negative are skipped.

    Args:
        hard_negatives: As ``mining.read_hard_negatives`` returns.
        num_tuples: How many tuples to draw (with replacement).
        seed: Seed of the draws.

    Returns:
        ``num_tuples`` (qid, pos_id, neg_id) tuples.
    """
    if num_tuples < 0:
        raise ValueError(f"num_tuples must be >= 0, got {num_tuples}")
    # Sorted: the draws must not depend on how the dict was built.
    usable = []
    for qid in sorted(hard_negatives):
        record = hard_negatives[qid]
        lists = [record["neg"][name] for name in sorted(record["neg"]) if record["neg"][name]]
        if record["pos"] and lists:
            usable.append((qid, record["pos"], lists))
    if not usable:
        raise ValueError(
            "no request has both a positive and a mined negative: check the hard-negatives file"
        )
    rng = random.Random(seed)
    tuples = []
    for _ in range(num_tuples):
        qid, positives, lists = rng.choice(usable)
        tuples.append((qid, rng.choice(positives), rng.choice(rng.choice(lists))))
    return tuples


def label_margins(
    cross_encoder,
    pairs: RetrievalSet,
    tuples: Sequence[Tuple],
    *,
    batch_size: int,
    precision: str,
) -> list[float]:
    """Teacher margins CE(request, pos) - CE(request, neg), one per tuple.

    Each distinct (request text, document text) pair is scored once, through
    ``cross_encoder.predict`` on the model's device: tuples repeat requests and documents.

    Args:
        cross_encoder: A ``CrossEncoder`` (anything with ``predict(pairs, batch_size=, precision=)``).
        pairs: Holds the texts of the ids in ``tuples``.
        tuples: (qid, pos_id, neg_id) tuples.
        batch_size: Pairs per forward pass.
        precision: "fp32", "bf16" or "fp16" (GPU).

    Returns:
        One float per tuple.
    """

    def text_pair(qid: str, doc_id: str) -> tuple[str, str]:
        if qid not in pairs.queries:
            raise KeyError(
                f"request {qid!r} is not in the training pairs: were the tuples drawn from other data?"
            )
        if doc_id not in pairs.corpus:
            raise KeyError(
                f"document {doc_id!r} is not in the training corpus: were the tuples drawn from other data?"
            )
        return pairs.queries[qid], pairs.corpus[doc_id]

    row_of: dict[tuple[str, str], int] = {}
    for qid, pos_id, neg_id in tuples:
        for doc_id in (pos_id, neg_id):
            row_of.setdefault(text_pair(qid, doc_id), len(row_of))
    if not row_of:
        return []
    scores = cross_encoder.predict(
        list(row_of), batch_size=batch_size, precision=precision
    ).tolist()
    return [
        scores[row_of[text_pair(qid, pos_id)]] - scores[row_of[text_pair(qid, neg_id)]]
        for qid, pos_id, neg_id in tuples
    ]


def _check_ids(i: int, ids: Sequence[str]) -> None:
    for value in ids:
        if "\t" in value or "\n" in value:
            raise ValueError(
                f"tuple {i}: id {value!r} holds a tab or newline, which the TSV cannot store"
            )


def write_gpl_training_data(
    path: str | Path, tuples: Sequence[Tuple], margins: Sequence[float]
) -> Path:
    """Write ``gpl-training-data.tsv`` (schema in the module docstring) atomically.

    Returns:
        ``path``.
    """
    if len(tuples) != len(margins):
        raise ValueError(
            f"{len(tuples)} tuples but {len(margins)} margins; pass one margin per tuple"
        )
    lines = []
    for i, ((qid, pos_id, neg_id), margin) in enumerate(zip(tuples, margins)):
        _check_ids(i, (qid, pos_id, neg_id))
        if not math.isfinite(margin):
            raise ValueError(
                f"tuple {i}: margin {margin} is not finite: check the teacher's precision"
            )
        lines.append(f"{qid}\t{pos_id}\t{neg_id}\t{float(margin)!r}\n")
    atomic_write_text(path, "".join(lines))
    return Path(path)


def _tsv_rows(path: Path, columns: Sequence[str]):
    """(line number, fields) of each non-empty line, checking the number of fields."""
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != len(columns):
                raise ValueError(
                    f"{path}:{line_no}: expected {len(columns)} tab-separated fields "
                    f"({', '.join(columns)}), got {len(fields)}"
                )
            yield line_no, fields


def read_gpl_training_data(path: str | Path) -> list[tuple[str, str, str, float]]:
    """Read ``gpl-training-data.tsv``.

    Returns:
        (qid, pos_id, neg_id, margin) per line.

    Raises:
        ValueError: A malformed row, naming ``file:line`` and what is wrong.
    """
    path = Path(path)
    rows = []
    for line_no, (qid, pos_id, neg_id, margin_text) in _tsv_rows(
        path, ("qid", "pos_id", "neg_id", "margin")
    ):
        try:
            margin = float(margin_text)
        except ValueError:
            raise ValueError(f"{path}:{line_no}: margin {margin_text!r} is not a number") from None
        if not math.isfinite(margin):
            raise ValueError(f"{path}:{line_no}: margin {margin_text!r} is not finite")
        rows.append((qid, pos_id, neg_id, margin))
    return rows


def write_training_tuples(path: str | Path, tuples: Sequence[Tuple]) -> Path:
    """Write unlabelled (qid, pos_id, neg_id) tuples, one per line, atomically."""
    lines = []
    for i, ids in enumerate(tuples):
        _check_ids(i, ids)
        lines.append("\t".join(ids) + "\n")
    atomic_write_text(path, "".join(lines))
    return Path(path)


def read_training_tuples(path: str | Path) -> list[Tuple]:
    """Read ``training-tuples.tsv``.

    Raises:
        ValueError: A malformed row, naming ``file:line``.
    """
    path = Path(path)
    return [tuple(fields) for _, fields in _tsv_rows(path, ("qid", "pos_id", "neg_id"))]
