"""An ensemble teacher: the cross-encoder's logit plus weighted retriever scores of the same pair.

    score(q, d) = CE(q, d) + dense_weight * cos(E(q), E(d)) + tfidf_weight * tfidf_cos(q, d)
                  + second_dense_weight * cos(E2(q), E2(d))

A teacher only teaches what the student does not know already. A cross-encoder trained for an
hour on a CPU reranks no better than the student (docs/distillation.md), but it errs on other
requests than a bi-encoder and than word overlap do, so a weighted sum of the three orders
candidates better than any one of them (Hofstätter et al. 2020, where MarginMSE comes from,
distil an ensemble of teachers too, there of cross-encoders). The sum is linear, so a margin
score(q, p) - score(q, n) is the sum of the members' margins: labelling and reranking read the
same scorer through ``predict``.

The TF-IDF member needs its idf from a corpus (``fit``): the training corpus when labelling,
the corpus searched when reranking. The second dense member E2 is a bi-encoder that did not
learn from the student's data (a pretrained model, e.g. all-mpnet-base-v2): its errors are
its own, where the first dense member is usually the student that the teacher reranks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from ..retrieval.lexical import TfidfScorer

# Descriptor sets whose dense embeddings are kept (least recently used dropped first): a
# reranker meets the same catalog's sets request after request, a labeller the same training
# sets tuple after tuple. 50,000 MiniLM embeddings take 77 MB.
SET_EMBEDDING_CACHE_SIZE = 50_000


class EnsembleTeacher:
    """A cross-encoder's logits plus weighted bi-encoder and TF-IDF cosines, pair by pair.

    Args:
        cross_encoder: anything with ``predict(pairs, batch_size=, precision=)`` -> (N,) logits.
        bi_encoder: a ``BiEncoder`` for the dense member, or None (then ``dense_weight`` must be 0).
        dense_weight: weight of the bi-encoder's cosine (0: no dense member).
        second_bi_encoder: a ``BiEncoder`` for the second dense member, or None (then
            ``second_dense_weight`` must be 0).
        second_dense_weight: weight of its cosine (0: no second dense member).
        tfidf_weight: weight of the TF-IDF cosine (0: no lexical member).
        max_ngram: TF-IDF terms are word n-grams of 1 to ``max_ngram`` words.
        dense_source: where ``bi_encoder`` was loaded from (a directory or ``package:``), so a
            recommender whose index was built with the same weights can hand over the cosines
            it already has (``recommend/rerank_dense.py``); None: unknown.
    """

    def __init__(
        self,
        cross_encoder,
        *,
        bi_encoder=None,
        dense_weight: float,
        tfidf_weight: float,
        max_ngram: int,
        dense_source: str | None = None,
        second_bi_encoder=None,
        second_dense_weight: float = 0.0,
    ) -> None:
        if dense_weight and bi_encoder is None:
            raise ValueError(f"dense_weight is {dense_weight} but no bi-encoder is given: set ensemble.dense")
        if second_dense_weight and second_bi_encoder is None:
            raise ValueError(
                f"second_dense_weight is {second_dense_weight} but no bi-encoder is given: "
                "set ensemble.second_dense"
            )
        self.cross_encoder = cross_encoder
        self.bi_encoder = bi_encoder
        self.dense_weight = float(dense_weight)
        self.second_bi_encoder = second_bi_encoder
        self.second_dense_weight = float(second_dense_weight)
        self.tfidf_weight = float(tfidf_weight)
        self.max_ngram = max_ngram
        self.dense_source = dense_source
        self.tfidf: TfidfScorer | None = None
        # one cache per dense member ("dense", "second_dense"):
        # (set text, precision) -> unit embedding
        self._set_embeddings: dict[str, OrderedDict[tuple[str, str], torch.Tensor]] = {}

    def fit(self, corpus: Sequence[str]) -> EnsembleTeacher:
        """Fit the TF-IDF member's vocabulary and idf on ``corpus`` (the descriptor sets)."""
        if self.tfidf_weight:
            self.tfidf = TfidfScorer(corpus, self.max_ngram)
        return self

    def predict(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        batch_size: int,
        precision: str,
        dense_scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(N,) float32 scores of (request, descriptor set) pairs, in input order.

        Args:
            dense_scores: (N,) the dense member's cosines of these pairs when the caller already
                has them (a first stage that searched with the same model); None: encoded here.
        """
        scores = self.cross_encoder.predict(pairs, batch_size=batch_size, precision=precision)
        if not len(pairs):
            return scores
        queries, documents = (list(side) for side in zip(*pairs))
        if self.dense_weight:
            if dense_scores is None:
                dense_scores = self._cosines("dense", queries, documents, batch_size, precision)
            scores = scores + self.dense_weight * dense_scores.float()
        if self.second_dense_weight:
            second = self._cosines("second_dense", queries, documents, batch_size, precision)
            scores = scores + self.second_dense_weight * second.float()
        if self.tfidf_weight:
            if self.tfidf is None:
                raise RuntimeError("the TF-IDF member has no idf yet: call fit(corpus) first")
            q_mat = self.tfidf.transform(queries)
            d_mat = self.tfidf.transform(documents)
            cosine = np.asarray(q_mat.multiply(d_mat).sum(axis=1), dtype=np.float32).ravel()
            scores = scores + self.tfidf_weight * torch.from_numpy(cosine)
        return scores

    def _cosines(
        self, member: str, queries: list[str], documents: list[str], batch_size: int, precision: str
    ) -> torch.Tensor:
        """(N,) cosines of a dense member's ("dense", "second_dense") unit embeddings of each pair."""
        encoder = self.bi_encoder if member == "dense" else self.second_bi_encoder
        q = self._embed(encoder, queries, batch_size, precision)
        d = self._embed_sets(member, encoder, documents, batch_size, precision)
        return (q * d).sum(dim=1)

    @staticmethod
    def _encode_distinct(
        encoder, texts: list[str], batch_size: int, precision: str
    ) -> dict[str, torch.Tensor]:
        """Text -> unit embedding, each distinct text encoded once."""
        distinct = list(dict.fromkeys(texts))
        embeddings = encoder.encode(
            distinct, batch_size=batch_size, precision=precision, normalize=True
        )
        return dict(zip(distinct, embeddings))

    def _embed(self, encoder, texts: list[str], batch_size: int, precision: str) -> torch.Tensor:
        """Unit embeddings of requests: a reranked request comes once per candidate, a labelled
        one twice per tuple, and is encoded once."""
        by_text = self._encode_distinct(encoder, texts, batch_size, precision)
        return torch.stack([by_text[text] for text in texts])

    def _embed_sets(
        self, member: str, encoder, documents: list[str], batch_size: int, precision: str
    ) -> torch.Tensor:
        """Unit embeddings of descriptor sets, each encoded once while it stays in its member's
        cache."""
        cache = self._set_embeddings.setdefault(member, OrderedDict())
        missing = [text for text in documents if (text, precision) not in cache]
        if missing:
            fresh = self._encode_distinct(encoder, missing, batch_size, precision)
            cache.update(((text, precision), row.clone()) for text, row in fresh.items())
        embeddings = torch.stack([cache[(text, precision)] for text in documents])
        for text in dict.fromkeys(documents):
            cache.move_to_end((text, precision))
        while len(cache) > SET_EMBEDDING_CACHE_SIZE:
            cache.popitem(last=False)
        return embeddings


# each dense member's setting -> the setting of its weight
MEMBERS = {"dense": "dense_weight", "second_dense": "second_dense_weight"}
SECOND_DENSE_KEYS = ("second_dense", MEMBERS["second_dense"])


def is_active(settings: dict) -> bool:
    """True when the ``ensemble`` settings add any member to the cross-encoder."""
    weights = ("dense_weight", "tfidf_weight", "second_dense_weight")
    return any(settings.get(weight) for weight in weights)


def recorded_settings(settings: dict) -> dict | None:
    """The ``ensemble`` settings a run folder records for its labels: None when no member is
    added; the second dense member's keys only when it is weighted, so that folders labelled
    before it existed still resume."""
    if not is_active(settings):
        return None
    if settings.get("second_dense_weight"):
        return dict(settings)
    return {key: value for key, value in settings.items() if key not in SECOND_DENSE_KEYS}


def check_dense_member(settings: dict, aliases: dict[str, dict] | None = None) -> None:
    """Fail at once, in one line naming ``ensemble.dense`` (or ``ensemble.second_dense``), when
    a dense member is weighted but unset or cannot be loaded here (no weights are read)."""
    from ..models.aliases import model_spec
    from ..models.backbone import check_model_available

    for member, weight_key in MEMBERS.items():
        weight = settings.get(weight_key)
        if not weight:
            continue
        if not settings.get(member):
            raise ValueError(
                f"ensemble.{weight_key} is {weight} but ensemble.{member} is not set: "
                "name the bi-encoder whose cosine joins the teacher"
            )
        spec = model_spec(settings[member], aliases)
        check_model_available(spec["name_or_path"], f"ensemble.{member} ({settings[member]})")


def build_teacher_scorer(cross_encoder, settings: dict, aliases: dict[str, dict] | None = None):
    """The cross-encoder itself, or an ``EnsembleTeacher`` around it when ``settings`` add members.

    Args:
        settings: the ``ensemble`` config group: ``dense`` (a short model name or a bi-encoder
            directory, or None), ``dense_weight``, ``tfidf_weight``, ``max_ngram``,
            ``second_dense`` and ``second_dense_weight``.
    """
    if not is_active(settings):
        return cross_encoder
    check_dense_member(settings, aliases)
    from ..models.aliases import load_bi_encoder, model_spec

    encoders = {
        member: load_bi_encoder(settings[member], aliases) if settings.get(weight_key) else None
        for member, weight_key in MEMBERS.items()
    }
    dense_source = None
    if encoders["dense"] is not None:
        dense_source = model_spec(settings["dense"], aliases)["name_or_path"]
    return EnsembleTeacher(
        cross_encoder,
        bi_encoder=encoders["dense"],
        dense_weight=settings["dense_weight"],
        tfidf_weight=settings["tfidf_weight"],
        max_ngram=settings["max_ngram"],
        dense_source=dense_source,
        second_bi_encoder=encoders["second_dense"],
        second_dense_weight=settings.get("second_dense_weight", 0.0),
    )
