"""FAISS indexes over a song index's descriptor-set embeddings (the recommender's faiss-*
backends and the IVF index stored with a song index), with their defaults."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..conf import read_config

FAISS_KINDS = ("flat", "hnsw", "ivf")
# Approximate search (HNSW, IVF): the `ann` settings of conf/recommend.yaml, which says how
# they were chosen.
ANN_DEFAULTS = read_config("recommend")["ann"]
DEFAULT_HNSW_M = int(ANN_DEFAULTS["hnsw_m"])
DEFAULT_HNSW_EF_CONSTRUCTION = int(ANN_DEFAULTS["hnsw_ef_construction"])
DEFAULT_HNSW_EF_SEARCH = int(ANN_DEFAULTS["hnsw_ef_search"])
DEFAULT_IVF_LISTS_PER_SQRT = float(ANN_DEFAULTS["ivf_lists_per_sqrt"])
DEFAULT_IVF_TRAIN_PER_LIST = int(ANN_DEFAULTS["ivf_train_per_list"])
DEFAULT_IVF_NPROBE = int(ANN_DEFAULTS["ivf_nprobe"])


def ivf_lists(num_rows: int) -> int:
    """IVF lists for ``num_rows`` rows: ``DEFAULT_IVF_LISTS_PER_SQRT * sqrt(N)`` (4,000 for a million)."""
    return max(1, round(DEFAULT_IVF_LISTS_PER_SQRT * math.sqrt(num_rows)))


def build_faiss_index(
    d_emb: np.ndarray,
    kind: str = "flat",
    *,
    hnsw_m: int = DEFAULT_HNSW_M,
    ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_HNSW_EF_SEARCH,
    nlist: int | None = None,
    nprobe: int = DEFAULT_IVF_NPROBE,
    train: np.ndarray | None = None,
):
    """A FAISS inner-product index over (N, H) embeddings: exact (``flat``), ``hnsw`` or ``ivf``.

    Args:
        d_emb: The rows (any float dtype; FAISS stores float32).
        kind: "flat" (IndexFlatIP, exact), "hnsw" (IndexHNSWFlat) or "ivf" (IndexIVFFlat).
        hnsw_m, ef_construction, ef_search: HNSW graph degree, build and search breadth.
        nlist: IVF lists (default `ivf_lists`); nprobe: lists scanned per request.
        train: IVF k-means rows (default: ``DEFAULT_IVF_TRAIN_PER_LIST * nlist`` rows drawn with seed 0).

    Raises:
        ImportError: faiss is not installed (``pip install melscribe-torch[faiss]``).
    """
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "the FAISS backend needs faiss: pip install faiss-cpu (or use --backend exact)"
        ) from None
    if kind not in FAISS_KINDS:
        raise ValueError(f"unknown FAISS index kind {kind!r}; valid: {', '.join(FAISS_KINDS)}")
    # FAISS's OpenMP pool defaults to every core; share the threads torch was given instead,
    # or single requests pay for thread contention on a busy machine.
    faiss.omp_set_num_threads(torch.get_num_threads())
    num, dim = d_emb.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = min(nlist or ivf_lists(num), num)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if train is None:
            size = min(num, DEFAULT_IVF_TRAIN_PER_LIST * nlist)
            rows = np.random.default_rng(0).choice(num, size, replace=False)
            train = d_emb[np.sort(rows)]
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        index.nprobe = nprobe
    else:
        index = faiss.IndexFlatIP(dim)
    for start in range(0, num, 65536):
        index.add(np.ascontiguousarray(d_emb[start : start + 65536], dtype=np.float32))
    return index
