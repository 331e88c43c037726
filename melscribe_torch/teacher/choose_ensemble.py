"""Choose the ensemble teacher's weights on a training run's validation sets.

    python -m melscribe_torch.teacher.choose_ensemble <run dir> <cross-encoder dir>

The first stage (the run's own student, ``<run>/best``, unless ``--first-stage`` names
another bi-encoder) retrieves each validation request's top ``depth`` descriptor sets (the
largest of ``--depths``: a shallower rerank reorders the first columns of the same scores). Each
member scores them once per validation seed: the cross-encoder's logit, the first stage's
cosine (the dense member is the first stage itself), TF-IDF cosines over 1 to n words,
fitted on the validation corpus as the rerank retriever fits them on the corpus searched, and
the cosines of each ``--second-dense`` bi-encoder. The grid (conf/choose_ensemble.yaml) then
only adds those scores:

    score = CE + dense_weight * cos + tfidf_weight * TF-IDF cos + second_dense_weight * cos2
            [+ second_cross_encoder_weight * CE2],

as ``teacher/ensemble.py`` scores a pair, over the top ``depth`` candidates of each request
(the rest keep the first stage's order, as ``rerank:`` leaves them). One seed chooses
(Recall@10, ties MRR@10); the others report, since a figure read on the seed that chose is
optimistic. The printed
``ensemble.*=`` overrides give the same ranking through ``rerank:`` in melscribe-evaluate or
through the labels stage of train.py. The caption validation sets are read unless ``--sets
requests`` names the request-like ones. No test set is read, and a model trained on a
validation clip is refused.
"""

from __future__ import annotations

import argparse
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conf import read_config, read_option
from ..data import RetrievalSet
from ..evaluation.metrics import ranking_metrics
from ..mining.hard_negatives import clip_of
from ..retrieval.lexical import TfidfScorer
from ..run_folder import CAPTION_SETS, REQUEST_SETS, read_validation_sets, training_run_split

log = logging.getLogger(__name__)

DEFAULTS = read_config("choose_ensemble")
DEFAULT_DEPTH = int(read_option("rerank")["depth"])
DEFAULT_SEEDS = tuple(int(seed) for seed in read_config("train")["data"]["valid_seeds"])
METRIC_K = 10
VALIDATION_KINDS = {"captions": CAPTION_SETS, "requests": REQUEST_SETS}  # --sets


@dataclass
class MemberScores:
    """One validation set: the first stage's top ``depth`` sets per request and each member's
    scores of them, (requests, depth) tensors in the first stage's order."""

    ids: np.ndarray  # descriptor-set ids
    relevant: list[set[str]]
    dense: torch.Tensor  # the first stage's cosines
    cross_encoder: torch.Tensor  # the cross-encoder's logits
    tfidf: dict[int, torch.Tensor]  # longest n-gram -> TF-IDF cosines
    # a candidate second dense member's name -> its cosines
    second_dense: dict[str, torch.Tensor] = field(default_factory=dict)
    # a second cross-encoder's logits (another training seed, say), or None
    second_cross_encoder: torch.Tensor | None = None


def check_not_trained_on(vset: RetrievalSet, model_dirs: Sequence[str | Path]) -> None:
    """Refuse a model whose training run (when it is inside one) saw a validation clip."""
    valid_clips = {clip_of(qid) for qid in vset.queries}
    for model_dir in model_dirs:
        run = training_run_split(model_dir)
        seen = sorted(valid_clips & run["trained_clips"]) if run else []
        if seen:
            raise ValueError(
                f"{model_dir} was trained on {len(seen)} of these {len(valid_clips)} validation clips "
                f"(e.g. {', '.join(seen[:3])}): use a model trained on this run's split"
            )


