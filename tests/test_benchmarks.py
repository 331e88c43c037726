"""The benchmark scripts run end to end on the tiny model and write valid JSON (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from melscribe_torch.models import ModelNotFoundError
from melscribe_torch.models.device import native_bf16

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"

# The peer is a benchmark-only extra (pip install -e .[bench]); comparisons need it.
needs_peer = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="sentence-transformers (the peer) is not installed: pip install -e .[bench]",
)


def load_script(name: str):
    """Import benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    sys.path.insert(0, str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tiny(name: str, model_dir: Path, out: Path, *extra: str) -> dict:
    load_script(name).main(["--model", str(model_dir), "--tiny", "--device", "cpu", "--out", str(out), *extra])
    payload = json.loads(out.read_text())
    for key in ("date", "machine", "versions", "settings", "results"):
        assert key in payload, f"{name}: results JSON lacks {key!r}"
    assert payload["settings"]["seed"] == 0
    assert payload["command"].startswith(f"python benchmarks/{name}.py --model")
    assert "torch" in payload["versions"] and "sentence-transformers" in payload["versions"]
    return payload["results"]


def test_summarize_gives_median_and_spread():
    common = load_script("common")
    summary = common.summarize([3.0, 1.0, 2.0, 10.0])
    assert summary["median"] == 2.5
    assert (summary["min"], summary["max"]) == (1.0, 10.0)
    assert summary["iqr"] > 0


def test_measure_sides_interleaves_and_reports_rates():
    import torch

    common = load_script("common")
    calls = []
    figures = common.measure_sides(
        {"ours": lambda: calls.append("ours") or 1, "peer": lambda: calls.append("peer") or 2},
        device=torch.device("cpu"), repeats=2, warmup=1, work=10,
    )
    assert calls == ["ours", "peer"] * 3
    assert figures["ours"]["result"] == 1 and figures["peer"]["result"] == 2
    assert len(figures["ours"]["rate"]["runs"]) == 2


@needs_peer
def test_encode_agrees_with_the_peer_at_fp32(tiny_model_dir, tmp_path):
    results = run_tiny("encode", tiny_model_dir, tmp_path / "encode.json", "--precisions", "fp32,bf16")
    fp32 = results["precisions"]["fp32"]
    assert fp32["ours"]["rate"]["median"] > 0
    assert fp32["mean_cosine_ours_vs_peer_timed_subset"] > 0.9999
    assert "bf16" in results["precisions"]


@needs_peer
def test_train_step_runs_both_sides(tiny_model_dir, tmp_path):
    results = run_tiny("train_step", tiny_model_dir, tmp_path / "train.json", "--precisions", "bf16")
    entry = results["precisions"]["bf16"]
    assert entry["ours"]["rate"]["median"] > 0 and entry["peer"]["rate"]["median"] > 0
    assert all(loss >= 0 for loss in entry["last_loss"].values())


def test_mine_never_returns_positives_and_chunked_equals_naive(tiny_model_dir, tmp_path):
    results = run_tiny("mine", tiny_model_dir, tmp_path / "mine.json", "--plot", str(tmp_path / "curve.png"))
    assert results["real"]["positives_returned_ours"] == 0
    # train.py's default mining precision on this CPU is timed too: bf16 only where it is native
    assert ("ours_bf16" in results["real"]) == native_bf16(torch.device("cpu"))
    assert all(point["same_top_k"] for point in results["scaling"])
    if importlib.util.find_spec("matplotlib") is None:  # the plot is a benchmark extra
        assert results["plot"].startswith("skipped: matplotlib is not installed")
    else:
        assert (tmp_path / "curve.png").stat().st_size > 0


@needs_peer
def test_label_scores_match_the_peer(tiny_model_dir, tmp_path):
    results = run_tiny("label", tiny_model_dir, tmp_path / "label.json", "--precisions", "fp32")
    assert results["precisions"]["fp32"]["max_abs_score_diff"] < 1e-4
    # the labelling stage: both ways give each tuple the same margin, ours from fewer pairs
    labelling = results["labelling"]
    assert labelling["precisions"]["fp32"]["max_abs_margin_diff"] < 1e-4
    assert labelling["distinct_pairs"] < 2 * labelling["tuples"]


def test_scripts_measure_our_side_alone(tiny_model_dir, tmp_path):
    results = run_tiny("label", tiny_model_dir, tmp_path / "label.json", "--precisions", "fp32", "--no-peer")
    entry = results["precisions"]["fp32"]
    assert "peer" not in entry and entry["ratio_ours_over_peer"] is None
    assert results["labelling"]["precisions"]["fp32"]["ours"]["rate"]["median"] > 0


def test_teacher_checkpoint_times_a_step_and_a_save_and_leaves_no_file(tiny_model_dir, tmp_path):
    scratch = tmp_path / "scratch"
    results = run_tiny(
        "teacher_checkpoint", tiny_model_dir, tmp_path / "ckpt.json",
        "--precision", "fp32", "--every", "10", "--scratch", str(scratch),
    )
    assert results["step_s"]["median"] > 0 and results["save_s"]["median"] > 0
    assert results["checkpoint_mb"] > 0 and results["pairs_per_step"] == 4
    expected = results["save_s"]["median"] / (10 * results["step_s"]["median"])
    assert results["overhead"] == pytest.approx(expected)
    assert not scratch.exists()


def test_rerank_latency_times_every_depth_and_precision(tiny_model_dir, tmp_path, data_root):
    results = run_tiny(
        "rerank_latency", tiny_model_dir, tmp_path / "rerank.json", "--data-root", str(data_root)
    )
    assert set(results) == {"fp32/depth-2", "fp32/depth-4", "bf16/depth-2", "bf16/depth-4"}
    assert all(len(r["ms_per_request"]["runs"]) == 2 for r in results.values())


def test_rerank_latency_times_the_ensemble_teacher(tiny_model_dir, tmp_path, data_root):
    results = run_tiny(
        "rerank_latency", tiny_model_dir, tmp_path / "rerank.json", "--data-root", str(data_root),
        "--precisions", "fp32", "--ensemble-dense", str(tiny_model_dir), "--ensemble-dense-weight", "10",
        "--ensemble-tfidf-weight", "10", "--ensemble-max-ngram", "3",
    )
    assert set(results) == {"fp32/depth-2", "fp32/depth-4"}
    assert results["fp32/depth-4"]["ms_per_request"]["median"] > 0
    stored = run_tiny(
        "rerank_latency", tiny_model_dir, tmp_path / "stored.json", "--data-root", str(data_root),
        "--precisions", "fp32", "--ensemble-dense", str(tiny_model_dir), "--ensemble-dense-weight", "10",
        "--ensemble-dense-stored",
    )
    assert set(stored) == {"fp32/depth-2", "fp32/depth-4"}
    # the dense member is loaded, not ignored: a missing one stops the run, named
    with pytest.raises(ModelNotFoundError, match=r"^ensemble\.dense .*no-such-model"):
        run_tiny(
            "rerank_latency", tiny_model_dir, tmp_path / "missing.json", "--data-root", str(data_root),
            "--ensemble-dense", str(tmp_path / "no-such-model"), "--ensemble-dense-weight", "10",
        )


def test_without_device_flag_the_benchmarks_pick_the_machines_device():
    import argparse

    common = load_script("common")
    device = common.setup(argparse.Namespace(seed=0, threads=None, device=None))
    assert device.type in ("cpu", "cuda", "mps")
