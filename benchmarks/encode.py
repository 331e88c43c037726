"""Texts/s of `BiEncoder.encode` vs `SentenceTransformer.encode` on the MC test texts.

    python benchmarks/encode.py                      # fp32 + bf16 (fp16 on GPU), 1024 texts
    python benchmarks/encode.py --max-texts 0        # all 4651 MC texts (slower)

Both sides embed the same texts with the same batch size, max length and precision. Ours
uses autocast for bf16/fp16 (and, as a separate "ours cast" row, the backbone cast to
the half dtype, the peer's way, to show what autocast's casts cost); the peer has no compute-precision option in `encode` (its
`precision` argument quantizes outputs), so its half-precision run is `model.to(dtype)`,
which is the way its documentation suggests. Quality is checked on the full seed-0 MC set:
mean cosine between the two sides' embeddings and Recall@10 (cosine) of each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from melscribe_torch.models import BiEncoder, resolve_model_path  # noqa: E402

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def load_texts(args) -> tuple[list[str], list[str], object | None]:
    """(queries, corpus, retrieval set or None): the MC seed-0 test set, or synthetic texts."""
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        if not args.tiny:
            print(f"no data under {args.data_root}: synthetic texts, no Recall@10")
        texts = common.synthetic_texts(48 if args.tiny else 2048, args.seed)
        return texts[: len(texts) // 2], texts[len(texts) // 2 :], None
    from melscribe_torch.data import paper_test_set

    test_set = paper_test_set("mc", args.data_root)(0)
    return list(test_set.queries.values()), list(test_set.corpus.values()), test_set


def subset(queries: list[str], corpus: list[str], max_texts: int) -> list[str]:
    """Half requests, half descriptor sets (all of both when max_texts is 0)."""
    if max_texts <= 0:
        return queries + corpus
    return queries[: max_texts // 2] + corpus[: max_texts - max_texts // 2]


def shrink(test_set, num_queries: int, num_docs: int):
    """The first `num_queries` requests, their positives and the first `num_docs` other documents."""
    from melscribe_torch.data import RetrievalSet

    qids = list(test_set.queries)[:num_queries]
    keep = {d for q in qids for d in test_set.qrels[q]}
    keep.update([d for d in test_set.corpus if d not in keep][:num_docs])
    return RetrievalSet(
        queries={q: test_set.queries[q] for q in qids},
        corpus={d: t for d, t in test_set.corpus.items() if d in keep},
        qrels={q: test_set.qrels[q] for q in qids},
    )


def recall_at_10(q_emb: torch.Tensor, d_emb: torch.Tensor, test_set) -> float:
    from melscribe_torch.evaluation import ranking_metrics
    from melscribe_torch.retrieval import exact_topk

    doc_ids = list(test_set.corpus)
    _, indices = exact_topk(q_emb.float(), d_emb.float(), k=10, score="cos")
    rankings = [[doc_ids[i] for i in row] for row in indices.tolist()]
    relevant = [test_set.qrels[qid] for qid in test_set.queries]
    return ranking_metrics(rankings, relevant, k_values=(10,))["recall@10"]


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/encode.json")
    parser.add_argument("--data-root", default=common.DEFAULT_DATA_ROOT)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-texts", type=int, default=1024, help="timed subset; 0 = all")
    parser.add_argument("--precisions", default=None, help="comma list; default fp32 + bf16/fp16")
    parser.add_argument(
        "--no-cast", action="store_true",
        help="skip the extra half-precision run of ours with the model cast (peer-style)",
    )
    parser.add_argument("--no-quality", action="store_true", help="skip Recall@10 and agreement")
    parser.add_argument(
        "--quality-queries", type=int, default=0,
        help="Recall@10 on the first N requests against their positives plus --quality-docs "
        "other descriptor sets (0 = the whole seed-0 MC set)",
    )
    parser.add_argument("--quality-docs", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.warmup, args.max_texts, args.max_length = 1, 0, 32, 32
    device = common.setup(args)
    st = common.load_peer(args.no_peer)

    queries, corpus, test_set = load_texts(args)
    texts = subset(queries, corpus, args.max_texts)
    if test_set is not None and args.quality_queries > 0:
        test_set = shrink(test_set, args.quality_queries, args.quality_docs)
        queries, corpus = list(test_set.queries.values()), list(test_set.corpus.values())
        print(f"Recall@10 on a subset: {len(queries)} requests, {len(corpus)} descriptor sets")
    print(f"{len(texts)} texts timed, batch {args.batch_size}, max length {args.max_length}, {device}")

    ours = BiEncoder.from_pretrained(args.model, max_length=args.max_length, device=device)
    model_dir = resolve_model_path(args.model)
    peer = None
    if st is not None:
        peer = st.SentenceTransformer(model_dir, device=str(device))
        peer.max_seq_length = args.max_length
        peer.eval()
    normalize = ours.normalize

    def run_ours(items: list[str], precision: str) -> torch.Tensor:
        return ours.encode(items, batch_size=args.batch_size, precision=precision, show_progress=False)

    def run_ours_cast(items: list[str], precision: str) -> torch.Tensor:
        # what the peer does for half precision: the whole model cast, no autocast casts
        ours.to(HALF[precision])
        try:
            return run_ours(items, "fp32")
        finally:
            ours.to(torch.float32)

    def run_peer(items: list[str], precision: str) -> torch.Tensor:
        with torch.inference_mode():
            out = peer.encode(
                items, batch_size=args.batch_size, convert_to_tensor=True, show_progress_bar=False
            )
        return out.float().cpu()

    results: dict = {
        "num_texts_timed": len(texts),
        "quality_set": None if test_set is None else {"requests": len(queries), "descriptor_sets": len(corpus)},
        "normalize": normalize,
        "peer_half_precision": "SentenceTransformer.to(dtype) (whole model cast); ours: autocast",
        "precisions": {},
    }
    rows = []
    for precision in common.precisions_for(device, args.precisions):
        if peer is not None:  # the peer's half precision is a cast model
            peer.to(HALF.get(precision, torch.float32))
        sides = {"ours": lambda: run_ours(texts, precision)}
        if precision in HALF and not args.no_cast:
            sides["ours_cast"] = lambda: run_ours_cast(texts, precision)
        if peer is not None:
            sides["peer"] = lambda: run_peer(texts, precision)
        figures = common.measure_sides(
            sides, device=device, repeats=args.repeats, warmup=args.warmup, work=len(texts)
        )
        entry = {side: common.strip_result(fig) for side, fig in figures.items()}
        entry["ratio_ours_over_peer"] = common.ratio(figures["ours"], figures.get("peer"))
        if peer is not None:
            a, b = figures["ours"]["result"], figures["peer"]["result"]
            entry["mean_cosine_ours_vs_peer_timed_subset"] = F.cosine_similarity(a, b).mean().item()
        if test_set is not None and not args.no_quality:
            quality = {}
            candidates = {"ours": run_ours, "peer": run_peer if peer is not None else None}
            if "ours_cast" in figures:
                candidates["ours_cast"] = run_ours_cast
            for side, fn in candidates.items():
                if fn is None:
                    continue
                q_emb, d_emb = fn(queries, precision), fn(corpus, precision)
                quality[side] = {"recall@10": recall_at_10(q_emb, d_emb, test_set), "emb": (q_emb, d_emb)}
            if "peer" in quality:
                both = [torch.cat(quality[s].pop("emb")) for s in ("ours", "peer")]
                entry["mean_cosine_ours_vs_peer_full_set"] = F.cosine_similarity(*both).mean().item()
            for side in quality.values():
                side.pop("emb", None)
            entry["quality"] = quality
        results["precisions"][precision] = entry
        if "ours_cast" in figures:
            entry["ratio_ours_cast_over_peer"] = common.ratio(figures["ours_cast"], figures.get("peer"))
            entry["mean_cosine_ours_cast_vs_ours_autocast_timed_subset"] = F.cosine_similarity(
                figures["ours_cast"]["result"], figures["ours"]["result"]
            ).mean().item()
        ratio = entry["ratio_ours_over_peer"]
        rows.append([
            precision,
            common.format_rate(figures["ours"], "texts/s"),
            common.format_rate(figures.get("peer"), "texts/s"),
            f"{ratio:.2f}" if ratio else "-",
            f"{entry.get('mean_cosine_ours_vs_peer_full_set', entry.get('mean_cosine_ours_vs_peer_timed_subset', float('nan'))):.6f}",
            " / ".join(f"{entry['quality'][s]['recall@10'] * 100:.2f}" for s in ("ours", "peer") if s in entry.get("quality", {})) or "-",
        ])
        if "ours_cast" in figures:
            cast_ratio = entry["ratio_ours_cast_over_peer"]
            rows.append([
                f"{precision} (ours cast)",
                common.format_rate(figures["ours_cast"], "texts/s"),
                "", f"{cast_ratio:.2f}" if cast_ratio else "-", "",
                f"{entry['quality']['ours_cast']['recall@10'] * 100:.2f}" if "quality" in entry else "-",
            ])
    if peer is not None:
        peer.to(torch.float32)
    precs = results["precisions"]
    if "fp32" in precs and len(precs) > 1:
        for precision, entry in precs.items():
            if precision != "fp32" and entry.get("peer") and precs["fp32"].get("peer"):
                for side in ("ours", "ours_cast"):
                    if side in entry:
                        entry[f"ratio_{side}_over_peer_fp32"] = (
                            entry[side]["rate"]["median"] / precs["fp32"]["peer"]["rate"]["median"]
                        )
    common.print_table(
        "encode throughput (median over repeats)",
        ["precision", "ours", "sentence-transformers", "ours/peer", "mean cos", "R@10 ours / peer"],
        rows,
    )
    for precision, entry in precs.items():
        for side in ("ours", "ours_cast"):
            if f"ratio_{side}_over_peer_fp32" in entry:
                print(f"{side} {precision} / peer fp32: {entry[f'ratio_{side}_over_peer_fp32']:.2f}")

    if args.profile:
        print("\nprofile: ours, fp32, timed texts")
        with common.maybe_profile(True, device):
            run_ours(texts, "fp32")
    common.write_results(args.out, args, device, results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
