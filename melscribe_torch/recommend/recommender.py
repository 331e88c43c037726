"""The Python API: load an index, recommend songs for a natural-language request.

    rec = Recommender.load("my_index")
    for r in rec.recommend("upbeat tropical music with steel drums", k=5, retriever="hybrid"):
        print(r.song_id, r.score, r.explanation)

Search runs over the distinct descriptor sets; the songs of each returned set follow in
catalog order, so songs sharing a descriptor set share a score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..conf import read_config, read_option
from ..retrieval import (
    TfidfScorer,
    check_fusion,
    check_max_ngram,
    dense_scores,
    fused_topk,
)
from ..retrieval.rerank import rerank_top
from . import ann_store
from .dense_search import SearchMatrix
from .explain import explain
from .faiss_index import DEFAULT_HNSW_EF_SEARCH, DEFAULT_IVF_NPROBE, build_faiss_index
from .index import Encoder, SongIndex, check_compatible, load_index, model_fingerprint
from .rerank_dense import candidate_cosines, index_ensemble, reads_index_embeddings

log = logging.getLogger(__name__)

RETRIEVERS = ("dense", "lexical", "hybrid")
# "faiss" is "faiss-flat" (exact inner product); "faiss-hnsw" and "faiss-ivf" trade recall for speed.
BACKENDS = ("exact", "faiss", "faiss-flat", "faiss-hnsw", "faiss-ivf")
# Fusion weight of the dense side, fusion method and longest word n-gram of the TF-IDF side
# (lexical and hybrid) when none is given: the hybrid config group's, which melscribe-evaluate
# uses too (conf/hybrid/default.yaml says how they were chosen).
HYBRID_DEFAULTS = read_option("hybrid")
DEFAULT_ALPHA = float(HYBRID_DEFAULTS["alpha"])
DEFAULT_METHOD = str(HYBRID_DEFAULTS["method"])
DEFAULT_MAX_NGRAM = int(HYBRID_DEFAULTS["max_ngram"])
# First-stage descriptor sets a reranking cross-encoder reads per request (`rerank=`): the
# rerank config group's depth, which melscribe-evaluate's rerank: retrievers use too.
DEFAULT_RERANK_DEPTH = int(read_option("rerank")["depth"])
# How requests are answered when a caller says nothing (k, retriever, backend, explanations,
# encoding): recommend.yaml's query block, which melscribe-recommend query and serve read too.
QUERY_DEFAULTS = read_config("recommend")["query"]


@dataclass
class Recommendation:
    """One recommended song.

    Attributes:
        song_id / title / artist: From the catalog.
        score: The retriever's score (cosine for dense, TF-IDF cosine for lexical, fused for
            hybrid); with a reranker, the cross-encoder's logit (below every reranked set past
            the rerank depth).
        descriptors: The song's descriptors.
        explanation: Its descriptors most similar to the request, ``[(descriptor, cosine), ...]``.
    """

    song_id: str
    title: str | None
    artist: str | None
    score: float
    descriptors: list[str]
    explanation: list[tuple[str, float]]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["explanation"] = [{"descriptor": d, "score": s} for d, s in self.explanation]
        return out


class Recommender:
    """Recommends songs of an index for requests.

    Args:
        index: A loaded `SongIndex`.
        encoder: The model the index was built with (``encode(texts, batch_size=, precision=)``).
        alpha: Dense weight of the hybrid retriever.
        method: Hybrid fusion, "zscore" or "rrf".
        backend: "exact" (chunked exact search), "faiss" / "faiss-flat", "faiss-hnsw" or "faiss-ivf"
            (need faiss-cpu; hnsw and ivf are approximate).
        device: Where exact search runs; None: `pick_device` (CUDA, then Apple MPS, then CPU).
        explain_top: Descriptors per explanation.
        max_ngram: Longest word n-gram of the TF-IDF side (lexical and hybrid retrievers).
        ef_search: HNSW search breadth (backend "faiss-hnsw").
        nprobe: IVF lists scanned per request (backend "faiss-ivf").
        rerank: A cross-encoder (or its directory), or an ``EnsembleTeacher`` (fitted here on
            the catalog; a dense member with the index's weights reads the index's embeddings:
            ``rerank_dense.py``), that reorders the retriever's first ``rerank_depth`` sets.
        rerank_depth: First-stage descriptor sets the cross-encoder reads per request.
        rerank_members: The ensemble teacher's members added to ``rerank``'s logit
            (``dense_weight``, ``tfidf_weight``, ``max_ngram``), its dense member ``encoder``.
    """

    def __init__(
        self,
        index: SongIndex,
        encoder: Encoder,
        alpha: float = DEFAULT_ALPHA,
        method: str = DEFAULT_METHOD,
        backend: str = QUERY_DEFAULTS["backend"],
        device: str | torch.device | None = None,
        explain_top: int = QUERY_DEFAULTS["explain_top"],
        batch_size: int = QUERY_DEFAULTS["batch_size"],
        precision: str = QUERY_DEFAULTS["precision"],
        max_ngram: int = DEFAULT_MAX_NGRAM,
        ef_search: int = DEFAULT_HNSW_EF_SEARCH,
        nprobe: int = DEFAULT_IVF_NPROBE,
        rerank=None,
        rerank_depth: int = DEFAULT_RERANK_DEPTH,
        rerank_members: dict | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        check_fusion(alpha, method)
        if isinstance(explain_top, bool) or not isinstance(explain_top, int) or explain_top < 0:
            raise ValueError(f"explain_top must be an integer >= 0 (descriptors per explanation), got {explain_top!r}")
        self.index, self.encoder = index, encoder
        self.alpha, self.method, self.backend = alpha, method, backend
        if device is None:
            # imported here: melscribe_torch.models pulls in transformers, which importing this module need not
            from ..models.device import pick_device

            device = pick_device()
        self.device = torch.device(device)
        self.explain_top, self.batch_size, self.precision = explain_top, batch_size, precision
        check_max_ngram(max_ngram)  # now, not at the first lexical search
        self.max_ngram = max_ngram
        self.ef_search, self.nprobe = ef_search, nprobe
        if rerank_depth < 1:
            raise ValueError(f"rerank_depth must be >= 1, got {rerank_depth}")
        if isinstance(rerank, (str, Path)):
            from ..models import CrossEncoder

            rerank = CrossEncoder.from_pretrained(str(rerank), device=self.device)
        if rerank_members:  # the ensemble teacher around the cross-encoder, its dense member ``encoder``
            rerank = index_ensemble(rerank, encoder, rerank_members)
        if hasattr(rerank, "fit"):  # an ensemble's TF-IDF member: idf of this catalog
            rerank.fit(index.set_texts)
        self.reranker, self.rerank_depth = rerank, rerank_depth
        self._rerank_reads_index = reads_index_embeddings(rerank, index, encoder)
        self._lexical: TfidfScorer | None = None
        self._faiss = None
        # Once per load: the stored rows as a tensor on the search device (no per-request copy).
        self._matrix = SearchMatrix(
            index.set_emb, self.device, max_norm=1.0 if index.manifest.get("normalized") else None
        )
        self._descriptor_rows = index.descriptor_rows()

    @classmethod
    def load(
        cls, index_dir: str | Path, model: str | None = None, *, verify: bool = True, **kwargs
    ) -> Recommender:
        """Load an index and its model.

        Args:
            index_dir: The index directory.
            model: A model directory or ``package:<module>``; None: the model the index names.
                A model other than the index's (weights hash or dimension) is an error.
            verify: Check the index's and the model's file checksums (index sizes are always checked).
            **kwargs: Passed to `Recommender` (alpha, method, max_ngram, backend, device,
                explain_top, rerank, rerank_depth, rerank_members).
        """
        from ..models import BiEncoder

        index = load_index(index_dir, verify=verify)
        built = index.manifest["model"]
        if model is None:
            model = built["path"] if Path(built["path"]).is_dir() else built["name_or_path"]
        fingerprint = model_fingerprint(model)
        check_compatible(index.manifest, fingerprint, dim=None)
        encoder = BiEncoder.from_pretrained(model, device=kwargs.get("device"), verify=verify)
        check_compatible(index.manifest, fingerprint, dim=encoder.dim)
        return cls(index, encoder, **kwargs)

    def recommend(
        self, text: str, k: int = QUERY_DEFAULTS["k"], retriever: str = QUERY_DEFAULTS["retriever"]
    ) -> list[Recommendation]:
        """The ``k`` best songs for one request.

        Args:
            text: The request, e.g. "upbeat tropical music with steel drums".
            k: How many songs (fewer when the catalog is smaller; for "lexical", only songs
                sharing a word with the request: none when no word matches).
            retriever: "dense", "lexical" or "hybrid".
        """
        return self.recommend_batch([text], k, retriever)[0]

    def recommend_batch(
        self,
        texts: Sequence[str],
        k: int = QUERY_DEFAULTS["k"],
        retriever: str = QUERY_DEFAULTS["retriever"],
    ) -> list[list[Recommendation]]:
        """`recommend` for many requests at once (requests encoded together)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of requests; for one request use recommend(text)")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"request {i + 1} is empty: write what you want to hear, e.g. 'calm piano for studying'"
                )
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {retriever!r}; valid: {', '.join(RETRIEVERS)}")
        if not texts:
            return []
        q_emb = self._encode(texts)
        # k descriptor sets hold at least k songs (every set has one).
        num_sets = min(k, len(self.index.set_texts))
        if self.reranker is None:
            scores, rows = self._search(texts, q_emb, num_sets, retriever)
        else:
            depth = min(self.rerank_depth, len(self.index.set_texts))
            _, candidates = self._search(texts, q_emb, max(num_sets, depth), retriever)
            known = None  # an ensemble's dense cosines, when the index holds its embeddings
            if self._rerank_reads_index:
                known = candidate_cosines(q_emb, self.index.set_emb, candidates[:, :depth])
            scores, rows = rerank_top(
                self.reranker,
                texts,
                self.index.set_texts,
                candidates,
                depth,
                batch_size=self.batch_size,
                precision=self.precision,
                dense_scores=known,
            )
            scores, rows = scores[:, :num_sets], rows[:, :num_sets]
        # A lexical score of 0 means no word in common: such sets are not matches, whatever
        # order the search returned them in (an empty list says nothing matched).
        min_score = 0.0 if retriever == "lexical" and self.reranker is None else None
        return [
            self._songs(q_emb[i], scores[i].tolist(), rows[i].tolist(), k, min_score)
            for i in range(len(texts))
        ]

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        q_emb = (
            self.encoder.encode(list(texts), batch_size=self.batch_size, precision=self.precision)
            .float()
            .cpu()
        )
        if q_emb.shape[-1] != self.index.dim:
            raise ValueError(
                f"the model makes {q_emb.shape[-1]}-dimensional embeddings, the index holds {self.index.dim}"
            )
        return F.normalize(q_emb, dim=-1) if self.index.score == "cos" else q_emb

    def _search(
        self, texts, q_emb, num_sets: int, retriever: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        set_emb = self.index.set_emb
        if retriever == "dense":
            if self.backend != "exact":
                return self._faiss_search(q_emb, num_sets)
            # stored embeddings are already normalised for "cos": a dot product suffices
            return self._matrix.topk(q_emb, num_sets)
        lexical = self._lexical_scorer()
        if retriever == "lexical":
            return lexical.topk(list(texts), num_sets)
        return fused_topk(
            lambda a, b: dense_scores(q_emb[a:b], set_emb, device=self.device),
            lambda a, b: lexical.scores(texts[a:b]),
            len(texts),
            set_emb.shape[0],
            num_sets,
            self.alpha,
            self.method,
        )

    def _lexical_scorer(self) -> TfidfScorer:
        if self._lexical is None:
            self._lexical = TfidfScorer(self.index.set_texts, self.max_ngram)
        return self._lexical

    def _faiss_search(
        self, q_emb: torch.Tensor, num_sets: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._faiss is None:
            kind = {"faiss-hnsw": "hnsw", "faiss-ivf": "ivf"}.get(self.backend, "flat")
            stored = self.index.manifest["files"].get(ann_store.ROLE) if kind == "ivf" else None
            if stored:  # built at index time (--ann ivf): read, not rebuilt
                self._faiss = ann_store.read_ivf(
                    self.index.directory / stored["name"], len(self.index.set_texts), self.nprobe
                )
            else:
                self._faiss = build_faiss_index(
                    self.index.set_emb, kind, ef_search=self.ef_search, nprobe=self.nprobe
                )
        scores, rows = self._faiss.search(
            np.ascontiguousarray(q_emb.numpy(), dtype=np.float32), num_sets
        )
        return torch.from_numpy(scores), torch.from_numpy(rows)

    def _songs(
        self,
        q_emb: torch.Tensor,
        scores: list[float],
        rows: list[int],
        k: int,
        min_score: float | None = None,
    ) -> list[Recommendation]:
        out: list[Recommendation] = []
        for score, set_row in zip(scores, rows):
            if set_row < 0:  # faiss pads with -1 when it finds fewer
                continue
            if min_score is not None and score <= min_score:
                break  # scores come sorted: none after this one matches either
            for song_row in self.index.songs_of_set(set_row):
                song = self.index.songs[song_row]
                out.append(
                    Recommendation(
                        song_id=song.song_id,
                        title=song.title,
                        artist=song.artist,
                        score=round(float(score), 4),
                        descriptors=list(song.descriptors),
                        explanation=explain(
                            q_emb,
                            song.descriptors,
                            self._descriptor_rows,
                            self.index.descriptor_emb,
                            self.explain_top,
                        ),
                    )
                )
                if len(out) == k:
                    return out
        return out

