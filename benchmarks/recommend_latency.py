"""Per-request latency and peak memory of song search as the catalog grows.

    python benchmarks/recommend_latency.py --sizes 10000 100000 1000000 --out recommend_latency.json

The hot path of `Recommender` dense search, stripped: random L2-normalised descriptor-set
embeddings (N, dim) in the index dtype, one request at a time (as a user queries), top-k.
Backends: ``exact`` (`SearchMatrix.topk`, the recommender's exact search, GPU when present), ``faiss-flat`` (IndexFlatIP,
also exact) and ``faiss-hnsw`` (approximate: its recall@k against exact search is measured).
Encoding the request is not included (one short text; see the model's own numbers).
Peak memory: the process's peak RSS after each size (sizes run in increasing order) and, on
GPU, the peak allocated CUDA memory of that size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from melscribe_torch.io import atomic_write_json
from melscribe_torch.models.device import pick_device
from melscribe_torch.provenance import library_versions, machine_info
from melscribe_torch.recommend.dense_search import SearchMatrix
from melscribe_torch.recommend.faiss_index import build_faiss_index


def random_embeddings(n: int, dim: int, dtype: str, seed: int) -> np.ndarray:
    """(n, dim) L2-normalised Gaussian rows, built in blocks to keep float32 temporaries small."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=dtype)
    for start in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def time_queries(
    search, queries: torch.Tensor, warmup: int, device: torch.device
) -> tuple[list[float], torch.Tensor]:
    """Seconds per request (one at a time) and the (Q, k) indices found."""
    for i in range(min(warmup, len(queries))):
        search(queries[i : i + 1])
    seconds, found = [], []
    for i in range(len(queries)):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        indices = search(queries[i : i + 1])
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        found.append(indices)
    return seconds, torch.cat(found)


def recall_against(found: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean fraction of the exact top-k that ``found`` also returns."""
    hits = [len(set(f.tolist()) & set(e.tolist())) / exact.shape[1] for f, e in zip(found, exact)]
    return float(np.mean(hits))


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=384, help="all-MiniLM-L6-v2 makes 384")
    parser.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="index dtype (the index default, float16, is also the faster on CPU)",
    )
    parser.add_argument("--queries", type=int, default=50, help="timed requests per size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=["exact", "faiss-flat", "faiss-hnsw"])
    parser.add_argument(
        "--hnsw-max-size",
        type=int,
        default=100_000,
        help="skip HNSW above this size (its build takes minutes per million on a few cores)",
    )
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="recommend_latency.json")
    args = parser.parse_args(argv)

    device = torch.device(args.device) if args.device else pick_device()
    queries = torch.from_numpy(random_embeddings(args.queries, args.dim, "float32", args.seed + 1))
    rows = []
    for n in sorted(args.sizes):
        d_emb = random_embeddings(n, args.dim, args.dtype, args.seed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        exact_found = None
        for backend in args.backends:
            row = {
                "size": n,
                "backend": backend,
                "dtype": args.dtype,
                "dim": args.dim,
                "k": args.k,
                "device": str(device),
            }
            if backend == "exact":

                matrix = SearchMatrix(d_emb, device, max_norm=1.0)

                def search(q, matrix=matrix):
                    return matrix.topk(q, args.k)[1]

                row["build_s"] = 0.0
            else:
                if backend == "faiss-hnsw" and n > args.hnsw_max_size:
                    print(
                        f"skipping faiss-hnsw at {n} (> --hnsw-max-size {args.hnsw_max_size})",
                        file=sys.stderr,
                    )
                    continue
                try:
                    start = time.perf_counter()
                    index = build_faiss_index(d_emb, "hnsw" if backend == "faiss-hnsw" else "flat")
                    row["build_s"] = time.perf_counter() - start
                except ImportError as err:
                    print(f"skipping {backend}: {err}", file=sys.stderr)
                    continue

                def search(q, index=index):
                    return torch.from_numpy(index.search(q.numpy(), args.k)[1])

            seconds, found = time_queries(search, queries, args.warmup, device)
            if backend == "exact":
                exact_found = found
            row.update(summary(seconds))
            row["recall_vs_exact"] = (
                recall_against(found, exact_found) if exact_found is not None else None
            )
            row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if device.type == "cuda":
                row["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
            rows.append(row)
            print(
                f"{n:>9} {backend:<11} p50 {row['p50_ms']:8.2f} ms  p95 {row['p95_ms']:8.2f} ms  "
                f"recall@{args.k} vs exact {row['recall_vs_exact'] if row['recall_vs_exact'] is not None else '-'}  "
                f"peak RSS {row['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
        del d_emb

    header = f"| descriptor sets | backend | p50 ms | p95 ms | recall@{args.k} vs exact | build s | peak RSS MiB |"
    lines = [header, "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        recall = "—" if r["recall_vs_exact"] is None else f"{r['recall_vs_exact']:.3f}"
        lines.append(
            f"| {r['size']:,} | {r['backend']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {recall} | "
            f"{r['build_s']:.1f} | {r['peak_rss_mib']:.0f} |"
        )
    print("\n".join(lines))
    payload = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": vars(args),
        "results": rows,
        "seed": args.seed,
        "versions": library_versions(),
        "machine": machine_info(),
    }
    try:
        import faiss

        payload["versions"]["faiss"] = faiss.__version__
    except ImportError:
        pass
    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
