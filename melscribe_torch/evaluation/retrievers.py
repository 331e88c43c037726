"""Retrievers by name, as ``evaluate.py`` lists them: a baseline, a short model name, a model
directory, or ``hybrid:<model>`` (the retriever classes are in ``melscribe_torch.retrieval``).
"""

from __future__ import annotations

from ..retrieval import Bm25Retriever, DenseRetriever, HybridRetriever, Retriever, TfidfRetriever
from ..retrieval.rerank import RerankRetriever

BASELINES = {"tfidf": TfidfRetriever, "bm25": Bm25Retriever}  # lexical, fitted on each corpus searched
RERANK_PREFIX = "rerank:"


def build_retriever(
    name: str,
    model_aliases: dict[str, dict] | None = None,
    *,
    score: str,
    batch_size: int,
    precision: str,
    hybrid: dict | None = None,
    rerank: dict | None = None,
    ensemble: dict | None = None,
) -> tuple[Retriever, str]:
    """A retriever from its name: a baseline, a short model name, or a model directory / hub id.

    Args:
        name: ``"tfidf"`` or ``"bm25"``, a key of ``model_aliases`` (e.g. ``"minilm-l6"``), or a path / hub id;
            ``"hybrid:<model>"`` fuses that model with TF-IDF (``retrieval.HybridRetriever``).
        model_aliases: Short name -> ``{"name_or_path": ..., "pooling": ..., "max_length": ...}``;
            None: the package's ``model/`` config group (``models.aliases``).
        score, batch_size, precision: Ranking and encoding of dense retrievers (the evaluate
            config's ``score`` and ``encode``).
        hybrid: Fusion settings for ``hybrid:`` names: ``{"alpha": ..., "method": "zscore"|"rrf",
            "max_ngram": ...}``.
        rerank: Cascade settings for ``rerank:<cross-encoder dir>@<first stage>`` names
            (``retrieval.rerank``): ``{"depth": ...}``, the first-stage candidates reordered.
        ensemble: The reranker's score for ``rerank:`` names (the ``ensemble`` config group):
            None or zero weights, the cross-encoder's logit alone.

    Returns:
        (retriever, what it loaded: the model path or the baseline name).
    """
    if name in BASELINES:
        return BASELINES[name](), name
    from ..models import CrossEncoder
    from ..models.aliases import load_bi_encoder, model_spec

    if name.startswith(RERANK_PREFIX):
        cross_encoder_path, first_name = parse_rerank_name(name)
        if not rerank or "depth" not in rerank:
            raise ValueError(f"retriever {name!r} needs a rerank depth: set rerank.depth")
        first, source = build_retriever(
            first_name, model_aliases, score=score, batch_size=batch_size, precision=precision, hybrid=hybrid
        )
        scorer = CrossEncoder.from_pretrained(cross_encoder_path)
        if ensemble:
            from ..teacher.ensemble import build_teacher_scorer

            scorer = build_teacher_scorer(scorer, ensemble, model_aliases)
        retriever = RerankRetriever(scorer, first, int(rerank["depth"]), name, batch_size, precision)
        return retriever, f"{cross_encoder_path} over {source}"

    if name.startswith("hybrid:"):
        settings = hybrid or {}
        missing = [f"hybrid.{key}" for key in ("alpha", "method", "max_ngram") if key not in settings]
        if missing:
            raise ValueError(
                f"retriever {name!r} needs its fusion settings: set {', '.join(missing)} "
                "(the hybrid config group holds the ones chosen on validation data)"
            )
        dense, source = build_retriever(
            name.removeprefix("hybrid:"), model_aliases, score=score, batch_size=batch_size, precision=precision
        )
        retriever = HybridRetriever(
            dense.encoder, name, float(settings["alpha"]), settings["method"], int(settings["max_ngram"]),
            score, batch_size, precision,
        )
        return retriever, source
    encoder = load_bi_encoder(name, model_aliases)
    source = model_spec(name, model_aliases)["name_or_path"]
    return DenseRetriever(encoder, name=name, score=score, batch_size=batch_size, precision=precision), source


def parse_rerank_name(name: str) -> tuple[str, str]:
    """``rerank:<cross-encoder>@<first stage>`` -> (cross-encoder, first stage).

    The first ``@`` after the prefix separates the two, so a cross-encoder path must not hold one.
    """
    body = name.removeprefix(RERANK_PREFIX)
    cross_encoder, at, first_stage = body.partition("@")
    if not name.startswith(RERANK_PREFIX) or not at or not cross_encoder or not first_stage:
        raise ValueError(
            f"retriever {name!r}: write rerank:<cross-encoder dir>@<first-stage retriever>, "
            "e.g. rerank:outputs/train/<run>/cross-encoder@hybrid:outputs/train/<run>/best"
        )
    return cross_encoder, first_stage
