"""The served state: one model, the current index generation, the micro-batcher, reloads.

The model is loaded once. A reload reads the index directory again (after
``melscribe-recommend index --append``), checks it was built with the served model, warms it
up, and only then replaces the current generation in one assignment: requests already
batched finish on the old generation, later ones use the new one, none fails. A failed reload
leaves the old generation serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from .. import __version__
from ..recommend.index import MANIFEST, check_compatible, load_index
from ..recommend.recommender import RETRIEVERS, Recommendation, Recommender
from .batching import MicroBatcher

log = logging.getLogger(__name__)

# Keys of an index manifest that /version shows (the file list and checksums stay private).
MANIFEST_SUMMARY = (
    "format_version",
    "created",
    "appended_from",
    "package_version",
    "num_songs",
    "num_descriptor_sets",
    "num_descriptors",
    "dim",
    "dtype",
    "score",
    "ann",
)


class Generation:
    """One loaded index with its recommender, and the song links it shows.

    Args:
        recommender: The recommender over this index.
    """

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender
        self.manifest = recommender.index.manifest
        self.links = {s.song_id: s.link for s in recommender.index.songs if s.link}

    def recommend_batch(
        self, texts: Sequence[str], k: int, retriever: str
    ) -> list[list[Recommendation]]:
        return self.recommender.recommend_batch(texts, k, retriever)

    def score_type(self, retriever: str) -> str:
        """What the score of ``retriever`` means, for the client."""
        reranker = self.recommender.reranker
        if reranker is not None:  # an ensemble teacher adds weighted cosines to the logit
            weights = ("dense_weight", "tfidf_weight", "second_dense_weight")
            added = any(getattr(reranker, weight, 0) for weight in weights)
            return "rerank ensemble score" if added else "rerank logit"
        if retriever == "dense":
            return "cosine" if self.recommender.index.score == "cos" else "dot product"
        if retriever == "lexical":
            return "tf-idf cosine"
        return "fused z-score" if self.recommender.method == "zscore" else "reciprocal-rank fusion"

    def warm_up(self, retrievers: Sequence[str]) -> None:
        """Answer one request per retriever, so that the first client does not pay for the
        lazy set-up (the TF-IDF fit, the first matmul)."""
        for retriever in retrievers:
            self.recommend_batch(["warm up"], 1, retriever)


class RecommendService:
    """What the web app calls: recommend through the micro-batcher, describe, reload.

    Args:
        recommender: The loaded recommender (model and first index generation).
        index_dir: The index directory, read again on reload.
        default_retriever: Used when a request names none.
        max_batch / max_wait_s: Micro-batching (see `MicroBatcher`).
        verify: Check index checksums on reload.
        settings: Serving settings shown by /version (retriever weights, device, precision).
    """

    def __init__(
        self,
        recommender: Recommender,
        index_dir: str | Path,
        *,
        default_retriever: str,
        max_batch: int,
        max_wait_s: float,
        verify: bool,
        settings: dict,
    ) -> None:
        if default_retriever not in RETRIEVERS:
            raise ValueError(
                f"unknown retriever {default_retriever!r}; valid: {', '.join(RETRIEVERS)}"
            )
        self.index_dir = Path(index_dir)
        self.default_retriever, self.verify, self.settings = default_retriever, verify, settings
        # The model the first index was checked against; every reloaded index must match it.
        self._model = recommender.index.manifest["model"]
        self._encoder = recommender.encoder
        self._options = {
            "alpha": recommender.alpha,
            "method": recommender.method,
            "backend": recommender.backend,
            "ef_search": recommender.ef_search,
            "nprobe": recommender.nprobe,
            "device": recommender.device,
            "explain_top": recommender.explain_top,
            "batch_size": recommender.batch_size,
            "precision": recommender.precision,
            "max_ngram": recommender.max_ngram,
            "rerank": recommender.reranker,  # the loaded cross-encoder, reused on reload
            "rerank_depth": recommender.rerank_depth,
        }
        self._used = frozenset({default_retriever})
        self._reload_lock = threading.Lock()
        self._stamp = self._manifest_stamp()
        generation = Generation(recommender)
        generation.warm_up(sorted(self._used))
        self.generation = generation
        self.reloads = 0
        self.batcher = MicroBatcher(lambda: self.generation, max_batch, max_wait_s)
        self._stop = threading.Event()

    def submit(self, texts: Sequence[str], k: int, retriever: str) -> list[Future]:
        """Queue requests; each future resolves to ``(generation, recommendations)``."""
        if retriever not in self._used:  # a new set, not add(): a reload may be iterating it
            self._used = self._used | {retriever}
        return [self.batcher.submit(text, k, retriever) for text in texts]

    def version(self) -> dict:
        generation = self.generation
        return {
            "package_version": __version__,
            "model": generation.manifest["model"],
            "index": {
                "directory": str(self.index_dir),
                **{k: generation.manifest[k] for k in MANIFEST_SUMMARY if k in generation.manifest},
            },
            "serving": {
                "default_retriever": self.default_retriever,
                **self.settings,
                "max_batch": self.batcher.max_batch,
                "max_wait_ms": self.batcher.max_wait_s * 1000,
                "reloads": self.reloads,
                "mean_batch_size": _mean(self.batcher.batch_sizes),
            },
        }

    def reload(self) -> dict:
        """Load the index directory again and swap it in; returns the new manifest summary.

        Raises:
            IndexCorruptError / IndexMismatchError / FileNotFoundError: the directory holds no
                usable index for the served model; the old generation keeps serving.
        """
        with self._reload_lock:
            stamp = self._manifest_stamp()
            index = load_index(self.index_dir, verify=self.verify)
            check_compatible(index.manifest, self._model, dim=getattr(self._encoder, "dim", None))
            generation = Generation(Recommender(index, self._encoder, **self._options))
            generation.warm_up(sorted(self._used))
            self.generation = generation  # the swap: one assignment
            self._stamp, self.reloads = stamp, self.reloads + 1
            m = index.manifest
            log.warning(
                "reloaded %s: %d songs, %d descriptor sets",
                self.index_dir,
                m["num_songs"],
                m["num_descriptor_sets"],
            )
            return self.version()["index"]

    def watch(self, interval_s: float) -> threading.Thread:
        """Reload whenever ``manifest.json`` is replaced (checked every ``interval_s``)."""

        def poll() -> None:
            while not self._stop.wait(interval_s):
                if self._manifest_stamp() == self._stamp:
                    continue
                try:
                    self.reload()
                except Exception as err:  # e.g. caught between an append's commit and cleanup
                    log.warning(
                        "index changed but cannot be reloaded yet (%s); still serving the old one",
                        err,
                    )

        thread = threading.Thread(target=poll, name="index-watch", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
        self.batcher.close()

    def _manifest_stamp(self) -> tuple | None:
        try:
            st = (self.index_dir / MANIFEST).stat()
        except FileNotFoundError:
            return None
        # os.replace gives the new manifest a new inode; mtime and size catch in-place edits
        return (st.st_ino, st.st_mtime_ns, st.st_size)


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None
