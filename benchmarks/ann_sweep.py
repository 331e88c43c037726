"""FAISS IVF and HNSW on real embeddings: recall@k against exact search, and latency, per setting.

    python benchmarks/ann_sweep.py --size 1000000 --hnsw-size 100000 --out ann_sweep.json

The catalog and requests are `real_catalog.load` (real descriptor-set and request embeddings
of all-MiniLM-L6-v2, the catalog expanded to ``--size``). Ground truth: the exact top-k of
`SearchMatrix`. Per setting: build seconds, mean recall@k against exact over the requests,
and p50 / p95 ms of one request per ``search`` call (FAISS given torch's thread count, as the
recommender does). IVF (``IndexIVFFlat``, inner product, ``--nlist`` lists trained on
``--train-size`` random rows, by default the backend's choice) is swept over ``--nprobes``; HNSW (``IndexHNSWFlat``, M
``--hnsw-m``) over ``--ef-searches``, on the first ``--hnsw-size`` rows (its build is the slow
part). The chosen setting of each kind is the fastest p50 with recall at least ``--target``.
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

import real_catalog
from common import write_results
from recommend_latency import recall_against, time_queries

from melscribe_torch.recommend.dense_search import SearchMatrix
from melscribe_torch.recommend.faiss_index import build_faiss_index, ivf_lists


def choose(rows: list[dict], target: float) -> dict | None:
    """The fastest setting (p50) whose recall reaches ``target``; None when none does."""
    good = [r for r in rows if r["recall"] >= target]
    return min(good, key=lambda r: r["p50_ms"]) if good else None


def sweep(
    index, set_param, values, requests: torch.Tensor, exact: torch.Tensor, k: int, warmup: int
) -> list[dict]:
    """Recall and latency of ``index`` for each value of one search parameter."""
    out = []
    for value in values:
        set_param(index, value)

        cpu_seconds = []

        def search(q, cpu_seconds=cpu_seconds):
            start = time.process_time()
            found = index.search(np.ascontiguousarray(q.numpy()), k)[1]
            cpu_seconds.append(time.process_time() - start)
            return torch.from_numpy(found)

        seconds, found = time_queries(search, requests, warmup, torch.device("cpu"))
        ms = np.asarray(seconds) * 1000
        row = {
            "value": value,
            "recall": recall_against(found, exact),
            "p50_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)),
            # CPU time of the process per request: leaves out the waits for a core on a
            # shared machine (but counts any thread spinning).
            "cpu_p50_ms": float(np.median(cpu_seconds[warmup:]) * 1000),
        }
        print(
            f"  {value:>5}: recall@{k} {row['recall']:.4f}  p50 {row['p50_ms']:.2f} ms  "
            f"p95 {row['p95_ms']:.2f} ms  CPU p50 {row['cpu_p50_ms']:.2f} ms",
            flush=True,
        )
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--hnsw-size", type=int, default=100_000, help="0: skip HNSW")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--nlist",
        type=int,
        default=None,
        help="IVF lists (default: the backend's, 4 sqrt(N)); 0: skip IVF",
    )
    parser.add_argument(
        "--train-size", type=int, default=0, help="IVF k-means rows; 0: the backend's (16 per list)"
    )
    parser.add_argument("--nprobes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-searches", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="ann_sweep.json")
    args = parser.parse_args(argv)
    import faiss

    catalog, requests_np, info = real_catalog.load(
        args.data_root, size=args.size, requests=args.requests, seed=args.seed
    )
    catalog = np.asarray(catalog)
    requests = torch.from_numpy(np.ascontiguousarray(requests_np, dtype=np.float32))
    results: dict = {"catalog": info}

    if args.nlist != 0:
        exact = SearchMatrix(torch.from_numpy(catalog), max_norm=1.0).topk(requests, args.k)[1]
        start = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        train = (
            catalog[
                np.sort(rng.choice(len(catalog), min(args.train_size, len(catalog)), replace=False))
            ]
            if args.train_size
            else None
        )
        index = build_faiss_index(
            catalog, kind="ivf", nlist=args.nlist or ivf_lists(len(catalog)), train=train
        )
        build_s = time.perf_counter() - start
        print(
            f"IVF nlist {index.nlist} on {len(catalog)} rows: built in {build_s:.1f} s", flush=True
        )
        rows = sweep(
            index,
            lambda ix, v: setattr(ix, "nprobe", v),
            args.nprobes,
            requests,
            exact,
            args.k,
            args.warmup,
        )
        results["ivf"] = {
            "size": len(catalog),
            "nlist": index.nlist,
            "train_size": None if train is None else len(train),
            "build_s": build_s,
            "sweep": rows,
            "chosen": choose(rows, args.target),
        }
        del index
    if args.hnsw_size:
        subset = np.ascontiguousarray(catalog[: args.hnsw_size])
        exact = SearchMatrix(torch.from_numpy(subset), max_norm=1.0).topk(requests, args.k)[1]
        start = time.perf_counter()
        index = build_faiss_index(
            subset, kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction
        )
        build_s = time.perf_counter() - start
        print(f"HNSW M {args.hnsw_m} on {len(subset)} rows: built in {build_s:.1f} s", flush=True)
        rows = sweep(
            index,
            lambda ix, v: setattr(ix.hnsw, "efSearch", v),
            args.ef_searches,
            requests,
            exact,
            args.k,
            args.warmup,
        )
        results["hnsw"] = {
            "size": len(subset),
            "m": args.hnsw_m,
            "ef_construction": args.ef_construction,
            "build_s": build_s,
            "sweep": rows,
            "chosen": choose(rows, args.target),
        }
    results["faiss"] = faiss.__version__
    write_results(args.out, args, torch.device("cpu"), results, __file__, argv)
    return results


if __name__ == "__main__":
    main()
