import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recommend_latency.py"


@pytest.mark.parametrize("device", [["--device", "cpu"], []], ids=["cpu", "the-machines-device"])
def test_latency_benchmark_writes_json_with_provenance(tmp_path, device):
    spec = importlib.util.spec_from_file_location("recommend_latency", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "latency.json"
    bench.main(
        [
            "--sizes",
            "300",
            "1000",
            "--dim",
            "16",
            "--queries",
            "5",
            "--warmup",
            "1",
            "--backends",
            "exact",
            *device,
            "--out",
            str(out),
        ]
    )
    payload = json.loads(out.read_text())
    assert {"date", "machine", "versions", "settings", "results", "seed"} <= payload.keys()
    assert [r["size"] for r in payload["results"]] == [300, 1000]
    row = payload["results"][0]
    assert row["recall_vs_exact"] == 1.0 and 0 < row["p50_ms"] <= row["p95_ms"]


def test_recall_against_exact_by_hand():
    import torch

    spec = importlib.util.spec_from_file_location("recommend_latency", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    found = torch.tensor([[1, 2, 3], [4, 5, 9]])
    exact = torch.tensor([[3, 2, 1], [4, 5, 6]])
    assert bench.recall_against(found, exact) == pytest.approx((1 + 2 / 3) / 2)
