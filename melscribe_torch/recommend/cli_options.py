"""melscribe-recommend's options for a `Recommender` (query and serve), and the keyword
arguments of `Recommender.load` they become."""

from __future__ import annotations

import argparse

from ..conf import read_option
from ..retrieval import FUSION_METHODS
from .faiss_index import DEFAULT_HNSW_EF_SEARCH, DEFAULT_IVF_NPROBE
from .recommender import (
    BACKENDS,
    DEFAULT_ALPHA,
    DEFAULT_MAX_NGRAM,
    DEFAULT_METHOD,
    DEFAULT_RERANK_DEPTH,
    QUERY_DEFAULTS,
    RETRIEVERS,
)

# The ensemble reranker's members when none is given: the ensemble config group's (weights 0:
# the cross-encoder alone), which melscribe-evaluate's rerank: retrievers read too.
ENSEMBLE_DEFAULTS = read_option("ensemble")


def model_path(name: str) -> str:
    """A short model name's path (``models.aliases``); anything else unchanged."""
    # imported here: melscribe_torch.models pulls in transformers, which --help and bad input need not wait for
    from ..models.aliases import model_spec

    return model_spec(name)["name_or_path"]


def add_recommender_options(p: argparse.ArgumentParser) -> None:
    """Options of the `Recommender` (query and serve)."""
    p.add_argument("--retriever", choices=RETRIEVERS, default=QUERY_DEFAULTS["retriever"])
    p.add_argument("--model", help="default: the model the index was built with")
    p.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help="hybrid: weight of the dense side"
    )
    p.add_argument("--method", choices=FUSION_METHODS, default=DEFAULT_METHOD, help="hybrid fusion")
    p.add_argument(
        "--max-ngram",
        type=int,
        default=DEFAULT_MAX_NGRAM,
        help="lexical / hybrid: TF-IDF over word n-grams up to this length",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=QUERY_DEFAULTS["backend"],
        help="faiss-*: needs faiss-cpu; hnsw and ivf are approximate",
    )
    p.add_argument(
        "--ef-search",
        type=int,
        default=DEFAULT_HNSW_EF_SEARCH,
        help="faiss-hnsw: search breadth (more: higher recall, slower)",
    )
    p.add_argument(
        "--nprobe",
        type=int,
        default=DEFAULT_IVF_NPROBE,
        help="faiss-ivf: lists scanned per request (more: higher recall, slower)",
    )
    p.add_argument(
        "--explain-top",
        type=int,
        default=QUERY_DEFAULTS["explain_top"],
        help="descriptors in each explanation",
    )
    p.add_argument(
        "--rerank",
        metavar="DIR",
        help="a cross-encoder directory (e.g. <run>/cross-encoder) that reorders the retriever's top sets",
    )
    p.add_argument(
        "--rerank-depth",
        type=int,
        default=DEFAULT_RERANK_DEPTH,
        help="with --rerank: first-stage descriptor sets the cross-encoder reads per request",
    )
    # the ensemble teacher's members (docs/distillation.md): --rerank-dense-weight, --rerank-tfidf-weight
    members = {"dense": "the index model's cosine (read from the index)", "tfidf": "the TF-IDF cosine"}
    for member, score in members.items():
        p.add_argument(
            f"--rerank-{member}-weight",
            type=float,
            default=ENSEMBLE_DEFAULTS[f"{member}_weight"],
            help=f"with --rerank: add this times {score} to each logit",
        )
    p.add_argument(
        "--rerank-max-ngram",
        type=int,
        default=ENSEMBLE_DEFAULTS["max_ngram"],
        help="with --rerank-tfidf-weight: TF-IDF over word n-grams up to this length",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="check file sizes only, not checksums (faster on big indexes)",
    )


def recommender_options(args: argparse.Namespace) -> dict:
    """`Recommender.load` keyword arguments from `add_recommender_options`' options."""
    return {
        "model": None if args.model is None else model_path(args.model),
        "verify": not args.no_verify,
        "alpha": args.alpha,
        "method": args.method,
        "max_ngram": args.max_ngram,
        "backend": args.backend,
        "ef_search": args.ef_search,
        "nprobe": args.nprobe,
        "explain_top": args.explain_top,
        "rerank": args.rerank,
        "rerank_depth": args.rerank_depth,
        "rerank_members": {
            "dense_weight": args.rerank_dense_weight,
            "tfidf_weight": args.rerank_tfidf_weight,
            "max_ngram": args.rerank_max_ngram,
        },
    }
