"""Results tables: Markdown (retriever x test set, metric mean ± std in percent) and JSON files."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_json, atomic_write_text

TEST_SET_LABELS = {"mc": "MC", "mc_reco": "MC_reco", "mtt": "MTT", "msd": "MSD", "custom": "custom"}


def format_table(results: dict[str, dict[str, dict]], metric: str = "recall@10") -> str:
    """A Markdown table from ``results[retriever][test_set]`` as returned by ``evaluate_over_seeds``."""
    test_sets = list(dict.fromkeys(t for by_set in results.values() for t in by_set))
    header = f"| {metric} (mean ± std, %) | " + " | ".join(TEST_SET_LABELS.get(t, t) for t in test_sets) + " |"
    lines = [header, "|---" * (len(test_sets) + 1) + "|"]
    for retriever, by_set in results.items():
        cells = []
        for t in test_sets:
            value = by_set.get(t, {}).get("metrics", {}).get(metric)
            cells.append("—" if value is None else f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}")
        lines.append(f"| {retriever} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(directory: str | Path, payload: dict, table: str) -> None:
    """Write ``results.json`` and ``results.md`` atomically into ``directory``."""
    directory = Path(directory)
    atomic_write_json(directory / "results.json", payload)
    atomic_write_text(directory / "results.md", table)