def score_members(
    first_stage, cross_encoder, vset: RetrievalSet, *, depth: int, max_ngrams: Sequence[int],
    batch_size: int, precision: str, second_dense: dict | None = None, second_cross_encoder=None,
) -> MemberScores:
    """Retrieve each request's top ``depth`` sets with ``first_stage`` and score them with every
    member; ``second_dense``: name -> bi-encoder, each a candidate second dense member."""
    qids = [qid for qid in vset.queries if vset.qrels.get(qid)]
    doc_ids = list(vset.corpus)
    queries = [vset.queries[qid] for qid in qids]
    documents = [vset.corpus[doc_id] for doc_id in doc_ids]
    depth = min(depth, len(documents))
    encode = {"batch_size": batch_size, "precision": precision, "normalize": True}

    def cosines(encoder) -> torch.Tensor:  # (requests, sets)
        return encoder.encode(queries, **encode).float() @ encoder.encode(documents, **encode).float().T

    dense, top = torch.topk(cosines(first_stage), depth, dim=1)
    pairs = [(queries[row], documents[col]) for row in range(len(queries)) for col in top[row].tolist()]
    def logits_of(model) -> torch.Tensor:  # (requests, depth)
        return model.predict(pairs, batch_size=batch_size, precision=precision).float().view(len(queries), depth)

    tfidf = {n: TfidfScorer(documents, n).scores(queries).float().gather(1, top) for n in max_ngrams}
    second = {name: cosines(encoder).gather(1, top) for name, encoder in (second_dense or {}).items()}
    return MemberScores(
        ids=np.asarray(doc_ids)[top.numpy()],
        relevant=[set(vset.qrels[qid]) for qid in qids],
        dense=dense,
        cross_encoder=logits_of(cross_encoder),
        tfidf=tfidf,
        second_dense=second,
        second_cross_encoder=None if second_cross_encoder is None else logits_of(second_cross_encoder),
    )


def ensemble_scores(
    members: MemberScores, dense_weight: float, tfidf_weight: float, max_ngram: int,
    second_dense: str | None = None, second_dense_weight: float = 0.0, depth: int | None = None,
    cross_encoder_weight: float = 1.0, second_cross_encoder_weight: float = 0.0,
) -> torch.Tensor:
    """The ensemble teacher's scores of the candidates (every weight 0: the cross-encoder's).

    ``cross_encoder_weight`` 0 gives the ensemble without its cross-encoder (the student fused
    with TF-IDF), the row that asks whether the cross-encoder earns its cost.

    ``depth``: rerank only each request's first ``depth`` candidates; the others score -inf,
    so a stable sort leaves them after the reranked ones in the first stage's order.
    """
    scores = cross_encoder_weight * members.cross_encoder + dense_weight * members.dense
    if tfidf_weight:
        scores = scores + tfidf_weight * members.tfidf[max_ngram]
    if second_dense_weight:
        scores = scores + second_dense_weight * members.second_dense[second_dense]
    if second_cross_encoder_weight:
        scores = scores + second_cross_encoder_weight * members.second_cross_encoder
    if depth is not None and depth < scores.shape[1]:
        scores = scores.clone()
        scores[:, depth:] = float("-inf")
    return scores


