"""A FAISS IVF index stored in the song index folder, so that a service does not rebuild it at every start.

Building the IVF index of a million descriptor sets (k-means, then every row assigned to its
list) takes minutes on a CPU. Without a stored one, `Recommender` with ``backend="faiss-ivf"``
builds it in memory on first use, at every start and every reload. ``melscribe-recommend
index --ann ivf`` (``build_index(..., ann="ivf")``) builds it once, with the default settings
(conf/recommend.yaml's ``ann``), and writes it as one more file of the index,
``ann_ivf-<g>.faiss``: the manifest lists it like the other files (role ``ann_ivf``, bytes and
sha256, checked on load) and records its settings under ``"ann"``. The recommender reads it
instead of building one; ``nprobe`` is a search setting and is applied after reading.

An ``--append`` to an index that has one adds the new rows to the stored lists (the k-means
centroids stay, which is how IVF takes added data) and writes a new file with the new
generation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROLE = "ann_ivf"
KINDS = ("ivf",)
# Rows handed to FAISS at a time (as float32) when adding.
ADD_BLOCK = 65536


def write_ivf(path: Path, set_emb: np.ndarray, previous: Path | None = None) -> dict:
    """Write the IVF index of ``set_emb`` to ``path``; returns the settings for the manifest.

    Args:
        path: The new file.
        set_emb: (N, H) stored set embeddings (a memory map is fine).
        previous: The index's earlier IVF file, over its first rows: only the rows after
            those are added to it; None: built from scratch (`build_faiss_index`).
    """
    import faiss

    from .faiss_index import build_faiss_index

    if previous is None:
        index = build_faiss_index(set_emb, "ivf")
    else:
        index = faiss.read_index(str(previous))
        for start in range(index.ntotal, set_emb.shape[0], ADD_BLOCK):
            index.add(np.ascontiguousarray(set_emb[start : start + ADD_BLOCK], dtype=np.float32))
    faiss.write_index(index, str(path))
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return {"kind": "ivf", "nlist": int(index.nlist), "rows": int(index.ntotal)}


def read_ivf(path: Path, num_rows: int, nprobe: int):
    """The stored IVF index, set to scan ``nprobe`` lists.

    Raises:
        ValueError: it does not hold ``num_rows`` rows (it belongs to another index state).
    """
    import faiss
    import torch

    index = faiss.read_index(str(path))
    if index.ntotal != num_rows:
        raise ValueError(
            f"{path} holds {index.ntotal} rows, the index {num_rows}; rebuild the index with --ann ivf"
        )
    index.nprobe = nprobe
    faiss.omp_set_num_threads(torch.get_num_threads())
    return index
