"""Exact search against the physical limit: one pass over the embedding matrix.

    python benchmarks/search_limit.py --catalog real --sizes 1000000 --repeats 15 --out search_limit.json

For each size, in one process and interleaved round by round (so load from other processes
falls on every figure alike):

- ``scan``: the memory-bandwidth probe, a sum over the same (N, H) matrix the search reads
  (each byte read once, almost no arithmetic): the time no exact search can beat;
- ``search``: `SearchMatrix.topk` for one request (as the recommender runs it);
- ``batch``: the same for ``--batch`` requests in one call;
- ``before``: the earlier recommender path (`exact_topk` up-casting 65,536-row chunks per request).

Reported: medians (and p95) in ms, each as a ratio to the scan; the scan's GB/s. The matrix
is the real-embedding catalog of ``real_catalog.py`` (``--catalog real``) or random unit
rows (``--catalog random``), in ``--dtype`` (the index default, float16), held in memory.
Request encoding is not included (``quantize_encoder.py`` times it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results

from melscribe_torch.recommend import dense_search
from melscribe_torch.recommend.dense_search import SearchMatrix
from melscribe_torch.retrieval.search import exact_topk


def memory_scan(rows: torch.Tensor) -> float:
    """Read every element of ``rows`` once (a sum); returns it so the work cannot be skipped."""
    return float(rows.sum())


def interleaved_timings(calls: dict, rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each call per round; round r runs every call once, in order, with argument r."""
    for r in range(warmup):
        for call in calls.values():
            call(r)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call(r)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def against_scan(
    seconds: dict[str, list[float]], scan: str = "scan", per: dict[str, int] | None = None
) -> dict:
    """Median / p95 ms of each timing and its median as a ratio to the scan's median (per request too)."""
    base = float(np.median(seconds[scan]))
    out = {}
    for name, values in seconds.items():
        ms = np.asarray(values) * 1000
        row = {
            "p50_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)),
            "runs_ms": ms.tolist(),
        }
        row["ratio_to_scan"] = row["p50_ms"] / (base * 1000)
        # Load from other processes comes and goes: the ratio within each round is steadier.
        row["round_ratio_p50"] = float(np.median(np.asarray(values) / np.asarray(seconds[scan])))
        if per and name in per:
            row["requests"] = per[name]
            row["per_request_ms"] = row["p50_ms"] / per[name]
            row["per_request_ratio_to_scan"] = row["ratio_to_scan"] / per[name]
        out[name] = row
    return out


def load_matrix(
    kind: str, size: int, dtype: str, dim: int, seed: int, data_root: str, cache_dir: str
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(size, H) rows in ``dtype`` and (R, H) float32 requests: the real catalog or random unit rows."""
    if kind == "real":
        import real_catalog

        catalog, requests, info = real_catalog.load(
            data_root, size=size, seed=seed, cache_dir=cache_dir or real_catalog.CACHE_DIR
        )
        return np.asarray(catalog, dtype=dtype), requests.astype(np.float32), info
    from recommend_latency import random_embeddings

    requests = random_embeddings(256, dim, "float32", seed + 1)
    return random_embeddings(size, dim, dtype, seed), requests, {"kind": "random"}


def measure(rows: torch.Tensor, requests: torch.Tensor, args: argparse.Namespace) -> dict:
    """Scan, one-request search, batched search (and the earlier path), interleaved; see the module docstring."""
    matrix = SearchMatrix(rows, max_norm=1.0)
    num_q, k = requests.shape[0], args.k

    def one(r):
        return matrix.topk(requests[r % num_q : r % num_q + 1], k)

    def batch(r):
        start = (r * args.batch) % max(1, num_q - args.batch)
        return matrix.topk(requests[start : start + args.batch], k)

    def before(r):
        q = requests[r % num_q : r % num_q + 1]
        return exact_topk(q, rows, k, score="dot", corpus_chunk=65536)

    # The first search of a process may compile its kernel (dense_search): timed apart.
    start = time.perf_counter()
    one(0)
    first_call_s = time.perf_counter() - start
    calls = {"scan": lambda r: memory_scan(rows), "search": one, "batch": batch}
    if not args.no_before:
        calls["before"] = before
    figures = against_scan(
        interleaved_timings(calls, args.repeats),
        per={"batch": args.batch, "search": 1, "before": 1},
    )
    same = all(
        torch.equal(one(r)[1], exact_topk(requests[r : r + 1], rows, k, score="dot")[1])
        for r in range(min(num_q, 5))
    )
    nbytes = rows.numel() * rows.element_size()
    out = {
        "dtype": str(rows.dtype).removeprefix("torch."),
        "dim": rows.shape[1],
        "matrix_bytes": nbytes,
        "scan_gb_per_s": nbytes / figures["scan"]["p50_ms"] / 1e6,
        "same_top_k_as_float32_search": same,
        "first_search_s": first_call_s,
        "fused_kernel": bool(dense_search._compiled) and len(rows) >= dense_search.FUSED_MIN_ROWS,
        "threads": torch.get_num_threads(),
        **figures,
    }
    line = (
        f"{rows.shape[0]:>9} {out['dtype']}: scan {figures['scan']['p50_ms']:.1f} ms "
        f"({out['scan_gb_per_s']:.1f} GB/s); search {figures['search']['p50_ms']:.1f} ms = "
        f"{figures['search']['ratio_to_scan']:.2f}x scan (per round: "
        f"{figures['search']['round_ratio_p50']:.2f}x); batch of {args.batch} "
        f"{figures['batch']['p50_ms']:.0f} ms = {figures['batch']['per_request_ms']:.1f} ms/request "
        f"({figures['batch']['per_request_ratio_to_scan']:.2f}x scan per request)"
    )
    if "before" in figures:
        line += f"; before {figures['before']['p50_ms']:.1f} ms = {figures['before']['ratio_to_scan']:.2f}x"
    print(line + f"; same top-k as float32: {same}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", choices=("real", "random"), default="real")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument(
        "--cache-dir", default=None, help="real_catalog.py's cache (default: benchmarks/.cache)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--dtype", choices=("float16", "float32"), default="float16", help="the index dtype"
    )
    parser.add_argument("--dim", type=int, default=384, help="random catalog only")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--batch", type=int, default=32, help="requests per batched call")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--no-before", action="store_true", help="skip the earlier path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="search_limit.json")
    args = parser.parse_args(argv)

    results = []
    for size in sorted(args.sizes):
        rows, requests, info = load_matrix(
            args.catalog, size, args.dtype, args.dim, args.seed, args.data_root, args.cache_dir
        )
        # In memory and writable: the scan and the search read the same pages.
        row = measure(torch.from_numpy(np.array(rows)), torch.from_numpy(requests), args)
        results.append({"size": size, "catalog": info, **row})
        del rows
    write_results(args.out, args, torch.device("cpu"), results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
