"""A bounded load test of `melscribe-recommend serve` on loopback: throughput and latency.

    python benchmarks/serve_load.py catalog --size 10000 --out catalog_10k.jsonl
    melscribe-recommend index --catalog catalog_10k.jsonl --out index_10k
    python benchmarks/serve_load.py run --index index_10k --clients 16 --requests 2000 --out serve_load.json

``catalog`` writes a catalog of real descriptor sets: the distinct descriptor sets of the
default training sources (MusicCaps training clips, LP-MusicCaps-MC train, ConceptCaps),
shuffled, then, until ``--size`` is reached, random sub-sets of them (about half of a drawn
set's descriptors, at least two, no set twice): ``catalog_sets.py``, the sampler of
``real_catalog.py`` too. One song per descriptor set.

``run`` starts the server on a free loopback port (or uses ``--url``, loopback only), sends a
few untimed warm-up requests, then lets ``--clients`` threads, each with one keep-alive
connection, send ``--requests`` requests in all, as fast as answers come back. Requests are the
MC_reco test requests (LLM rephrasings of MusicCaps captions as recommendation requests),
cycled. Latency is per request, from sending to the parsed answer; errors (non-200 or a broken
connection) are counted, not retried. Encoding the request is included: it is the server's job.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_sets import sample_descriptor_sets  # noqa: E402

from melscribe_torch.data.training import load_training_records  # noqa: E402
from melscribe_torch.io import atomic_write_json, atomic_write_text  # noqa: E402
from melscribe_torch.provenance import library_versions, machine_info  # noqa: E402

CATALOG_SOURCES = ("musiccaps", "lp-musiccaps-mc", "conceptcaps")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def catalog_descriptor_sets(data_root: str | Path, size: int, seed: int) -> list[tuple[str, ...]]:
    """``size`` distinct descriptor sets: the training sources' own, then random sub-sets."""
    records = load_training_records(data_root, CATALOG_SOURCES)
    sets = sample_descriptor_sets([r.descriptors for r in records], size, seed)
    if len(sets) < size:
        raise ValueError(
            f"could draw only {len(sets)} distinct descriptor sets of the {size} asked for "
            f"from {', '.join(CATALOG_SOURCES)}: ask for fewer (--size)"
        )
    return sets


def load_requests(data_root: str | Path) -> list[str]:
    """The MC_reco requests (``caption_rephrased``), in file order."""
    path = Path(data_root) / "LP-MusicCaps-MC" / "mc_rephrased.csv"
    with open(path, newline="", encoding="utf-8") as f:
        return [row["caption_rephrased"] for row in csv.DictReader(f) if row["caption_rephrased"]]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run_load(
    url: str, texts: list[str], clients: int, requests: int, k: int, retriever: str | None
) -> dict:
    """``requests`` POST /recommend calls from ``clients`` threads; rates, latency, errors."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise ValueError(f"the load test talks to loopback only, not {parts.hostname!r}")
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            body = {"request": texts[n % len(texts)], "k": k}
            if retriever:
                body["retriever"] = retriever
            start = time.perf_counter()
            try:
                conn.request(
                    "POST", "/recommend", json.dumps(body), {"Content-Type": "application/json"}
                )
                reply = conn.getresponse()
                payload = json.loads(reply.read())
                ok = reply.status == 200 and len(payload["results"]) == k
                error = None if ok else f"HTTP {reply.status}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as err:
                error = type(err).__name__
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            elapsed = time.perf_counter() - start
            with lock:
                if error:
                    errors[error] = errors.get(error, 0) + 1
                else:
                    latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return {
        "clients": clients,
        "requests": requests,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 2),
        "latency_ms": {
            "p50": round(percentile(ms, 50), 1),
            "p95": round(percentile(ms, 95), 1),
            "p99": round(percentile(ms, 99), 1),
            "max": round(max(ms), 1),
            "mean": round(statistics.fmean(ms), 1),
        }
        if ms
        else None,
    }


def start_server(index: str, options: list[str]) -> tuple[subprocess.Popen, str]:
    """``melscribe-recommend serve`` on a free loopback port; returns the process and its URL."""
    command = [sys.executable, "-m", "melscribe_torch.recommend", "serve", "--index", index]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0", *options],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in process.stdout:  # blocks until the server says where it listens (or dies)
        output.append(line)
        found = re.match(r"serving .* on (http://\S+)/$", line.strip())
        if found:
            # keep draining the pipe so the server never blocks on a full one
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, found.group(1)
    raise RuntimeError(f"the server exited ({process.wait()}): {''.join(output)[-2000:]}")


def get_json(url: str) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("GET", parts.path)
    return json.loads(conn.getresponse().read())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("catalog", help="write a JSONL catalog of real descriptor sets")
    p.add_argument("--size", type=int, required=True, help="songs (= distinct descriptor sets)")
    p.add_argument("--out", required=True, help="the .jsonl catalog")
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("run", help="load-test a server (started here unless --url)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="start `melscribe-recommend serve` on this index")
    where.add_argument("--url", help="a running server on loopback, e.g. http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=2000, help="timed requests in all")
    p.add_argument("--warmup", type=int, default=32, help="untimed requests first")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--retriever", help="default: the server's")
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--serve-option", action="append", default=[], help="passed to serve")
    p.add_argument("--out", help="also write the results as JSON here")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.command == "catalog":
        sets = catalog_descriptor_sets(args.data_root, args.size, args.seed)
        lines = [
            json.dumps({"id": f"song{i:07d}", "descriptors": list(s)}, ensure_ascii=False)
            for i, s in enumerate(sets)
        ]
        atomic_write_text(args.out, "\n".join(lines) + "\n")
        print(f"{args.out}: {len(sets)} songs")
        return {"songs": len(sets)}
    texts = load_requests(args.data_root)
    process = None
    url = args.url
    if args.index:
        process, url = start_server(args.index, args.serve_option)
    try:
        run_load(url, texts, min(args.clients, args.warmup), args.warmup, args.k, args.retriever)
        results = run_load(url, texts, args.clients, args.requests, args.k, args.retriever)
        version = get_json(url + "/version")
        results["server"] = {"index": version["index"], "serving": version["serving"]}
    finally:
        if process:
            process.terminate()
            process.wait(timeout=60)
    lat = results["latency_ms"] or {}
    print(
        f"{results['server']['index']['num_songs']} songs, {args.clients} clients, "
        f"{results['ok']}/{args.requests} ok, {results['errors']} errors: "
        f"{results['requests_per_s']} requests/s, p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, "
        f"mean batch {results['server']['serving']['mean_batch_size']}"
    )
    if args.out:
        atomic_write_json(
            args.out,
            {
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(["python", "benchmarks/serve_load.py", *(argv or sys.argv[1:])]),
                "machine": machine_info(),
                "versions": library_versions(),
                "results": results,
            },
        )
    return results


if __name__ == "__main__":
    main()
