"""Cross-encoder pairs/s for pseudo-labelling: `CrossEncoder.predict` vs sentence-transformers' `CrossEncoder.predict`.

    python benchmarks/label.py                       # fp32 + bf16 (fp16 on GPU), 256 pairs

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

from melscribe_torch.models import CrossEncoder, resolve_model_path  # noqa: E402

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def load_pairs(args) -> list[tuple[str, str]]:
    rng = random.Random(args.seed)
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        texts = common.synthetic_texts(2 * args.max_pairs, args.seed)
        return list(zip(texts[::2], texts[1::2]))
    from melscribe_torch.data.training import build_training_pairs, load_training_records

    pairs = build_training_pairs(load_training_records(args.data_root, ["musiccaps", "lp-musiccaps-mc"]))
    doc_ids = list(pairs.corpus)
    out = []
    for qid in list(pairs.queries)[: (args.max_pairs + 1) // 2]:
        positive = sorted(pairs.qrels[qid])[0]
        out.append((pairs.queries[qid], pairs.corpus[positive]))
        out.append((pairs.queries[qid], pairs.corpus[rng.choice(doc_ids)]))
    return out[: args.max_pairs]


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
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.warmup, args.max_pairs, args.max_length = 1, 0, 24, 32
    device = common.setup(args)
    st = common.load_peer(args.no_peer)
    pairs = load_pairs(args)
    print(f"{len(pairs)} pairs, batch {args.batch_size}, max length {args.max_length}, {device}")

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

    results: dict = {
        "num_pairs": len(pairs),
        "peer_half_precision": "CrossEncoder.to(dtype) (whole model cast); ours: autocast",
        "precisions": {},
    }
    rows = []
    for precision in common.precisions_for(device, args.precisions):
        if peer is not None:
            peer.to(HALF.get(precision, torch.float32))
        sides = {"ours": lambda: run_ours(precision)}
        if peer is not None:
            sides["peer"] = lambda: run_peer(precision)
        figures = common.measure_sides(
            sides, device=device, repeats=args.repeats, warmup=args.warmup, work=len(pairs)
        )
        entry = {side: common.strip_result(fig) for side, fig in figures.items()}
        entry["ratio_ours_over_peer"] = common.ratio(figures["ours"], figures.get("peer"))
        agreement = "-"
        if peer is not None:
            diff = (figures["ours"]["result"] - figures["peer"]["result"]).abs()
            entry["max_abs_score_diff"] = diff.max().item()
            entry["score_correlation"] = torch.corrcoef(
                torch.stack([figures["ours"]["result"], figures["peer"]["result"]])
            )[0, 1].item()
            agreement = f"{entry['max_abs_score_diff']:.2e}"
        results["precisions"][precision] = entry
        ratio = entry["ratio_ours_over_peer"]
        rows.append([
            precision,
            common.format_rate(figures["ours"], "pairs/s"),
            common.format_rate(figures.get("peer"), "pairs/s"),
            f"{ratio:.2f}" if ratio else "-",
            agreement,
        ])
    common.print_table(
        "cross-encoder scoring throughput (median over repeats)",
        ["precision", "ours", "sentence-transformers", "ours/peer", "max |score diff|"],
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
