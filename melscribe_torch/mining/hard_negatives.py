"""Stage 2 of GPL: hard negatives, the documents a retriever ranks highest that are not positives.

File schema (``hard-negatives.jsonl``, GPL's layout), one JSON object per training request::

    {"qid": "<request id>", "pos": ["<doc id>", ...], "neg": {"<retriever>": ["<doc id>", ...], ...}}

``pos`` holds the request's relevant documents; each ``neg`` list holds one retriever's top-k
documents, best first, never a positive. With ``same_clip=True`` (``mining.exclude_same_clip``) a
negative is also never a positive of another request of the same clip (another sentence of
its caption, or another caption style): those describe the same music. Mined negatives can
still be false negatives (a near-duplicate descriptor set of another clip): the teacher's
soft margins are there to absorb that, and ``false_negatives.drop_described`` removes the
sets whose every descriptor the request names.

Sharding: with ``world_size`` > 1 each rank mines the requests ``qids[rank::world_size]`` and
returns only those; the caller gathers the shards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from melscribe_torch.data import RetrievalSet
from melscribe_torch.io import atomic_write_text
from melscribe_torch.retrieval import exact_topk, lexical_matrices, sparse_topk


def mine_hard_negatives(
    q_emb: torch.Tensor,
    d_emb: torch.Tensor,
    positives: list[list[int]],
    *,
    k: int,
    score: str,
    device: torch.device | str | None = None,
    query_chunk: int = 1024,
    corpus_chunk: int = 65536,
) -> list[list[int]]:
    """Per request, the indices of its top-k documents that are not among its positives.

    Streams over request and document chunks (``retrieval.exact_topk``), so memory stays
    O(query_chunk * (corpus_chunk + k)). On CUDA the embeddings are cast to fp16 for the
    matmul (after L2-normalising in fp32 for "cos"): it halves memory traffic and uses tensor
    cores; fp16 rounding can only swap documents whose scores tie to ~1e-3.

    Args:
        q_emb: Request embeddings.
        d_emb: Document embeddings (may stay on CPU; chunks move to ``device``).
        positives: Per request, document indices that must not be returned.
        k: Negatives per request; fewer come back when the corpus minus positives is smaller.
        score: "cos" or "dot".
        device: Where the matmuls run (default: the device of ``q_emb``).

    Returns:
        Per request, document indices, best first.

    Shapes:
        q_emb (Q, H), d_emb (N, H) -> Q lists of at most min(k, N - |positives|) indices.
    """
    if len(positives) != q_emb.shape[0]:
        raise ValueError(
            f"positives has {len(positives)} entries for {q_emb.shape[0]} requests; pass one list per request"
        )
    device = torch.device(device) if device is not None else q_emb.device
    if device.type == "cuda":
        if score == "cos":
            q_emb, d_emb = F.normalize(q_emb.float(), dim=-1), F.normalize(d_emb.float(), dim=-1)
            score = "dot"
        q_emb, d_emb = q_emb.half(), d_emb.half()
    scores, indices = exact_topk(
        q_emb,
        d_emb,
        k,
        score=score,
        query_chunk=query_chunk,
        corpus_chunk=corpus_chunk,
        device=device,
        exclude=positives,
    )
    # Excluded documents come back scored -inf only when fewer than k others exist: drop them.
    keep = torch.isfinite(scores)
    return [row[mask].tolist() for row, mask in zip(indices, keep)]


def _shard(pairs: RetrievalSet, rank: int, world_size: int) -> list[str]:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return list(pairs.queries)[rank::world_size]


def clip_of(qid: str) -> str:
    """The clip id of a request id ``"<clip_id>_<n>"``."""
    return qid.rsplit("_", 1)[0]


def _positive_indices(
    pairs: RetrievalSet, qids: Sequence[str], doc_ids: Sequence[str], same_clip: bool
) -> list[list[int]]:
    """Per request, the corpus indices never to return: its positives (and its clip's, with ``same_clip``)."""
    index_of = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    clip_positives: dict[str, set[str]] = {}
    if same_clip:
        for qid, relevant in pairs.qrels.items():
            clip_positives.setdefault(clip_of(qid), set()).update(relevant)
    out = []
    for qid in qids:
        missing = [doc_id for doc_id in pairs.qrels.get(qid, ()) if doc_id not in index_of]
        if missing:
            raise KeyError(
                f"request {qid!r} has relevant document(s) {missing[:3]} that are not in the corpus"
            )
        banned = clip_positives.get(clip_of(qid), set()) | set(pairs.qrels.get(qid, ()))
        out.append(sorted(index_of[doc_id] for doc_id in banned))
    return out


def mine_with_encoder(
    encoder,
    pairs: RetrievalSet,
    *,
    k: int,
    score: str,
    batch_size: int,
    precision: str,
    same_clip: bool,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, list[str]]:
    """Hard negatives from a bi-encoder for this rank's shard of the requests.

    The settings (``k`` to ``same_clip``) have no defaults here: the ``mining`` config group
    holds them (``mining.k``, ``mining.score``, ...), and the pipeline passes them on.

    Args:
        encoder: A ``BiEncoder`` (anything with ``encode(texts, batch_size=, precision=)`` and ``device``).
        pairs: Training requests, corpus and positives.
        k: Negatives per request.
        score: "cos" or "dot".
        batch_size: Texts per forward pass when encoding.
        precision: "fp32", "bf16" or "fp16" (GPU) for encoding.
        rank, world_size: This process's shard (see module docstring).
        same_clip: Also exclude the positives of the request's clip (see module docstring).

    Returns:
        Request id -> negative document ids, best first, for the shard's requests.
    """
    qids = _shard(pairs, rank, world_size)
    doc_ids = list(pairs.corpus)
    # The whole corpus on every rank: each rank needs every document's score.
    d_emb = encoder.encode(
        [pairs.corpus[d] for d in doc_ids], batch_size=batch_size, precision=precision
    )
    q_emb = encoder.encode(
        [pairs.queries[q] for q in qids], batch_size=batch_size, precision=precision
    )
    negatives = mine_hard_negatives(
        q_emb,
        d_emb,
        _positive_indices(pairs, qids, doc_ids, same_clip),
        k=k,
        score=score,
        device=encoder.device,
    )
    return {qid: [doc_ids[i] for i in row] for qid, row in zip(qids, negatives)}


def mine_lexical(
    pairs: RetrievalSet,
    *,
    k: int,
    method: str,
    same_clip: bool,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, list[str]]:
    """Hard negatives from TF-IDF or BM25 fitted on the training corpus, for this rank's shard.

    Documents sharing no term with the request (score 0) are never returned: they are not
    hard, and their order would be arbitrary. So a request can get fewer than k negatives.

    Args:
        pairs: Training requests, corpus and positives.
        k: Negatives per request.
        method: "tfidf" (scikit-learn defaults, cosine) or "bm25" (k1=1.5, b=0.75).
        rank, world_size: This process's shard (see module docstring).
        same_clip: Also exclude the positives of the request's clip (see module docstring).

    Returns:
        Request id -> negative document ids, best first, for the shard's requests.
    """
    qids = _shard(pairs, rank, world_size)
    doc_ids = list(pairs.corpus)
    q_mat, d_mat = lexical_matrices(
        method, [pairs.queries[q] for q in qids], [pairs.corpus[d] for d in doc_ids]
    )
    positives = _positive_indices(pairs, qids, doc_ids, same_clip)
    # Ask for enough extra documents that dropping the positives still leaves k.
    extra = max((len(p) for p in positives), default=0)
    scores, indices = sparse_topk(q_mat, d_mat, k + extra)
    out: dict[str, list[str]] = {}
    for qid, row_scores, row_indices, banned in tqdm(
        zip(qids, scores.tolist(), indices.tolist(), positives),
        total=len(qids),
        desc=f"mine {method}",
        disable=len(qids) < 1000,
    ):
        banned_set = set(banned)
        kept = [i for s, i in zip(row_scores, row_indices) if s > 0 and i not in banned_set]
        out[qid] = [doc_ids[i] for i in kept[:k]]
    return out


def write_hard_negatives(
    path: str | Path, pairs: RetrievalSet, negatives: dict[str, dict[str, list[str]]]
) -> Path:
    """Write ``hard-negatives.jsonl`` (schema in the module docstring) atomically.

    Args:
        path: The file to write.
        pairs: Training requests and positives; one line per request, in its order.
        negatives: Retriever name -> request id -> negative document ids (every request).

    Returns:
        ``path``.
    """
    for name, per_request in negatives.items():
        missing = [qid for qid in pairs.queries if qid not in per_request]
        if missing:
            raise ValueError(
                f"retriever {name!r} has no negatives for {len(missing)} request(s), e.g. {missing[:3]}: "
                "gather every rank's shard before writing"
            )
    lines = [
        json.dumps(
            {
                "qid": qid,
                "pos": sorted(pairs.qrels.get(qid, ())),
                "neg": {name: list(per_request[qid]) for name, per_request in negatives.items()},
            }
        )
        for qid in pairs.queries
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


def read_hard_negatives(path: str | Path) -> dict[str, dict]:
    """Read ``hard-negatives.jsonl``.

    Returns:
        Request id -> ``{"qid": ..., "pos": [...], "neg": {retriever: [...]}}``, in file order.

    Raises:
        ValueError: A malformed line, naming ``file:line`` and what is wrong.
    """
    path = Path(path)
    out: dict[str, dict] = {}
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{where}: not valid JSON ({err.msg}); each line must be one JSON object"
                ) from None
            problem = _record_problem(record)
            if problem:
                raise ValueError(f"{where}: {problem}")
            if record["qid"] in out:
                raise ValueError(f"{where}: request {record['qid']!r} appears twice")
            out[record["qid"]] = record
    return out


def _is_id_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _record_problem(record) -> str | None:
    """What is wrong with one parsed line, or None."""
    if not isinstance(record, dict):
        return "expected a JSON object with keys qid, pos, neg"
    missing = [key for key in ("qid", "pos", "neg") if key not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}; expected keys qid, pos, neg"
    if not isinstance(record["qid"], str):
        return f"field 'qid' must be a string, got {record['qid']!r:.40}"
    if not _is_id_list(record["pos"]):
        return "field 'pos' must be a list of document id strings"
    neg = record["neg"]
    if not isinstance(neg, dict) or not all(_is_id_list(v) for v in neg.values()):
        return "field 'neg' must map retriever names to lists of document id strings"
    return None
