"""Recommendation: index a song catalog, then recommend songs for natural-language requests.

``catalog`` reads CSV/JSONL catalogs, ``index`` builds/appends/loads the on-disk index,
``recommender`` is the Python API, ``explain`` says why a song matched, ``hybrid`` fuses
dense and TF-IDF scores, ``select_weight`` chooses the fusion weight on validation data,
``cli`` is ``melscribe-recommend``.
"""

from .catalog import Song, load_catalog
from .hybrid import HybridRetriever, fuse_scores, zscore
from .index import (
    IndexCorruptError,
    IndexMismatchError,
    SongIndex,
    build_index,
    load_index,
    model_fingerprint,
)
from .recommender import Recommendation, Recommender

__all__ = [
    "HybridRetriever",
    "IndexCorruptError",
    "IndexMismatchError",
    "Recommendation",
    "Recommender",
    "Song",
    "SongIndex",
    "build_index",
    "fuse_scores",
    "load_catalog",
    "load_index",
    "model_fingerprint",
    "zscore",
]
