"""melscribe-evaluate: compose the config as Hydra would and call run(cfg) directly."""

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from melscribe_torch.cli import evaluate
from melscribe_torch.conf import CONF_DIR
from melscribe_torch.models.backbone import ModelNotFoundError


def write_custom_csv(path: Path) -> Path:
    rows = [
        ("calm piano for a rainy day", "['piano', 'calm']"),
        ("loud rock with fast drums", "['rock', 'loud', 'drums']"),
        ("happy tropical steel drum track", "['steel', 'tropical', 'happy']"),
        ("sad slow female vocal ballad", "['sad', 'female vocal', 'slow']"),
    ]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["request", "tags"])
        writer.writerows(rows)
    return path


def compose_evaluate(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="evaluate", overrides=overrides)


def test_custom_test_set_with_tfidf_and_a_model_directory(tmp_path, tiny_model_dir):
    csv_path = write_custom_csv(tmp_path / "mine.csv")
    cfg = compose_evaluate(
        [
            "test_sets=[custom]",
            "retrievers=[tfidf]",
            f"trained_model={tiny_model_dir}",
            f"custom.path={csv_path}",
            "custom.descriptor_column=tags",
            "custom.sampling=full",
            "seeds=[0]",
        ]
    )
    payload = evaluate.run(cfg, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["results"]) == {"tfidf", str(tiny_model_dir)}
    tfidf = results["results"]["tfidf"]["custom"]
    # every request shares a word with its own descriptor set only: TF-IDF ranks each first
    assert tfidf["metrics"]["recall@1"]["mean"] == 1.0
    assert tfidf["num_requests"] == [4] and tfidf["seeds"] == [0]
    assert results["versions"]["torch"] and results["seeds"] == [0]
    assert results["complete"] is True and results["pending"] == []
    assert "| tfidf | 100.0 ± 0.0 |" in (tmp_path / "out" / "results.md").read_text()
    assert "Incomplete" not in (tmp_path / "out" / "results.md").read_text()
    assert payload["models"][str(tiny_model_dir)] == str(tiny_model_dir)


def test_model_on_the_command_line_names_a_model_to_evaluate():
    assert evaluate.model_override_as_value(["model=runs/x/best", "score=dot"]) == [
        "trained_model=runs/x/best",
        "score=dot",
    ]


def test_paper_test_sets_on_the_real_data(data_root, tmp_path):
    cfg = compose_evaluate([f"data.root={data_root}", "retrievers=[tfidf]", "test_sets=[mc]", "seeds=[0]"])
    payload = evaluate.run(cfg, None)
    assert payload["results"]["tfidf"]["mc"]["num_requests"] == [2350]


def test_a_runs_validation_sets_with_a_rerank_cascade(tmp_path, tiny_model_dir):
    from melscribe_torch.data import RetrievalSet, write_beir
    from melscribe_torch.models import CrossEncoder

    run = tmp_path / "run"
    for seed in (0, 1):
        write_beir(
            RetrievalSet(
                queries={"c1_0": "calm piano", "c2_1": "loud rock drums", "c3_2": "sad slow vocal"},
                corpus={"d0": "piano, calm", "d1": "rock, drums", "d2": "sad, slow", "d3": "jazz"},
                qrels={"c1_0": {"d0"}, "c2_1": {"d1"}, "c3_2": {"d2"}},
            ),
            run / "validation" / f"seed-{seed}",
        )
    CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu").save(run / "cross-encoder")
    cascade = f"rerank:{run / 'cross-encoder'}@tfidf"
    cfg = compose_evaluate(
        [
            "test_sets=[valid]",
            f"valid.run={run}",
            f"retrievers=[tfidf,'{cascade}']",
            "rerank.depth=2",
            "seeds=[0,1]",
        ]
    )
    results = evaluate.run(cfg, tmp_path / "out")["results"]
    assert results["tfidf"]["valid"]["num_requests"] == [3, 3]
    # reordering TF-IDF's top 2 cannot change whether the positive is among the top 2
    for name in ("tfidf", cascade):
        assert results[name]["valid"]["metrics"]["recall@3"]["mean"] == 1.0
    assert (
        results[cascade]["valid"]["metrics"]["recall@3"]["per_seed"]
        == results["tfidf"]["valid"]["metrics"]["recall@3"]["per_seed"]
    )


def test_a_run_stopped_part_way_keeps_the_pairs_it_measured(tmp_path):
    """A later retriever that fails (here: a model folder that does not exist) leaves the
    earlier retrievers' results on disk, marked incomplete, with the pairs still pending."""
    csv_path = write_custom_csv(tmp_path / "mine.csv")
    missing = tmp_path / "no-such-model"
    cfg = compose_evaluate(
        [
            "test_sets=[custom]",
            f"retrievers=[tfidf,{missing}]",
            f"custom.path={csv_path}",
            "custom.descriptor_column=tags",
            "custom.sampling=full",
            "seeds=[0]",
        ]
    )
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        evaluate.run(cfg, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["complete"] is False and results["pending"] == [[str(missing), "custom"]]
    assert results["results"]["tfidf"]["custom"]["metrics"]["recall@1"]["mean"] == 1.0
    assert "Incomplete, not yet measured" in (tmp_path / "out" / "results.md").read_text()
