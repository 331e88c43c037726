"""Recommendation: index a song catalog, then recommend songs for natural-language requests.

``catalog`` reads CSV/JSONL catalogs, ``index`` is the on-disk index (its format, loading),
``index_write`` builds it or appends to it,
``recommender`` is the Python API, ``explain`` says why a song matched, ``select_weight``
chooses the hybrid's fusion weight on validation data, ``cli`` is ``melscribe-recommend``.
Search, TF-IDF and score fusion live in ``melscribe_torch.retrieval``.
"""

from .catalog import Song, load_catalog
from .index import (
    IndexCorruptError,
    IndexMismatchError,
    SongIndex,
    load_index,
    model_fingerprint,
)
from .index_write import build_index
from .recommender import Recommendation, Recommender

__all__ = [
    "IndexCorruptError",
    "IndexMismatchError",
    "Recommendation",
    "Recommender",
    "Song",
    "SongIndex",
    "build_index",
    "load_catalog",
    "load_index",
    "model_fingerprint",
]
