"""Cross-encoder pairs/s for pseudo-labelling: `CrossEncoder.predict` vs sentence-transformers' `CrossEncoder.predict`.

    python benchmarks/label.py                       # fp32 + bf16 (fp16 on GPU), 256 pairs
    python benchmarks/label.py --run-dir outputs/train/<run>   # stage 4 on that run's tuples

Two measurements:

1. Scoring: pairs/s of one `predict` call over the same distinct pairs on both sides.
2. The pseudo-labelling stage (GPL stage 4): tuples/s labelled with margins
   CE(q, pos) - CE(q, neg). Ours is `labeling.label_margins`, which scores each distinct
   (request, document) pair once; the peer is the `gpl` package's `PseudoLabeler.run` loop:
   per batch of 32 tuples, re-tokenise the three columns to `max_length` and decode them,
   then `CrossEncoder.predict` on the batch's 32 positive and 32 negative pairs. Tuples
   repeat pairs (a request has 3 positives and about 8 tuples in the default run), which
   only our side exploits. The tuples are a real run's (`--run-dir`: its
   `training-tuples.tsv` or `gpl-training-data.tsv`, restricted to `--requests` random
   requests with all their tuples) or, without one, drawn like `train.py` draws them
   (`sample_training_tuples`) for `--requests` requests, each with 2 x 30 negatives
   picked at random (a mined pool of that size has at most as many distinct pairs).

Both sides load one saved directory: the MiniLM backbone as a Hugging Face
sequence-classification model with a new one-logit head (seed fixed), so both compute the
same scores (raw logits: the peer's default sigmoid is switched off). Pairs are (request,
positive) and (request, random descriptor set) from the training pairs, as in labelling.
Ours uses autocast for bf16/fp16; the peer's half precision is `model.to(dtype)`.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from melscribe_torch.data import RetrievalSet  # noqa: E402
from melscribe_torch.labeling import label_margins, sample_training_tuples  # noqa: E402
from melscribe_torch.models import CrossEncoder, resolve_model_path  # noqa: E402

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def load_pairs(args) -> list[tuple[str, str]]:
    rng = random.Random(args.seed)
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        texts = common.synthetic_texts(2 * args.max_pairs, args.seed)
        return list(zip(texts[::2], texts[1::2]))
    pairs = common.training_pairs(args.data_root)
    doc_ids = list(pairs.corpus)
    out = []
    for qid in list(pairs.queries)[: (args.max_pairs + 1) // 2]:
        positive = sorted(pairs.qrels[qid])[0]
        out.append((pairs.queries[qid], pairs.corpus[positive]))
        out.append((pairs.queries[qid], pairs.corpus[rng.choice(doc_ids)]))
    return out[: args.max_pairs]


def tuples_from_run(run_dir: Path, requests: int, seed: int) -> tuple[RetrievalSet, list]:
    """All tuples of `requests` random requests of a train.py run, with the texts they name."""
    from melscribe_torch.run_folder import (
        GPL_TRAINING_FILE,
        TUPLES_FILE,
        read_training_pairs,
        read_training_rows,
    )

    if (run_dir / TUPLES_FILE).is_file():
        tuples = read_training_rows(run_dir, with_margins=False)
    elif (run_dir / GPL_TRAINING_FILE).is_file():
        tuples = [row[:3] for row in read_training_rows(run_dir, with_margins=True)]
    else:
        raise SystemExit(f"{run_dir}: neither {TUPLES_FILE} nor {GPL_TRAINING_FILE}: run train.py first")
    chosen = set(random.Random(seed).sample(sorted({qid for qid, _, _ in tuples}), requests))
    return read_training_pairs(run_dir), [t for t in tuples if t[0] in chosen]


def load_tuples(args) -> tuple[RetrievalSet, list]:
    """The labelling workload: a run's tuples, or tuples sampled over the training pairs."""
    if args.run_dir:
        return tuples_from_run(Path(args.run_dir), args.requests, args.seed)
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        texts = common.synthetic_texts(200, args.seed)
        pairs = RetrievalSet(
            queries={f"q{i}": texts[i] for i in range(20)},
            corpus={f"d{i}": texts[i] for i in range(20, 200)},
            qrels={f"q{i}": {f"d{20 + 3 * i + j}" for j in range(3)} for i in range(20)},
        )
    else:
        pairs = common.training_pairs(args.data_root)
    return pairs, sampled_tuples(pairs, args.requests, args.tuples_per_request, args.seed)


