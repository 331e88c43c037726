"""Per-request latency of the rerank cascade's second stage at several rerank depths.

    python benchmarks/rerank_latency.py --model <run>/cross-encoder --data-root ../shared/data

One request at a time (as a user queries): the cross-encoder scores the request against its
first-stage candidates and reorders them (`retrieval.rerank.rerank_top`, what
`Recommender(rerank=...)` and `rerank:` retrievers run). The first stage itself is not timed
(see recommend_latency.py). Requests are the first sentences of MusicCaps training captions,
candidates their TF-IDF top sets among the training clips' descriptor sets: the lengths of
real requests and sets, never a test clip. The weights do not change the cost: a backbone
directory gets a new head.

With ``--ensemble-dense`` and/or ``--ensemble-tfidf-weight`` the second stage is the ensemble
teacher (`teacher.ensemble`): the cross-encoder plus a bi-encoder's and TF-IDF's cosines of the
same pairs, as `evaluate.py ... ensemble.*=` reranks; its TF-IDF member is fitted on the sets
searched once, before timing, as a recommender fits it on its catalog. With
``--ensemble-dense-stored`` the dense member reads what a recommender whose index was built with
the same model hands it (`recommend/rerank_dense.py`): the sets' float16 embeddings and the
request's embedding from the first stage, both encoded before timing (the first stage pays
for the request); the timed part is the cosines of the candidates and the rest of the ensemble.
"""

from __future__ import annotations

import time

import torch
from common import DEFAULT_DATA_ROOT, base_parser, setup, summarize, write_results

from melscribe_torch.conf import read_option
from melscribe_torch.data.sources import load_musiccaps
from melscribe_torch.models import CrossEncoder
from melscribe_torch.recommend.rerank_dense import candidate_cosines
from melscribe_torch.retrieval import TfidfRetriever
from melscribe_torch.retrieval.rerank import rerank_top
from melscribe_torch.teacher.ensemble import build_teacher_scorer


def requests_and_sets(data_root: str, num_requests: int) -> tuple[list[str], list[str]]:
    records = load_musiccaps(data_root, "train")
    requests = list(dict.fromkeys(r.caption.split(". ")[0] for r in records))[:num_requests]
    sets = list(dict.fromkeys(", ".join(r.descriptors) for r in records))
    return requests, sets


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], "benchmarks/results/rerank_latency.json")
    parser.add_argument("--data-root", default=DEFAULT_DATA_ROOT)
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per depth")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per forward pass")
    defaults = read_option("ensemble")  # the ensemble group's YAML, where each default is written once
    parser.add_argument("--ensemble-dense", default=defaults["dense"], help="bi-encoder of the ensemble's dense member")
    parser.add_argument("--ensemble-dense-weight", type=float, default=defaults["dense_weight"])
    parser.add_argument("--ensemble-tfidf-weight", type=float, default=defaults["tfidf_weight"])
    parser.add_argument("--ensemble-max-ngram", type=int, default=defaults["max_ngram"])
    parser.add_argument(
        "--ensemble-dense-stored", action="store_true",
        help="the dense member reads stored set embeddings and the first stage's request embedding",
    )
    args = parser.parse_args(argv)
    if args.ensemble_dense_stored and not (args.ensemble_dense and args.ensemble_dense_weight):
        parser.error("--ensemble-dense-stored needs --ensemble-dense and --ensemble-dense-weight")
    device = setup(args)
    if args.tiny:
        args.depths, args.requests = [2, 4], 2
    model = CrossEncoder.from_pretrained(args.model, device=device)
    requests, sets = requests_and_sets(args.data_root, args.requests + args.warmup)
    ensemble = {
        "dense": args.ensemble_dense,
        "dense_weight": args.ensemble_dense_weight,
        "tfidf_weight": args.ensemble_tfidf_weight,
        "max_ngram": args.ensemble_max_ngram,
    }
    model = build_teacher_scorer(model, ensemble)
    if hasattr(model, "fit"):
        model.fit(sets)
    _, candidates = TfidfRetriever().search(requests, sets, max(args.depths))
    stored = None
    if args.ensemble_dense_stored:  # what an index of this model stores; the first stage's request
        encode = {"batch_size": args.batch_size, "precision": "fp32", "normalize": True}
        request_emb = model.bi_encoder.encode(requests, **encode)
        stored = request_emb, model.bi_encoder.encode(sets, **encode).half().numpy()
    results = {}
    for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
        for depth in args.depths:
            seconds = []
            for i, request in enumerate(requests):
                start = time.perf_counter()
                known = None
                if stored is not None:
                    request_emb, set_emb = stored
                    head = candidates[i : i + 1, :depth]
                    known = candidate_cosines(request_emb[i : i + 1], set_emb, head)
                rerank_top(
                    model, [request], sets, candidates[i : i + 1], depth,
                    batch_size=args.batch_size, precision=precision, dense_scores=known,
                )
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= args.warmup:  # the first calls pay for allocation and kernel choice
                    seconds.append(time.perf_counter() - start)
            figure = summarize([1000 * s for s in seconds])
            results[f"{precision}/depth-{depth}"] = {"ms_per_request": figure}
            print(f"{precision} depth {depth:4d}: median {figure['median']:.1f} ms per request "
                  f"(min {figure['min']:.1f}, max {figure['max']:.1f}, {len(seconds)} requests)")
    write_results(args.out, args, device, results, __file__, argv)


if __name__ == "__main__":
    main()
