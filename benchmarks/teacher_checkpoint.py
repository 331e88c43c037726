"""What the teacher's training checkpoint costs, beside the steps it saves between two of them.

    python benchmarks/teacher_checkpoint.py                                   # all-MiniLM-L6-v2
    python benchmarks/teacher_checkpoint.py --model sentence-transformers/all-mpnet-base-v2

A teacher training step (a batch of real training pairs as the teacher stage draws them: the
request with its descriptor set or a random one, BCE, clipping, AdamW; bf16 where native) is
timed, then one save of ``teacher-checkpoint.pt`` (``teacher.checkpoint``: weights, AdamW's
two moments, the random states and the rest of the shuffled pass, written atomically with its
sha256) into ``--scratch`` (put it on the disk the run folders live on). The overhead is one
save per ``teacher.checkpoint_every`` steps (the YAML's). There is no peer:
sentence-transformers' ``CrossEncoder.fit`` keeps no resumable state.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from melscribe_torch.conf import read_option
from melscribe_torch.models import CrossEncoder
from melscribe_torch.teacher import PointwiseBCE
from melscribe_torch.teacher.checkpoint import (
    LoopState,
    TeacherCheckpoint,
    save_teacher_checkpoint,
)
from melscribe_torch.teacher.training import optimizer_step
from melscribe_torch.training.optimizer import build_adamw


def labelled_pairs(args) -> list[tuple[str, str, float]]:
    """Each request with its own descriptor set (1) and a random one (0)."""
    rng = random.Random(args.seed)
    if args.tiny or not (Path(args.data_root) / "LP-MusicCaps-MC").is_dir():
        texts = common.synthetic_texts(2 * args.batch_size, args.seed)
        return [(texts[i], texts[i + 1], float(i % 4 == 0)) for i in range(0, len(texts), 2)]
    pairs = common.training_pairs(args.data_root)
    doc_ids = list(pairs.corpus)
    out = []
    for qid in list(pairs.queries)[: args.batch_size // 2]:
        out.append((pairs.queries[qid], pairs.corpus[min(pairs.qrels[qid])], 1.0))
        out.append((pairs.queries[qid], pairs.corpus[rng.choice(doc_ids)], 0.0))
    return out


def main(argv: list[str] | None = None) -> None:
    out = "benchmarks/results/teacher_checkpoint.json"
    parser = common.base_parser(__doc__.splitlines()[0], out)
    parser.add_argument("--data-root", default=common.DEFAULT_DATA_ROOT)
    defaults = read_option("teacher")  # where each default is written once
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument(
        "--every", type=int, default=defaults["checkpoint_every"], help="steps between saves"
    )
    parser.add_argument("--precision", default=None, help="fp32 / bf16; default: bf16 where native")
    parser.add_argument("--items", type=int, default=30_000, help="saved shuffle order length")
    parser.add_argument(
        "--scratch", default="outputs/benchmark-scratch", help="where the checkpoint is written"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch_size, args.items = 4, 100
    device = common.setup(args)
    precision = args.precision or common.precisions_for(device, None)[-1]
    model = CrossEncoder.from_pretrained(args.model, device=device)
    model.train()
    optimizer = build_adamw(model.parameters(), 1e-4, 0.01, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    batch = labelled_pairs(args)
    loss_fn = PointwiseBCE()
    features = {k: v.to(device) for k, v in model.tokenize_pairs(*loss_fn.pairs(batch)).items()}

    def step() -> None:  # the teacher loop's own step
        optimizer_step(model, features, batch, loss_fn, optimizer, scaler, precision)

    scratch = Path(args.scratch)
    checkpoint = TeacherCheckpoint(scratch / "teacher-checkpoint.pt", args.every, "benchmark")
    loop = LoopState(0, random.Random(args.seed), list(range(args.items)), [0.5] * 10)
    try:
        steps = common.measure(
            step, device=device, repeats=args.repeats, warmup=args.warmup, work=len(batch)
        )
        saves = common.measure(
            lambda: save_teacher_checkpoint(checkpoint, model, optimizer, scaler, loop),
            device=device, repeats=args.repeats, warmup=args.warmup, work=1,
        )
        size_mb = checkpoint.path.stat().st_size / 2**20
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    step_s, save_s = steps["seconds"]["median"], saves["seconds"]["median"]
    results = {
        "precision": precision,
        "pairs_per_step": len(batch),
        "padded_length": int(features["input_ids"].shape[1]),
        "step_s": steps["seconds"],
        "save_s": saves["seconds"],
        "checkpoint_mb": size_mb,
        "checkpoint_every": args.every,
        # one save per `every` steps, as a share of those steps' time
        "overhead": save_s / (args.every * step_s) if args.every else 0.0,
        "save_mb_per_s": size_mb / save_s,
    }
    print(
        f"step {step_s:.2f} s ({precision}, {len(batch)} pairs), "
        f"save {save_s:.2f} s ({size_mb:.0f} MB): "
        f"{100 * results['overhead']:.2f}% of {args.every} steps"
    )
    common.write_results(args.out, args, device, results, __file__, argv)


if __name__ == "__main__":
    main()