def sampled_tuples(
    pairs: RetrievalSet, requests: int, tuples_per_request: float, seed: int
) -> list:
    """Tuples drawn as train.py draws them, over 2 x 30 random negatives per request."""
    rng = random.Random(seed)
    doc_ids = sorted(pairs.corpus)
    hard_negatives = {}
    for qid in rng.sample(sorted(pairs.qrels), requests):
        positives = sorted(pairs.qrels[qid])
        pool = [d for d in rng.sample(doc_ids, 60 + len(positives)) if d not in pairs.qrels[qid]][:60]
        hard_negatives[qid] = {"pos": positives, "neg": {"a": pool[:30], "b": pool[30:]}}
    return sample_training_tuples(hard_negatives, round(requests * tuples_per_request), seed)


def compare_precisions(args, device, peer, ours_fn, peer_fn, work: int, unit: str, output: str):
    """Time both sides at each precision; ratio, and how far apart their outputs are.

    Returns:
        ({precision: entry}, table rows); entry keys ``max_abs_<output>_diff`` and
        ``<output>_correlation`` when the peer ran.
    """
    entries, rows = {}, []
    for precision in common.precisions_for(device, args.precisions):
        sides = {"ours": lambda: ours_fn(precision)}
        if peer_fn is not None:
            peer.to(HALF.get(precision, torch.float32))
            sides["peer"] = lambda: peer_fn(precision)
        figures = common.measure_sides(
            sides, device=device, repeats=args.repeats, warmup=args.warmup, work=work
        )
        entry = {side: common.strip_result(fig) for side, fig in figures.items()}
        entry["ratio_ours_over_peer"] = common.ratio(figures["ours"], figures.get("peer"))
        agreement = "-"
        if peer_fn is not None:
            ours_out, peer_out = figures["ours"]["result"], figures["peer"]["result"]
            entry[f"max_abs_{output}_diff"] = (ours_out - peer_out).abs().max().item()
            entry[f"{output}_correlation"] = torch.corrcoef(torch.stack([ours_out, peer_out]))[0, 1].item()
            agreement = f"{entry[f'max_abs_{output}_diff']:.2e}"
        entries[precision] = entry
        ratio = entry["ratio_ours_over_peer"]
        rows.append([
            precision,
            common.format_rate(figures["ours"], unit),
            common.format_rate(figures.get("peer"), unit),
            f"{ratio:.2f}" if ratio else "-",
            agreement,
        ])
    return entries, rows


