"""Hard-negative mining requests/s (top-30, positives excluded): ours vs the gpl package's way, plus a scaling curve.

    python benchmarks/mine.py                        # real subset + 10k/100k/1M scaling curve
    python benchmarks/mine.py --sizes 10000,100000   # a shorter curve

Part 1, real texts (training pairs of musiccaps + lp-musiccaps-mc + conceptcaps, a subset
of requests and descriptor sets): ours is `melscribe_torch.mining.mine_with_encoder`
(`BiEncoder.encode` once, then `exact_topk` streaming top-k with positives excluded); the
peer does what gpl's miner (`NegativeMiner._mine_sbert`) does: `SentenceTransformer.encode`
the corpus, then per batch of 128 requests encode them, one matmul against the whole corpus
and `topk`, positives dropped afterwards. Time includes encoding, which dominates on CPU.
Both sides encode at fp32 with the same batch size; gpl has no half-precision mining, so
on a CPU with native bf16 (where `train.py`'s `mining.precision=auto` picks it) a second row
times ours at bf16 against the same fp32 peer, with the overlap of the negatives each returns.

Part 2, scaling: random normalised embeddings (dim 384), time and peak memory of the
search alone as the corpus grows; ours (`exact_topk`, chunked) vs the naive full
matmul + topk. Writes `benchmarks/mine_scaling.png`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from melscribe_torch.data import RetrievalSet  # noqa: E402
from melscribe_torch.models import BiEncoder, resolve_model_path  # noqa: E402
from melscribe_torch.models.device import native_bf16  # noqa: E402
from melscribe_torch.retrieval import exact_topk  # noqa: E402

SOURCES = ["musiccaps", "lp-musiccaps-mc", "conceptcaps"]
GPL_QUERY_BATCH = 128  # gpl's miner scores requests in batches of this many


def load_pairs(args) -> RetrievalSet:
    """The first requests of the training pairs, their positives and other descriptor sets."""
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        texts = common.synthetic_texts(args.max_requests + args.max_docs, args.seed)
        queries = {f"q{i}": t for i, t in enumerate(texts[: args.max_requests])}
        corpus = {f"d{i}": t for i, t in enumerate(texts[args.max_requests :])}
        qrels = {f"q{i}": {f"d{i % len(corpus)}"} for i in range(len(queries))}
        return RetrievalSet(queries=queries, corpus=corpus, qrels=qrels)
    pairs = common.training_pairs(args.data_root, SOURCES)
    qids = list(pairs.queries)[: args.max_requests]
    keep = {d for q in qids for d in pairs.qrels[q]}
    keep.update([d for d in pairs.corpus if d not in keep][: args.max_docs])
    return RetrievalSet(
        queries={q: pairs.queries[q] for q in qids},
        corpus={d: t for d, t in pairs.corpus.items() if d in keep},
        qrels={q: pairs.qrels[q] for q in qids},
    )


def mine_ours(
    encoder: BiEncoder, pairs: RetrievalSet, k: int, batch_size: int, precision: str = "fp32"
) -> dict[str, list[str]]:
    try:
        from melscribe_torch.mining import mine_with_encoder
    except ImportError:  # the mining module is optional for this benchmark
        mine_with_encoder = None
    if mine_with_encoder is not None:
        return mine_with_encoder(
            encoder, pairs, k=k, score="cos", batch_size=batch_size, precision=precision, same_clip=False
        )
    doc_ids = list(pairs.corpus)
    index_of = {d: i for i, d in enumerate(doc_ids)}
    qids = list(pairs.queries)
    d_emb = encoder.encode([pairs.corpus[d] for d in doc_ids], batch_size=batch_size)
    q_emb = encoder.encode([pairs.queries[q] for q in qids], batch_size=batch_size)
    exclude = [sorted(index_of[d] for d in pairs.qrels[q]) for q in qids]
    _, indices = exact_topk(q_emb, d_emb, k=k, score="cos", exclude=exclude)
    return {q: [doc_ids[i] for i in row] for q, row in zip(qids, indices.tolist())}


def mine_gpl_style(peer, pairs: RetrievalSet, k: int, batch_size: int) -> dict[str, list[str]]:
    """gpl's way: encode the corpus; per 128 requests encode them, a full matmul + topk, positives dropped after."""
    doc_ids = list(pairs.corpus)
    qids = list(pairs.queries)
    d_emb = peer.encode([pairs.corpus[d] for d in doc_ids], batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
    most_positives = max(len(pairs.qrels[q]) for q in qids)
    out = {}
    for start in range(0, len(qids), GPL_QUERY_BATCH):
        q_emb = peer.encode(
            [pairs.queries[q] for q in qids[start : start + GPL_QUERY_BATCH]],
            batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False,
        )
        scores = q_emb @ d_emb.T
        _, indices = torch.topk(scores, min(k + most_positives, len(doc_ids)), dim=1)
        for qid, row in zip(qids[start : start + GPL_QUERY_BATCH], indices.tolist()):
            out[qid] = [doc_ids[i] for i in row if doc_ids[i] not in pairs.qrels[qid]][:k]
    return out


def mean_overlap(ours: dict[str, list[str]], peer: dict[str, list[str]]) -> float:
    """Mean share of our negatives that the peer also returned, per request."""
    shares = [len(set(ours[q]) & set(peer[q])) / max(len(ours[q]), 1) for q in ours]
    return sum(shares) / len(shares)


def naive_topk(q: torch.Tensor, d: torch.Tensor, k: int) -> torch.Tensor:
    return torch.topk(q @ d.T, k, dim=1).indices


def scaling_curve(args, device: torch.device) -> list[dict]:
    generator = torch.Generator().manual_seed(args.seed)
    q = torch.nn.functional.normalize(torch.randn(args.scaling_queries, args.dim, generator=generator), dim=1)
    q = q.to(device)
    points = []
    for size in args.sizes:
        d = torch.nn.functional.normalize(torch.randn(size, args.dim, generator=generator), dim=1).to(device)
        sides = {
            "ours": lambda: exact_topk(q, d, k=args.k, score="dot", device=device)[1],
            "naive": lambda: naive_topk(q, d, args.k).cpu(),
        }
        figures = common.measure_sides(
            sides, device=device, repeats=args.repeats, warmup=args.warmup, work=len(q)
        )
        same = torch.equal(figures["ours"]["result"], figures["naive"]["result"])
        point = {"corpus_size": size, "same_top_k": same}
        for side, fig in figures.items():
            point[side] = common.strip_result(fig)
            # steady-state repeats may reuse pages taken on the first call: count both
            point[side]["peak_mb"] = fig.get("peak_gpu_mb") or max(
                fig["peak_cpu_rss_delta_mb"], fig["first_call_cpu_rss_delta_mb"] or 0.0
            )
        points.append(point)
        print(
            f"corpus {size:>9,}: ours {fig_s(point['ours'])}, naive {fig_s(point['naive'])}, same top-k: {same}"
        )
        del d
    return points


def fig_s(side: dict) -> str:
    return f"{side['seconds']['median']:.3f} s, peak {side['peak_mb']:.0f} MB"


def plot(points: list[dict], path: Path, device: torch.device, queries: int, dim: int) -> str:
    """Draw the scaling curve into ``path``; returns what happened, for the results file."""
    try:
        import matplotlib
    except ImportError:
        message = "skipped: matplotlib is not installed (pip install -e .[bench])"
        print(f"plot {message}")
        return message

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p["corpus_size"] for p in points]
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for side, label in (("ours", "ours: exact_topk (chunked)"), ("naive", "naive: full matmul + topk")):
        ax_time.plot(sizes, [p[side]["seconds"]["median"] for p in points], "o-", label=label)
        ax_mem.plot(sizes, [p[side]["peak_mb"] for p in points], "o-", label=label)
    for ax, ylabel in ((ax_time, "seconds (median)"), (ax_mem, "peak memory growth (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"corpus size (descriptor sets, dim {dim})")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"top-30 search for {queries} requests on {device.type}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)  # atomic
    print(f"wrote {path}")
    return f"wrote {path}"


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/mine.json")
    parser.add_argument("--data-root", default=common.DEFAULT_DATA_ROOT)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--max-requests", type=int, default=128)
    parser.add_argument("--max-docs", type=int, default=768, help="descriptor sets besides the positives")
    parser.add_argument("--mine-repeats", type=int, default=2, help="timed runs of part 1 (no warm-up)")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--scaling-queries", type=int, default=256)
    parser.add_argument("--plot", default="benchmarks/mine_scaling.png")
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.warmup, args.mine_repeats = 1, 1, 1
        args.max_requests, args.max_docs, args.max_length = 8, 40, 32
        args.sizes, args.scaling_queries, args.dim = "500,2000", 16, 32
    args.sizes = [int(s) for s in str(args.sizes).split(",")]
    device = common.setup(args)
    st = common.load_peer(args.no_peer)

    pairs = load_pairs(args)
    print(f"part 1: {len(pairs.queries)} requests, {len(pairs.corpus)} descriptor sets, k={args.k}, {device}")
    encoder = BiEncoder.from_pretrained(args.model, max_length=args.max_length, device=device)
    sides = {
        "ours": lambda: mine_ours(encoder, pairs, args.k, args.batch_size),
        "ours_bf16": lambda: mine_ours(encoder, pairs, args.k, args.batch_size, "bf16"),
    }
    if device.type != "cpu":
        del sides["ours_bf16"]  # half precision on a GPU is another comparison (fp16)
    elif not native_bf16(device):  # train.py's mining.precision=auto runs fp32 here
        del sides["ours_bf16"]
        print("ours bf16 skipped: this CPU emulates bf16 (mining.precision=auto encodes in fp32)")
    if st is not None:
        peer = st.SentenceTransformer(resolve_model_path(args.model), device=str(device))
        peer.max_seq_length = args.max_length
        sides["peer"] = lambda: mine_gpl_style(peer, pairs, args.k, args.batch_size)
    with torch.inference_mode():
        figures = common.measure_sides(
            sides, device=device, repeats=args.mine_repeats, warmup=0, work=len(pairs.queries)
        )
    real = {side: common.strip_result(fig) for side, fig in figures.items()}
    real["ratio_ours_over_peer"] = common.ratio(figures["ours"], figures.get("peer"))
    ours_neg = figures["ours"]["result"]
    positives_returned = sum(len(set(negs) & pairs.qrels[q]) for q, negs in ours_neg.items())
    real["positives_returned_ours"] = positives_returned
    peer_neg = figures["peer"]["result"] if "peer" in figures else None
    if peer_neg is not None:
        real["mean_negative_overlap_ours_vs_peer"] = mean_overlap(ours_neg, peer_neg)
    rows = [[
        "ours fp32", common.format_rate(figures["ours"], "req/s"),
        f"{real['ratio_ours_over_peer']:.2f}" if real["ratio_ours_over_peer"] else "-",
        f"{real.get('mean_negative_overlap_ours_vs_peer', float('nan')):.3f}", positives_returned,
    ]]
    if "ours_bf16" in figures:
        real["ratio_ours_bf16_over_peer_fp32"] = common.ratio(figures["ours_bf16"], figures.get("peer"))
        if peer_neg is not None:
            real["mean_negative_overlap_ours_bf16_vs_peer"] = mean_overlap(figures["ours_bf16"]["result"], peer_neg)
        ratio = real["ratio_ours_bf16_over_peer_fp32"]
        rows.append([
            "ours bf16 (train.py's auto here)", common.format_rate(figures["ours_bf16"], "req/s"),
            f"{ratio:.2f}" if ratio else "-",
            f"{real.get('mean_negative_overlap_ours_bf16_vs_peer', float('nan')):.3f}", "",
        ])
    rows.append(["gpl-style fp32", common.format_rate(figures.get("peer"), "req/s"), "", "", ""])
    common.print_table(
        "hard-negative mining on real texts, encode + search (median over repeats)",
        ["side", "requests/s", "ours/peer", "negative overlap", "positives returned"],
        rows,
    )
    if args.profile:
        print("\nprofile: ours, part 1")
        with common.maybe_profile(True, device):
            mine_ours(encoder, pairs, args.k, args.batch_size)
    del encoder
    print(f"\npart 2: scaling, {args.scaling_queries} random requests, dim {args.dim}")
    points = scaling_curve(args, device)
    results = {"real": real, "scaling": points}
    if len(points) >= 2:
        big = [p for p in points if p["corpus_size"] >= 100_000] or points[-2:]
        growth = big[-1]["ours"]["peak_mb"] / max(big[0]["ours"]["peak_mb"], 1e-9)
        results["ours_memory_growth_from_to"] = [big[0]["corpus_size"], big[-1]["corpus_size"], growth]
        print(f"ours peak memory {big[0]['corpus_size']:,} -> {big[-1]['corpus_size']:,}: x{growth:.2f}")
    if not args.tiny or args.plot != parser.get_default("plot"):
        results["plot"] = plot(points, Path(args.plot), device, args.scaling_queries, args.dim)
    common.write_results(args.out, args, device, results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
