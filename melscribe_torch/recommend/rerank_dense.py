"""An ensemble reranker's dense member read from the index instead of encoded again.

The ensemble teacher (``teacher/ensemble.py``) adds ``dense_weight * cos(E(q), E(d))`` to the
cross-encoder's logit. When E is the model the index was built with, the first stage has just
encoded the request and the index stores every descriptor set's embedding, so the cosines
are a dot product away; encoding the request and the candidate sets again is most of what the
ensemble costs over the cross-encoder alone (docs/distillation.md, the cascade's latency).
The scores differ from freshly encoded ones only by how the index stores its rows (float16:
at most 5e-5 in a cosine, measured on 200 requests x 2,000 MusicCaps training sets with the
default student; docs/distillation.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .index import SongIndex, model_fingerprint


def reads_index_embeddings(reranker, index: SongIndex, encoder) -> bool:
    """Whether ``reranker`` is an ensemble whose dense member is the index's model: ``encoder``
    itself (`index_ensemble`), or the same weight files (their sha256, as the manifest records
    them; hashed here) read with the same pooling and truncation length."""
    bi_encoder = getattr(reranker, "bi_encoder", None)
    if not getattr(reranker, "dense_weight", 0) or bi_encoder is None:
        return False
    if bi_encoder is encoder:
        return True
    source = getattr(reranker, "dense_source", None)
    if source is None:
        return False
    stored = index.manifest["model"].get("weights_sha256")
    if stored is None or model_fingerprint(source)["weights_sha256"] != stored:
        return False
    reads = ("pooling", "max_length")
    return all(getattr(bi_encoder, key, None) == getattr(encoder, key, -1) for key in reads)


def candidate_cosines(q_emb: torch.Tensor, set_emb, candidates: torch.Tensor) -> torch.Tensor:
    """(Q, N) cosines between each request and its candidate sets' stored embeddings.

    A negative candidate (FAISS's padding when it finds fewer) reads row 0; the reranker scores
    it -inf whatever this says.
    """
    rows = candidates.clamp(min=0)
    stored = torch.as_tensor(set_emb[rows.flatten().numpy()]).float().view(*rows.shape, -1)
    return torch.einsum(
        "qd,qnd->qn", F.normalize(q_emb.float(), dim=-1), F.normalize(stored, dim=-1)
    )


def index_ensemble(cross_encoder, encoder, members: dict):
    """``cross_encoder`` inside the ensemble teacher, its dense member the index's own model
    (``encoder`` itself), so that member reads the index (`reads_index_embeddings`): what
    ``--rerank-dense-weight`` builds. With both weights 0, ``cross_encoder`` as it is.

    Args:
        members: ``dense_weight``, ``tfidf_weight``, ``max_ngram`` (the ``ensemble`` config
            group's keys; its ``dense`` is the index's model here).
    """
    from ..teacher.ensemble import EnsembleTeacher, is_active

    if not is_active(members):
        return cross_encoder
    if cross_encoder is None:
        raise ValueError(
            "rerank_members (--rerank-dense-weight, --rerank-tfidf-weight) add to a cross-encoder's "
            "logit: give rerank (--rerank DIR)"
        )
    return EnsembleTeacher(
        cross_encoder,
        bi_encoder=encoder if members["dense_weight"] else None,
        dense_weight=members["dense_weight"],
        tfidf_weight=members["tfidf_weight"],
        max_ngram=members["max_ngram"],
    )
