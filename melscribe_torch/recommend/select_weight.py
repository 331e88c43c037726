"""Choose the hybrid fusion weight and TF-IDF n-gram length on validation data carved from the training clips.

Validation sets: the kind ``train.py`` selects on by default, built with train.yaml's data
settings (sources, request sources, layout, seeds, split seed). The training records
are split by clip (``split_for_validation``), holding out ``select_weight.valid_fraction`` of
the clips (conf/recommend.yaml: 30%); each held-out clip gives one request (its LLM
caption where it has one) and one descriptor set, sampled with the paper's procedure for seeds
0, 1, 2, as the test sets are (``build_validation_set``). No test clip is involved: the
MC / MC_reco test sets never tune anything.

A model trained on some of those clips would make its dense side look better than it is, so
for a model saved by ``train.py`` (``<run dir>/best``) the split is the run's own
(``run_folder.training_run_split``) and any validation clip among its training requests is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import torch

from ..conf import read_config
from ..data.training import (
    build_validation_set,
    check_no_test_clips,
    load_training_records,
    split_for_validation,
)
from ..evaluation.metrics import ranking_metrics
from ..retrieval import EmbeddingCache, TfidfScorer, fuse_scores
from .recommender import DEFAULT_METHOD

log = logging.getLogger(__name__)

# The grid and the split of a model no train.py run made: conf/recommend.yaml's
# select_weight block; the validation sets' other settings: train.py's (train.yaml's data).
SELECT_DEFAULTS = read_config("recommend")["select_weight"]
DATA_DEFAULTS = read_config("train")["data"]
DEFAULT_ALPHAS = tuple(float(a) for a in SELECT_DEFAULTS["alphas"])
DEFAULT_MAX_NGRAMS = tuple(int(n) for n in SELECT_DEFAULTS["max_ngrams"])
DEFAULT_METRIC = str(SELECT_DEFAULTS["metric"])
DEFAULT_VALID_FRACTION = float(SELECT_DEFAULTS["valid_fraction"])
DEFAULT_SPLIT_SEED = int(DATA_DEFAULTS["split_seed"])
DEFAULT_SEEDS = tuple(int(seed) for seed in DATA_DEFAULTS["valid_seeds"])
VALIDATION_SOURCES = tuple(DATA_DEFAULTS["train_sources"])
VALID_REQUEST_SOURCES = tuple(DATA_DEFAULTS["valid_request_sources"])
VALID_LAYOUT = str(DATA_DEFAULTS["valid_layout"])


def select_fusion_weight(
    encoder,
    root: str | Path,
    *,
    batch_size: int,
    precision: str,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    method: str = DEFAULT_METHOD,
    metric: str = DEFAULT_METRIC,
    max_ngrams: Sequence[int] = DEFAULT_MAX_NGRAMS,
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    split_seed: int = DEFAULT_SPLIT_SEED,
    trained_clips: Collection[str] | None = None,
) -> dict:
    """Grid-search the dense weight ``alpha`` and the TF-IDF n-gram length by validation ``metric``.

    Args:
        encoder: The bi-encoder whose hybrid is tuned.
        root: The data directory.
        batch_size, precision: Encoding settings.
        alphas: Candidate weights in [0, 1].
        seeds: Sampling seeds of the validation sets (the metric is their mean).
        method: Fusion method ("zscore" or "rrf").
        max_ngrams: Candidate longest word n-grams of the TF-IDF side.
        valid_fraction, split_seed: The clip split (``data.valid_fraction``, ``data.split_seed``).
        trained_clips: Clips the encoder was trained on, when known: none may be a
            validation clip.

    Raises:
        ValueError: A validation clip is among ``trained_clips``.

    Returns:
        ``{"alpha", "max_ngram", "method", "metric", "table": [{"max_ngram", "alpha", "mean",
        "std", "per_seed"}], "num_requests", "num_descriptor_sets", "seeds"}``; ties go to the
        shorter n-grams, then the smaller alpha.
    """
    records = load_training_records(root, list(VALIDATION_SOURCES))
    check_no_test_clips(records, root)
    _, valid = split_for_validation(
        records, valid_fraction, split_seed, VALID_REQUEST_SOURCES, VALID_LAYOUT
    )
    valid_clips = {r.clip_id for r in valid}
    seen = sorted(valid_clips & set(trained_clips or ()))
    if seen:
        raise ValueError(
            f"the model was trained on {len(seen)} of the {len(valid_clips)} validation clips "
            f"(valid_fraction {valid_fraction}, split seed {split_seed}; e.g. {', '.join(seen[:3])}): "
            "its dense side would look better than it is. Pass the valid_fraction and split "
            "seed of its training run (select-weight --valid-fraction --split-seed)"
        )
    per_cell: dict[tuple[int, float], list[float]] = {(n, a): [] for n in max_ngrams for a in alphas}
    num_requests, num_sets = [], []
    # The requests are the same sentences for every seed: each is encoded once.
    embeddings = EmbeddingCache(encoder, batch_size, precision, normalize=True)
    for seed in seeds:
        vset = build_validation_set(valid, seed, VALID_REQUEST_SOURCES, VALID_LAYOUT)
        qids = [q for q in vset.queries if vset.qrels.get(q)]
        doc_ids = list(vset.corpus)
        queries = [vset.queries[q] for q in qids]
        corpus = [vset.corpus[d] for d in doc_ids]
        relevant = [vset.qrels[q] for q in qids]
        d_emb = embeddings.encode(corpus)
        q_emb = embeddings.encode(queries)
        dense = q_emb @ d_emb.T  # (Q, N): small for a validation set
        k = int(metric.split("@")[1])
        for max_ngram in max_ngrams:
            lexical = TfidfScorer(corpus, max_ngram).scores(queries)
            for alpha in alphas:
                top = torch.topk(
                    fuse_scores(dense, lexical, alpha, method), min(k, len(corpus)), dim=1
                ).indices
                rankings = [[doc_ids[i] for i in row] for row in top.tolist()]
                per_cell[max_ngram, alpha].append(ranking_metrics(rankings, relevant, [k])[metric])
        num_requests.append(len(qids))
        num_sets.append(len(corpus))
        log.info(
            "validation seed %d: %d requests, %d descriptor sets", seed, len(qids), len(corpus)
        )
    table = [
        {"max_ngram": n, "alpha": a, "mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v}
        for (n, a), v in per_cell.items()
    ]
    best = max(table, key=lambda row: (round(row["mean"], 12), -row["max_ngram"], -row["alpha"]))
    return {
        "alpha": best["alpha"],
        "max_ngram": best["max_ngram"],
        "method": method,
        "metric": metric,
        "table": table,
        "num_requests": num_requests,
        "num_descriptor_sets": num_sets,
        "seeds": list(seeds),
        "validation": {
            "sources": list(VALIDATION_SOURCES),
            "request_sources": list(VALID_REQUEST_SOURCES),
            "valid_fraction": valid_fraction,
            "layout": VALID_LAYOUT,
            "split_seed": split_seed,
        },
    }




def format_selection(result: dict) -> str:
    """A Markdown table of the grid: one row per alpha, one column per n-gram length (mean ± std
    over the seeds, %); the chosen cell in bold. Per-seed figures are in the JSON output."""
    ngrams = sorted({row["max_ngram"] for row in result["table"]})
    alphas = sorted({row["alpha"] for row in result["table"]})
    cells = {(row["max_ngram"], row["alpha"]): row for row in result["table"]}
    lines = [
        "| alpha | " + " | ".join(f"{result['metric']}, n-grams 1-{n} (%)" for n in ngrams) + " |",
        "|---" * (len(ngrams) + 1) + "|",
    ]
    for alpha in alphas:
        texts = []
        for n in ngrams:
            row = cells.get((n, alpha))
            text = "" if row is None else f"{100 * row['mean']:.1f} ± {100 * row['std']:.1f}"
            if (n, alpha) == (result["max_ngram"], result["alpha"]):
                text = f"**{text}** chosen"
            texts.append(text)
        lines.append(f"| {alpha:.1f} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"