def build_scoring_dir(model: str, seed: int, path: Path) -> Path:
    """The backbone with a new seeded one-logit head, saved as a sequence-classification dir."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model_path(model)
    torch.manual_seed(seed)
    classifier = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    classifier.save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/label.json")
    parser.add_argument("--data-root", default=common.DEFAULT_DATA_ROOT)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-pairs", type=int, default=256)
    parser.add_argument("--precisions", default=None, help="comma list; default fp32 + bf16/fp16")
    parser.add_argument("--run-dir", default=None, help="label this train.py run's tuples (default: sampled)")
    parser.add_argument("--requests", type=int, default=48, help="requests whose tuples are labelled")
    parser.add_argument(
        "--tuples-per-request", type=float, default=8.1,
        help="sampled tuples: 2400 steps x 32 / 9487 requests in the default run",
    )
    parser.add_argument("--tuple-batch", type=int, default=32, help="tuples per gpl labelling step")
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.warmup, args.max_pairs, args.max_length = 1, 0, 24, 32
        args.requests, args.tuple_batch = 4, 8
    device = common.setup(args)
    st = common.load_peer(args.no_peer)
    pairs = load_pairs(args)
    print(f"{len(pairs)} pairs, batch {args.batch_size}, max length {args.max_length}, {device}")
    workload, tuples = load_tuples(args)
    distinct = len({(workload.queries[q], workload.corpus[d]) for q, p, n in tuples for d in (p, n)})
    print(f"labelling: {len(tuples)} tuples of {args.requests} requests, {distinct} distinct pairs")

    with tempfile.TemporaryDirectory() as tmp:
        scoring_dir = build_scoring_dir(args.model, args.seed, Path(tmp) / "cross-encoder")
        ours = CrossEncoder.from_pretrained(str(scoring_dir), max_length=args.max_length, device=device)
        peer = None
        if st is not None:
            peer = st.CrossEncoder(
                str(scoring_dir), num_labels=1, max_length=args.max_length, device=str(device),
                activation_fn=torch.nn.Identity(),
            )

    def run_ours(precision: str) -> torch.Tensor:
        return ours.predict(pairs, batch_size=args.batch_size, precision=precision, show_progress=False)

    def run_peer(precision: str) -> torch.Tensor:
        scores = peer.predict(
            pairs, batch_size=args.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        return scores.float().cpu()

    def label_ours(precision: str) -> torch.Tensor:
        margins = label_margins(ours, workload, tuples, batch_size=args.batch_size, precision=precision)
        return torch.tensor(margins)

    def label_gpl_way(precision: str) -> torch.Tensor:
        # gpl.toolkit.pl.PseudoLabeler.run: every tuple's two pairs, batch after batch
        margins = []
        for start in range(0, len(tuples), args.tuple_batch):
            batch = tuples[start : start + args.tuple_batch]
            query, pos, neg = (
                retokenize([texts[i] for i in ids])
                for texts, ids in zip(
                    (workload.queries, workload.corpus, workload.corpus), zip(*batch)
                )
            )
            scores = peer.predict(
                list(zip(query, pos)) + list(zip(query, neg)),
                batch_size=args.batch_size, convert_to_tensor=True, show_progress_bar=False,
            ).float().cpu()
            margins.append(scores[: len(batch)] - scores[len(batch) :])
        return torch.cat(margins)

    def retokenize(texts: list[str]) -> list[str]:
        features = peer.tokenizer(
            [t.strip() for t in texts], padding=True, truncation="longest_first",
            return_tensors="pt", max_length=args.max_length,
        )
        return peer.tokenizer.batch_decode(
            features["input_ids"], skip_special_tokens=True, clean_up_tokenization_spaces=True
        )

    results: dict = {
        "num_pairs": len(pairs),
        "labelling": {
            "tuples": len(tuples),
            "requests": args.requests,
            "distinct_pairs": distinct,
            "source": str(args.run_dir) if args.run_dir else "sampled",
            "peer": "gpl PseudoLabeler.run loop: retokenize + CrossEncoder.predict per tuple batch",
            "precisions": {},
        },
        "peer_half_precision": "CrossEncoder.to(dtype) (whole model cast); ours: autocast",
        "precisions": {},
    }
    results["precisions"], rows = compare_precisions(
        args, device, peer, run_ours, run_peer if peer else None, len(pairs), "pairs/s", "score"
    )
    common.print_table(
        "cross-encoder scoring throughput (median over repeats)",
        ["precision", "ours", "sentence-transformers", "ours/peer", "max |score diff|"],
        rows,
    )
    results["labelling"]["precisions"], rows = compare_precisions(
        args, device, peer, label_ours, label_gpl_way if peer else None, len(tuples), "tuples/s", "margin"
    )
    common.print_table(
        "pseudo-labelling stage, margins of training tuples (median over repeats)",
        ["precision", "ours (label_margins)", "gpl PseudoLabeler way", "ours/peer", "max |margin diff|"],
        rows,
    )
    if args.profile:
        print("\nprofile: ours, fp32")
        with common.maybe_profile(True, device):
            run_ours("fp32")
    common.write_results(args.out, args, device, results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
