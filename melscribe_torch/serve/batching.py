"""Micro-batching: requests that arrive together are answered by one encoder call.

Web handlers submit one request text at a time and wait on a future; a single worker thread
takes the first waiting request, keeps collecting for at most ``max_wait_s`` (or until
``max_batch`` requests are waiting), then answers the whole group with one
``recommend_batch`` call (one encoder call) per retriever. One worker means the model never runs two
batches at once: under load, batches grow instead of threads fighting over the cores.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from ..recommend.recommender import Recommendation

log = logging.getLogger(__name__)


class Target(Protocol):
    """What answers a batch (a `Recommender`, or the service's current index generation)."""

    def recommend_batch(
        self, texts: Sequence[str], k: int, retriever: str
    ) -> list[list[Recommendation]]: ...


@dataclass
class Query:
    """One request waiting for its songs.

    Attributes:
        text: The request.
        k: Songs wanted (before excluded ids are removed).
        retriever: "dense", "lexical" or "hybrid".
        future: Resolved with ``(target, list[Recommendation])``, the target being what
            answered (or with the error).
    """

    text: str
    k: int
    retriever: str
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Groups concurrent queries into batches for one worker thread.

    Args:
        target: Called once per batch for what answers it: a reload swaps what it returns,
            and a batch already running finishes on the one it started with.
        max_batch: Most requests in one batch.
        max_wait_s: Longest time the first request of a batch waits for company.
    """

    def __init__(self, target: Callable[[], Target], max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self._target = target
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._queue: queue.Queue[Query | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self.batch_sizes: list[int] = []  # the last 1000 batches' sizes, for /version
        self._thread.start()

    def submit(self, text: str, k: int, retriever: str) -> Future:
        """Queue one request; the future resolves to ``(target, its k recommendations)``."""
        q = Query(text, k, retriever)
        self._queue.put(q)
        return q.future

    def close(self) -> None:
        """Answer what is queued, then stop the worker."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    q = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if q is None:
                    stop = True
                    break
                batch.append(q)
            self._answer(batch)
            if stop:
                return

    def _answer(self, batch: list[Query]) -> None:
        self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
        target = self._target()
        groups: dict[str, list[Query]] = {}
        for q in batch:
            groups.setdefault(q.retriever, []).append(q)
        for retriever, group in groups.items():
            try:
                results = target.recommend_batch(
                    [q.text for q in group], max(q.k for q in group), retriever
                )
            except Exception as err:  # every waiting request gets the error, the worker lives on
                log.exception("batch of %d %s requests failed", len(group), retriever)
                for q in group:
                    q.future.set_exception(err)
                continue
            for q, recs in zip(group, results):
                q.future.set_result((target, recs[: q.k]))
