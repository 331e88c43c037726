"""MarginMSE training examples/s (forward + backward + AdamW step) and peak memory, ours vs sentence-transformers.

    python benchmarks/train_step.py                  # fp32 and bf16 (fp16 + GradScaler on GPU)

An example is (request, positive, negative, teacher margin). Ours is a stripped copy of the
training hot path (no `melscribe_torch/training/` step function existed when this was
written): tokenize the requests and, as one batch, positives + negatives (like-width
columns merged, as sentence-transformers 6 does; `--separate-docs` for three forwards),
`BiEncoder.forward`, dot-product scores, `melscribe_torch.losses.MarginMSELoss`, autocast
from the precision string and the training loop's attention kernels (`training_attention`:
math on CPU), GradScaler only for fp16, AdamW (`training.optimizer.build_adamw`: fused on
CPU and CUDA). The peer does what its trainer does per step: `model.tokenize` each column,
`sentence_transformers` `MarginMSELoss(model)(features, labels)` (dot product), backward,
the same fused AdamW (the Trainer's default with torch >= 2.8), under the same autocast.
Both start from the same weights; texts are real training pairs with fixed pseudo margins.
`--dropout P` sets every dropout of both sides to P (`train.dropout`; default: the
backbone's own 0.1).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from melscribe_torch.losses import MarginMSELoss  # noqa: E402
from melscribe_torch.models import BiEncoder, resolve_model_path  # noqa: E402
from melscribe_torch.models.inference import autocast_context, training_attention  # noqa: E402
from melscribe_torch.training import set_dropout  # noqa: E402
from melscribe_torch.training.optimizer import build_adamw  # noqa: E402


def load_examples(args) -> list[tuple[str, str, str]]:
    """(request, positive, negative) triples from the training pairs, or synthetic ones."""
    rng = random.Random(args.seed)
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        texts = common.synthetic_texts(3 * args.num_batches * args.batch_size, args.seed)
        return [tuple(texts[i : i + 3]) for i in range(0, len(texts), 3)]
    pairs = common.training_pairs(args.data_root)
    doc_ids = list(pairs.corpus)
    triples = []
    for qid in list(pairs.queries)[: args.num_batches * args.batch_size]:
        positive = sorted(pairs.qrels[qid])[0]
        negative = rng.choice(doc_ids)  # a random negative: the step cost does not depend on which
        triples.append((pairs.queries[qid], pairs.corpus[positive], pairs.corpus[negative]))
    return triples


def peer_optimizer_loss(st, model_dir: str, device: torch.device, max_length: int, lr: float):
    model = st.SentenceTransformer(model_dir, device=str(device))
    model.max_seq_length = max_length
    model.train()
    try:
        from sentence_transformers.sentence_transformer.losses import MarginMSELoss as PeerLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MarginMSELoss as PeerLoss
    # the Trainer's default optimizer (adamw_torch_fused with torch >= 2.8), as ours
    return model, PeerLoss(model), build_adamw(model.parameters(), lr, 0.01, device)


def main(argv: list[str] | None = None) -> dict:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/train_step.json")
    parser.add_argument("--data-root", default=common.DEFAULT_DATA_ROOT)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-batches", type=int, default=4, help="distinct batches cycled through")
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed run")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument(
        "--separate-docs", action="store_true",
        help="ours: one forward per text column (3) instead of requests + both descriptor-set "
        "columns merged (2), which is what the peer's loss does",
    )
    parser.add_argument("--precisions", default=None, help="comma list; default fp32 + bf16/fp16")
    parser.add_argument(
        "--dropout", type=float, default=None,
        help="every dropout of both models (train.dropout); default: the backbone's own",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.warmup, args.batch_size, args.num_batches, args.steps = 1, 1, 4, 2, 2
        args.max_length = 32
    device = common.setup(args)
    st = common.load_peer(args.no_peer)

    examples = load_examples(args)
    batches = [examples[i : i + args.batch_size] for i in range(0, len(examples), args.batch_size)]
    margins = [
        torch.linspace(-1.0, 1.0, len(batch), device=device) for batch in batches
    ]  # fixed teacher margins: their values do not change the cost
    model_dir = resolve_model_path(args.model)
    examples_per_run = args.steps * args.batch_size
    print(f"batch {args.batch_size}, {args.steps} steps per run, max length {args.max_length}, {device}")

    results: dict = {"examples_per_run": examples_per_run, "precisions": {}}
    rows = []
    for precision in common.precisions_for(device, args.precisions):
        torch.manual_seed(args.seed)
        ours = BiEncoder.from_pretrained(args.model, max_length=args.max_length, device=device).train()
        if args.dropout is not None:
            set_dropout(ours, args.dropout)
        ours_opt = build_adamw(ours.parameters(), args.lr, 0.01, device)
        ours_loss = MarginMSELoss()
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        step_of = {"ours": 0, "peer": 0}

        def ours_steps() -> float:
            for _ in range(args.steps):
                i = step_of["ours"] % len(batches)
                step_of["ours"] += 1
                requests, positives, negatives = zip(*batches[i])
                if args.separate_docs:
                    columns = [requests, positives, negatives]
                else:  # one forward for both descriptor-set columns: they share a width profile
                    columns = [requests, positives + negatives]
                features = [
                    {k: v.to(device) for k, v in ours.tokenize(col).items()} for col in columns
                ]
                with autocast_context(device, precision), training_attention(device):
                    q, *docs = (ours(**f) for f in features)
                    p, n = docs if args.separate_docs else docs[0].chunk(2)
                    loss = ours_loss((q * p).sum(-1).float(), (q * n).sum(-1).float(), margins[i])
                scaler.scale(loss).backward()
                scaler.step(ours_opt)
                scaler.update()
                ours_opt.zero_grad(set_to_none=True)
            return loss.item()

        sides = {"ours": ours_steps}
        if st is not None:
            torch.manual_seed(args.seed)
            peer, peer_loss, peer_opt = peer_optimizer_loss(st, model_dir, device, args.max_length, args.lr)
            if args.dropout is not None:
                set_dropout(peer, args.dropout)
            peer_scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
            tokenize = getattr(peer, "preprocess", None) or peer.tokenize

            def peer_steps() -> float:
                for _ in range(args.steps):
                    i = step_of["peer"] % len(batches)
                    step_of["peer"] += 1
                    columns = list(zip(*batches[i]))
                    features = [
                        {k: v.to(device) for k, v in tokenize(list(col)).items() if torch.is_tensor(v)}
                        for col in columns
                    ]
                    with autocast_context(device, precision):
                        loss = peer_loss(features, margins[i])
                    peer_scaler.scale(loss).backward()
                    peer_scaler.step(peer_opt)
                    peer_scaler.update()
                    peer_opt.zero_grad(set_to_none=True)
                return loss.item()

            sides["peer"] = peer_steps
        figures = common.measure_sides(
            sides, device=device, repeats=args.repeats, warmup=args.warmup, work=examples_per_run
        )
        entry = {side: common.strip_result(fig) for side, fig in figures.items()}
        entry["ratio_ours_over_peer"] = common.ratio(figures["ours"], figures.get("peer"))
        entry["last_loss"] = {side: fig["result"] for side, fig in figures.items()}
        results["precisions"][precision] = entry
        ratio = entry["ratio_ours_over_peer"]
        mem = lambda side: (  # noqa: E731
            f"{figures[side].get('peak_gpu_mb', figures[side]['first_call_cpu_rss_delta_mb'] or 0):.0f}"
            if side in figures else "-"
        )
        rows.append([
            precision,
            common.format_rate(figures["ours"], "ex/s"),
            common.format_rate(figures.get("peer"), "ex/s"),
            f"{ratio:.2f}" if ratio else "-",
            f"{mem('ours')} / {mem('peer')}",
        ])
        if args.profile and precision == common.precisions_for(device, args.precisions)[-1]:
            print(f"\nprofile: ours, {precision}, {args.steps} steps")
            with common.maybe_profile(True, device):
                ours_steps()
        del ours, ours_opt
        if st is not None:
            del peer, peer_loss, peer_opt
    memory_kind = "GPU peak MB" if device.type == "cuda" else "first-step RSS growth MB"
    common.print_table(
        "MarginMSE training throughput (median over repeats)",
        ["precision", "ours", "sentence-transformers", "ours/peer", f"{memory_kind} ours / peer"],
        rows,
    )
    common.write_results(args.out, args, device, results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