def rerank_quality(scores: torch.Tensor, members: MemberScores) -> dict[str, float]:
    """Recall@10 and MRR@10 (in %) of the candidates ordered by ``scores`` (ties: first-stage order)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True).numpy()
    ranked = [list(ids[row]) for ids, row in zip(members.ids, order)]
    metrics = ranking_metrics(ranked, members.relevant, [METRIC_K])
    return {name: round(100 * metrics[f"{name}@{METRIC_K}"], 2) for name in ("recall", "mrr")}


def cell_quality(members: MemberScores, cell: dict) -> dict[str, float]:
    """Recall@10 and MRR@10 (in %) of the ensemble whose weights are ``cell``, on ``members``."""
    return rerank_quality(ensemble_scores(members, **cell), members)


def best_cell(graded: list[dict], keys: Sequence[str], wanted=lambda cell: True) -> dict | None:
    """The first of ``graded`` (best first) that is ``wanted``, as its ``keys``; None if none is."""
    cell = next((cell for cell in graded if wanted(cell)), None)
    return None if cell is None else {key: cell[key] for key in keys}


def choose_weights(
    by_seed: dict[int, MemberScores], *, choose_seed: int, dense_weights: Sequence[float],
    tfidf_weights: Sequence[float], max_ngrams: Sequence[int],
    second_dense_weights: Sequence[float] = (), depths: Sequence[int] | None = None,
    second_cross_encoder_weights: Sequence[float] = (),
) -> dict:
    """Grid-search the weights (and the rerank depth) on ``choose_seed``; report the choice on
    every seed.

    Each second dense member scored (``MemberScores.second_dense``) joins the grid with each of
    ``second_dense_weights``, one member at a time; the cells without one come first. Each of
    ``depths`` (at most the depth scored; default: the depth scored) reranks that many of each
    request's candidates; the depths are the outermost loop, so a tie goes to the first listed.
    A second cross-encoder scored (``MemberScores.second_cross_encoder``) joins the grid with
    each of ``second_cross_encoder_weights``, beside weight 0.

    Returns:
        ``{"chosen": {"dense_weight", "tfidf_weight", "max_ngram", "second_dense",
        "second_dense_weight", "depth", "second_cross_encoder_weight"}, "choose_seed",
        "cells": how many cells the grid has, "chosen_without_second": the best cell with no
        second dense member, "grid_top": the five best cells on the choosing seed,
        "per_seed": {seed: {"first_stage", "cross_encoder", "ensemble", "ensemble_without_second",
        "without_cross_encoder"}},
        "level_with_chosen": {"cells": how many cells tie with the choice on Recall@10,
        "report_mean_range": [min, max] of their mean Recall@10 over the other seeds, or None},
        "without_cross_encoder": the best cell of cos and TF-IDF alone (None when the grid has
        no nonzero weight), "best_by_depth": {depth: {"cell", "per_seed"}}, "report_seeds",
        "report_mean": {each row's mean Recall@10 over the seeds that did not choose}}``. Ties:
        the higher MRR@10, then the earlier cell (shorter n-grams, smaller weights).
    """
    if choose_seed not in by_seed:
        raise ValueError(f"choose seed {choose_seed} is not among the scored seeds {sorted(by_seed)}")
    choosing = by_seed[choose_seed]
    scored_depth = choosing.cross_encoder.shape[1]
    if depths and min(depths) < 1:
        raise ValueError(f"rerank depths must be >= 1, got {list(depths)}")
    # a depth past the candidates scored (a corpus smaller than it) reranks them all
    depths = list(dict.fromkeys(min(d, scored_depth) for d in depths or [scored_depth]))
    seconds = [(None, 0.0)]
    seconds += [(name, w) for name in choosing.second_dense for w in second_dense_weights if w]
    second_ces = [0.0]
    if choosing.second_cross_encoder is not None:
        second_ces += [w for w in second_cross_encoder_weights if w]
    graded = []
    grid = itertools.product(depths, second_ces, seconds, max_ngrams, dense_weights, tfidf_weights)
    for depth, e, (second, d), n, a, b in grid:
        cell = {"max_ngram": n, "dense_weight": a, "tfidf_weight": b, "second_dense": second,
                "second_dense_weight": d, "depth": depth, "second_cross_encoder_weight": e}
        graded.append({**cell, **cell_quality(choosing, cell)})
    graded.sort(key=lambda cell: (-cell["recall"], -cell["mrr"]))  # stable: ties keep grid order
    keys = ("dense_weight", "tfidf_weight", "max_ngram", "second_dense", "second_dense_weight", "depth",
            "second_cross_encoder_weight")
    chosen = best_cell(graded, keys)
    # what the second member adds: the best cell without one, chosen the same way
    without = best_cell(graded, keys, lambda cell: not cell["second_dense_weight"])
    # what a second cross-encoder adds: the best cell without it
    without_ce2 = best_cell(graded, keys, lambda cell: not cell["second_cross_encoder_weight"])
    # what the cross-encoder adds: the best cell without it (cos and TF-IDF only), chosen the same way
    fused = []
    for depth, n, a, b in itertools.product(depths, max_ngrams, dense_weights, tfidf_weights):
        cell = {"max_ngram": n, "dense_weight": a, "tfidf_weight": b, "depth": depth, "cross_encoder_weight": 0}
        if a or b:
            fused.append({**cell, **cell_quality(choosing, cell)})
    fused.sort(key=lambda cell: (-cell["recall"], -cell["mrr"]))
    no_cross_encoder = best_cell(fused, ("max_ngram", "dense_weight", "tfidf_weight", "depth", "cross_encoder_weight"))
    cross_encoder_alone = {"dense_weight": 0, "tfidf_weight": 0, "max_ngram": 1, "depth": chosen["depth"]}
    rows = {"cross_encoder": cross_encoder_alone, "ensemble": chosen, "ensemble_without_second": without}
    if choosing.second_cross_encoder is not None:
        rows["ensemble_without_second_cross_encoder"] = without_ce2
    if no_cross_encoder:
        rows["without_cross_encoder"] = no_cross_encoder
    per_seed = {
        seed: {"first_stage": rerank_quality(members.dense, members),
               **{row: cell_quality(members, cell) for row, cell in rows.items()}}
        for seed, members in by_seed.items()
    }
    # how the depth matters: each depth's best cell on the choosing seed, on every seed
    by_depth = {}
    for depth in depths:
        cell = best_cell(graded, keys, lambda c, depth=depth: c["depth"] == depth)
        by_depth[depth] = {"cell": cell, "per_seed": {
            seed: cell_quality(members, cell) for seed, members in by_seed.items()}}
    report_seeds = [seed for seed in by_seed if seed != choose_seed]
    # how much the choice rests on its tie-break: the cells level with it on Recall@10,
    # and how the seeds that did not choose rank them
    top_recall = graded[0]["recall"]
    level = [{key: cell[key] for key in keys} for cell in graded if cell["recall"] == top_recall]
    level_means = [float(np.mean([cell_quality(by_seed[s], cell)["recall"] for s in report_seeds]))
                   for cell in level] if report_seeds else []
    spread = [round(min(level_means), 2), round(max(level_means), 2)] if level_means else None
    level_with_chosen = {"cells": len(level), "report_mean_range": spread}
    report_mean = {
        row: round(float(np.mean([per_seed[s][row]["recall"] for s in report_seeds])), 2) if report_seeds else None
        for row in per_seed[choose_seed]
    }
    return {"chosen": chosen, "chosen_without_second": without, "chosen_without_second_cross_encoder": without_ce2,
            "choose_seed": choose_seed, "cells": len(graded),
            "grid_top": graded[:5], "per_seed": per_seed, "report_seeds": report_seeds,
            "report_mean": report_mean, "best_by_depth": by_depth,
            "without_cross_encoder": no_cross_encoder, "level_with_chosen": level_with_chosen}


def describe(cell: dict) -> str:
    """A grid cell as the score it adds up,
    e.g. 'CE + 20 cos + 10 TF-IDF (1-3 words) + 5 cos(mpnet-base)'."""
    words = "single words" if cell["max_ngram"] == 1 else f"1-{cell['max_ngram']} words"
    text = "" if cell.get("cross_encoder_weight", 1) == 0 else "CE + "
    text += f"{cell['dense_weight']:g} cos + {cell['tfidf_weight']:g} TF-IDF ({words})"
    if cell.get("second_dense_weight"):
        text += f" + {cell['second_dense_weight']:g} cos({cell['second_dense']})"
    if cell.get("second_cross_encoder_weight"):
        text += f" + {cell['second_cross_encoder_weight']:g} CE2"
    return text + (f", top {cell['depth']}" if "depth" in cell else "")


def format_report(result: dict) -> str:
    """The per-seed table, the verdict line and the overrides that reproduce the choice."""
    c, seeds = result["chosen"], sorted(result["per_seed"])
    chose = " (chose)" if result["cells"] > 1 else " (a grid of one cell: no choice)"
    header = [f"seed {s}{chose if s == result['choose_seed'] else ''}" for s in seeds]
    lines = ["ranking | " + " | ".join(header) + " | R@10, mean of the others"]
    names = {"first_stage": "the first stage alone",
             "cross_encoder": f"the cross-encoder alone, top {c['depth']}",
             "ensemble": describe(c)}
    if c["second_dense_weight"]:
        without = describe(result["chosen_without_second"])
        names["ensemble_without_second"] = f"{without} (no second member)"
    if c.get("second_cross_encoder_weight"):
        without = describe(result["chosen_without_second_cross_encoder"])
        names["ensemble_without_second_cross_encoder"] = f"{without} (no second cross-encoder)"
    if result.get("without_cross_encoder"):
        names["without_cross_encoder"] = f"{describe(result['without_cross_encoder'])} (no cross-encoder)"
    for row, name in names.items():
        cells = [f"{result['per_seed'][s][row]['recall']:.2f} / {result['per_seed'][s][row]['mrr']:.2f}" for s in seeds]
        mean = result["report_mean"][row]
        lines.append(f"{name} | " + " | ".join(cells) + (f" | {mean:.2f}" if mean is not None else " | -"))
    by_depth = result.get("best_by_depth", {})
    for depth, best in by_depth.items() if len(by_depth) > 1 else ():
        quality = best["per_seed"]
        cells = [f"{quality[s]['recall']:.2f} / {quality[s]['mrr']:.2f}" for s in seeds]
        others = [quality[s]["recall"] for s in seeds if s != result["choose_seed"]]
        mean = f"{np.mean(others):.2f}" if others else "-"
        lines.append(f"best at depth {depth}: {describe(best['cell'])} | " + " | ".join(cells) + f" | {mean}")
    lines.append("(Recall@10 / MRR@10 in %, reranking the first stage's candidates)")
    level = result["level_with_chosen"]
    if level["cells"] > 1:  # the choice among them was MRR@10's
        spread = level["report_mean_range"]
        seed = result["choose_seed"]
        line = f"{level['cells']} cells tie with the choice on seed {seed}'s Recall@10"
        if spread:
            line += f"; the other seeds' mean Recall@10 of them: {spread[0]:.2f} to {spread[1]:.2f}"
        lines.append(line)
    lines.append(f"ensemble.dense={result['first_stage']} ensemble.dense_weight={c['dense_weight']:g} "
                 f"ensemble.tfidf_weight={c['tfidf_weight']:g} ensemble.max_ngram={c['max_ngram']}"
                 + (f" ensemble.second_dense={c['second_dense']} "
                    f"ensemble.second_dense_weight={c['second_dense_weight']:g}" if c["second_dense_weight"] else "")
                 + f" rerank.depth={c['depth']}")
    if c.get("second_cross_encoder_weight"):  # not a setting of the ensemble teacher (yet)
        lines.append("(the second cross-encoder is weighed here only: train.py and rerank: do not take one)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from ..errors import errors_in_one_line
    from ..io import atomic_write_json
    from ..models import CrossEncoder
    from ..models.aliases import load_bi_encoder, load_model_aliases
    from ..models.device import pick_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a train.py run directory with validation/seed-<n>")
    parser.add_argument("cross_encoder", help="the cross-encoder directory (e.g. <teacher run>/cross-encoder)")
    parser.add_argument("--first-stage", help="the bi-encoder that retrieves and is the dense member (default <run>/best)")
    parser.add_argument("--depths", "--depth", type=int, nargs="+", default=[DEFAULT_DEPTH],
                        help="candidates reranked per request; several join the grid (20 50 100)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--sets", choices=sorted(VALIDATION_KINDS), default=DEFAULTS["sets"],
                        help="the caption validation sets (seed-<n>) or the request-like ones")
    parser.add_argument("--choose-seed", type=int, default=DEFAULTS["choose_seed"])
    parser.add_argument("--dense-weights", type=float, nargs="+", default=DEFAULTS["dense_weights"])
    parser.add_argument("--tfidf-weights", type=float, nargs="+", default=DEFAULTS["tfidf_weights"])
    parser.add_argument("--max-ngrams", type=int, nargs="+", default=DEFAULTS["max_ngrams"])
    parser.add_argument("--second-dense", nargs="+", default=DEFAULTS["second_dense"],
                        help="bi-encoders tried as a second dense member, one at a time (mpnet-base)")
    parser.add_argument("--second-dense-weights", type=float, nargs="+",
                        default=DEFAULTS["second_dense_weights"])
    parser.add_argument("--second-cross-encoder", help="a second cross-encoder directory tried as a member")
    parser.add_argument("--second-cross-encoder-weights", type=float, nargs="+",
                        default=DEFAULTS["second_cross_encoder_weights"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--precision", default=DEFAULTS["precision"])
    parser.add_argument("--out", help="also write the result as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with errors_in_one_line():
        first_stage_name = args.first_stage or str(Path(args.run) / "best")
        if args.choose_seed not in args.seeds:
            raise ValueError(f"--choose-seed {args.choose_seed} is not among --seeds {args.seeds}")
        kind = VALIDATION_KINDS[args.sets]
        vsets = dict(zip(args.seeds, read_validation_sets(Path(args.run), args.seeds, kind)))
        for vset in vsets.values():
            check_not_trained_on(vset, [first_stage_name, args.cross_encoder, *args.second_dense,
                                        *filter(None, [args.second_cross_encoder])])
        device = pick_device()
        aliases = load_model_aliases()
        first_stage = load_bi_encoder(first_stage_name, aliases, device=device)
        cross_encoder = CrossEncoder.from_pretrained(args.cross_encoder, device=device)
        second_dense = {name: load_bi_encoder(name, aliases, device=device)
                        for name in args.second_dense}
        second_cross_encoder = (CrossEncoder.from_pretrained(args.second_cross_encoder, device=device)
                                if args.second_cross_encoder else None)
        by_seed = {}
        for seed, vset in vsets.items():
            log.info("validation seed %d: scoring the first stage's top %d with each member", seed, max(args.depths))
            by_seed[seed] = score_members(
                first_stage, cross_encoder, vset, depth=max(args.depths), max_ngrams=args.max_ngrams,
                batch_size=args.batch_size, precision=args.precision, second_dense=second_dense,
                second_cross_encoder=second_cross_encoder,
            )
        result = choose_weights(
            by_seed, choose_seed=args.choose_seed, dense_weights=args.dense_weights,
            tfidf_weights=args.tfidf_weights, max_ngrams=args.max_ngrams,
            second_dense_weights=args.second_dense_weights, depths=args.depths,
            second_cross_encoder_weights=args.second_cross_encoder_weights,
        )
        result.update(first_stage=first_stage_name, cross_encoder=args.cross_encoder,
                      scored_depth=max(args.depths), sets=args.sets)
        print(format_report(result))
        if args.out:
            atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
