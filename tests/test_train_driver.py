"""melscribe-train end to end on a tiny model and a tiny data directory: all five stages, skipping, resume, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from training_fixtures import (
    REPO_ROOT,
    compose_train,
    composed_settings,
    smoke_overrides,
    write_tiny_data,
)

from melscribe_torch.cli import train
from melscribe_torch.data import DataError
from melscribe_torch.data.request_style import TRAINING_LEADS
from melscribe_torch.models import BiEncoder, ModelNotFoundError, device

ARTIFACTS = [
    "corpus.jsonl",
    "qgen-queries.jsonl",
    "qgen-qrels/train.tsv",
    "validation/seed-0/corpus.jsonl",
    "validation/requests-seed-0/corpus.jsonl",
    "hard-negatives.jsonl",
    "cross-encoder",
    "teacher-metrics.json",
    "gpl-training-data.tsv",
    "checkpoint.pt",
    "metrics.jsonl",
    "best",
    "last",
    "results.json",
]


@pytest.fixture(scope="module")
def smoke_run(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    results = train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data)), run_dir)
    return run_dir, results


def weights(model_dir):
    return BiEncoder.from_pretrained(str(model_dir), device="cpu").state_dict()


def test_smoke_run_writes_every_artifact(smoke_run):
    run_dir, results = smoke_run
    for name in ARTIFACTS:
        assert (run_dir / name).exists(), name
    # the teacher saved itself at each step (smoke: checkpoint_every 1), then removed the file
    assert not list(run_dir.glob("teacher-checkpoint.pt*"))
    assert results["training"]["step"] == 2 and results["seed"] == 42
    assert 0 <= results["valid_recall@10"]["best"] <= 1
    assert set(results["timings_s"]) >= {"data", "mining", "teacher", "labels", "train"}
    assert "torch" in results["versions"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert {"loss", "lr", "grad_norm", "examples_per_s"} <= set(rows[0])
    assert len((run_dir / "gpl-training-data.tsv").read_text().splitlines()) >= 2 * 4
    # Validation also scores the held-out requests made request-like; best/ follows captions.
    validation = results["valid_recall@10"]
    assert validation["select_metric"] == "valid_recall@10"
    assert set(validation["last_metrics"]) == {
        "valid_recall@10",
        "valid_request_recall@10",
        "valid_mean_recall@10",
    }


def test_request_like_training_requests_are_opt_in(smoke_run, tiny_model_dir, tiny_data, tmp_path):
    plain_dir, _ = smoke_run
    overrides = [
        "data.request_style_fraction=1.0",
        "data.omit_descriptor_fraction=1.0",
        "train.select_metric=valid_mean_recall@10",
    ]
    results = train.run(
        compose_train(smoke_overrides(tiny_model_dir, tiny_data, *overrides)), tmp_path
    )

    def requests(run_dir):
        lines = (run_dir / "qgen-queries.jsonl").read_text().splitlines()
        return [json.loads(line)["text"] for line in lines]

    leads = tuple(lead.rstrip("?") for lead in TRAINING_LEADS)
    plain, rewritten = requests(plain_dir), requests(tmp_path)
    assert not any(text.startswith(leads) for text in plain)
    assert all(text.startswith(leads) for text in rewritten)
    assert results["valid_recall@10"]["select_metric"] == "valid_mean_recall@10"


def test_a_weight_average_is_scored_beside_the_weights_and_can_be_selected(
    tiny_model_dir, tiny_data, tmp_path
):
    overrides = ["train.ema_decay=0.9", "train.select_metric=ema_valid_recall@10"]
    results = train.run(
        compose_train(smoke_overrides(tiny_model_dir, tiny_data, *overrides)), tmp_path
    )
    validation = results["valid_recall@10"]
    assert validation["select_metric"] == "ema_valid_recall@10"
    assert {"valid_recall@10", "ema_valid_recall@10", "ema_valid_request_recall@10"} <= set(
        validation["last_metrics"]
    )
    passes = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    averaged = [row["ema_valid_recall@10"] for row in passes if "ema_valid_recall@10" in row]
    assert len(averaged) == 2 and validation["best"] == max(averaged)
    assert (tmp_path / "best").is_dir() and (tmp_path / "last").is_dir()


def test_rerun_skips_every_stage_and_a_changed_slice_reruns_from_there(
    smoke_run, tiny_model_dir, tiny_data
):
    run_dir, _ = smoke_run
    again = train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data)), run_dir)
    assert again["skipped_stages"] == ["data", "mining", "teacher", "labels", "train"]
    changed = train.run(
        compose_train(smoke_overrides(tiny_model_dir, tiny_data, "teacher.seed=1", "train.overwrite=true")),
        run_dir,
    )
    assert changed["skipped_stages"] == [
        "data",
        "mining",
    ]  # the teacher and everything after it reran
    assert json.loads((run_dir / "cross-encoder.meta.json").read_text())["settings"]["seed"] == 1
    [change] = changed["settings_changes"]  # the override is on the record
    assert change["changed"] == {"teacher.seed": [0, 1]} and change["from_state"] == "finished"


def test_an_ensemble_teacher_relabels_the_same_tuples_without_retraining_the_cross_encoder(
    tiny_model_dir, tiny_data, tmp_path
):
    from melscribe_torch.data import read_beir
    from melscribe_torch.labeling import read_gpl_training_data
    from melscribe_torch.retrieval.lexical import TfidfScorer

    run_dir = tmp_path / "run"
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data)), run_dir)
    before = read_gpl_training_data(run_dir / "gpl-training-data.tsv")
    overrides = smoke_overrides(tiny_model_dir, tiny_data, "ensemble.tfidf_weight=5", "train.overwrite=true")
    results = train.run(compose_train(overrides), run_dir)
    assert results["skipped_stages"] == ["data", "mining", "teacher"]  # the cross-encoder is reused
    [change] = results["settings_changes"]
    # An ensemble that adds nothing was not recorded, so run folders older than it still resume.
    assert change["changed"] == {
        "ensemble.dense_weight": [None, 0.0], "ensemble.max_ngram": [None, 1], "ensemble.tfidf_weight": [None, 5.0]
    }
    after = read_gpl_training_data(run_dir / "gpl-training-data.tsv")
    assert [row[:3] for row in after] == [row[:3] for row in before]
    pairs = read_beir(run_dir, split="train", queries_file="qgen-queries.jsonl", qrels_dir="qgen-qrels")
    doc_ids = list(pairs.corpus)
    tfidf = TfidfScorer(list(pairs.corpus.values()), 1)  # idf of the training corpus
    lexical_margins = []
    for (qid, pos, neg, margin), (*_, ce_margin) in zip(after, before):
        cosine = tfidf.scores([pairs.queries[qid]])[0]
        lexical = float(cosine[doc_ids.index(pos)] - cosine[doc_ids.index(neg)])
        lexical_margins.append(lexical)
        assert margin == pytest.approx(ce_margin + 5 * lexical, abs=1e-4)
    assert any(abs(m) > 0.05 for m in lexical_margins)  # the lexical member did change margins


def test_a_margin_scale_retrains_only_the_student_and_scale_1_is_not_recorded(tiny_model_dir, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data)), run_dir)
    recorded = json.loads((run_dir / "run-settings.json").read_text())["settings"]
    assert "loss.margin_mse.similarity" in recorded
    # scale 1 is what every run did before the option: not recorded, so their folders resume
    assert "loss.margin_mse.scale" not in recorded
    overrides = smoke_overrides(tiny_model_dir, tiny_data, "loss.margin_mse.scale=20", "train.overwrite=true")
    results = train.run(compose_train(overrides), run_dir)
    assert results["skipped_stages"] == ["data", "mining", "teacher", "labels"]  # the margins are reused
    [change] = results["settings_changes"]
    assert change["changed"] == {"loss.margin_mse.scale": [None, 20.0]}


def test_a_loss_without_margins_skips_the_teacher_and_trains_on_the_same_tuples(
    smoke_run, tiny_model_dir, tiny_data, tmp_path
):
    labelled_dir, _ = smoke_run
    results = train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, "loss=mnrl")), tmp_path)
    assert not (tmp_path / "cross-encoder").exists()
    assert not (tmp_path / "gpl-training-data.tsv").exists()
    assert set(results["timings_s"]) >= {"data", "mining", "tuples", "train"}
    assert "teacher" not in results["timings_s"]
    unlabelled = [line.split("\t") for line in (tmp_path / "training-tuples.tsv").read_text().splitlines()]
    labelled = [line.split("\t")[:3] for line in (labelled_dir / "gpl-training-data.tsv").read_text().splitlines()]
    assert unlabelled == labelled  # the same draw of (request, positive, negative)
    assert results["training"]["step"] == 2
    again = train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, "loss=mnrl")), tmp_path)
    assert again["skipped_stages"] == ["data", "mining", "tuples", "train"]


def test_a_listwise_teacher_trains_on_groups_and_both_losses_report_group_ranking(
    smoke_run, tiny_model_dir, tiny_data, tmp_path
):
    bce_dir, _ = smoke_run
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, "teacher.loss=listwise")), tmp_path)
    listwise = json.loads((tmp_path / "teacher-metrics.json").read_text())
    bce = json.loads((bce_dir / "teacher-metrics.json").read_text())
    assert listwise["settings"]["loss"] == "listwise" and bce["settings"]["loss"] == "bce"
    for record in (listwise, bce):
        assert {"accuracy", "auc", "group_mrr", "group_accuracy@1", "group_loss"} <= set(record["metrics"])
    teacher_file = "cross-encoder/model.safetensors"
    assert (tmp_path / teacher_file).read_bytes() != (bce_dir / teacher_file).read_bytes()


def test_a_wrong_teacher_loss_fails_before_mining(tiny_model_dir, tiny_data, tmp_path):
    overrides = smoke_overrides(tiny_model_dir, tiny_data, "teacher.loss=listwise", "teacher.group_size=3")
    with pytest.raises(ValueError, match=r"teacher.batch_size \(4\) .* teacher.group_size \(3\)"):
        train.run(compose_train(overrides), tmp_path)
    assert not (tmp_path / "hard-negatives.jsonl").exists()


@pytest.mark.parametrize(
    "overrides, setting",
    [
        (["ensemble.dense={missing}", "ensemble.dense_weight=10"], "ensemble.dense"),
        (["ensemble.second_dense={missing}", "ensemble.second_dense_weight=10"], "ensemble.second_dense"),
        (["teacher.path={missing}"], "teacher.path"),
    ],
)
def test_a_missing_teacher_model_stops_the_run_before_its_first_stage(
    overrides, setting, tiny_model_dir, tiny_data, tmp_path
):
    missing = tmp_path / "no-such-model"
    extra = [override.format(missing=missing) for override in overrides]
    with pytest.raises(ModelNotFoundError, match=rf"^{setting}\b.*no-such-model.* does not exist"):
        train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, *extra)), tmp_path / "run")
    assert not (tmp_path / "run" / "corpus.jsonl").exists()  # not after mining and a teacher


def test_a_recipe_that_requires_a_given_teacher_stops_before_its_first_stage_without_one(
    tiny_model_dir, tiny_data, tmp_path
):
    overrides = smoke_overrides(tiny_model_dir, tiny_data, "teacher.require_path=true")
    with pytest.raises(ValueError, match=r"^teacher\.path is not set.*teacher\.require_path=true"):
        train.run(compose_train(overrides), tmp_path / "run")
    assert not (tmp_path / "run" / "corpus.jsonl").exists()


def test_requiring_a_given_teacher_changes_nothing_the_run_makes(
    smoke_run, tiny_model_dir, tiny_data, tmp_path
):
    given = f"teacher.path={smoke_run[0] / 'cross-encoder'}"
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, given)), tmp_path)
    # The same run with the guard on: the folder's settings still match, no stage reruns.
    rerun = smoke_overrides(tiny_model_dir, tiny_data, given, "teacher.require_path=true")
    results = train.run(compose_train(rerun), tmp_path)
    assert {"data", "mining", "teacher", "labels"} <= set(results["skipped_stages"])


def test_a_rerun_that_retrains_only_the_student_does_not_need_the_teacher_models(
    tiny_model_dir, tiny_data, tmp_path
):
    dense = tmp_path / "dense-member"
    shutil.copytree(tiny_model_dir, dense)
    ensemble = [f"ensemble.dense={dense}", "ensemble.dense_weight=1"]
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, *ensemble)), tmp_path / "run")
    shutil.rmtree(dense)  # the labels it gave are on disk
    rerun = smoke_overrides(tiny_model_dir, tiny_data, *ensemble, "loss.margin_mse.scale=20", "train.overwrite=true")
    results = train.run(compose_train(rerun), tmp_path / "run")
    assert results["skipped_stages"] == ["data", "mining", "teacher", "labels"]


def test_same_config_gives_the_same_teacher_labels_and_model_whatever_ran_before(
    tiny_model_dir, tiny_data, tmp_path
):
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # stands for whatever used torch's RNG before the run
        run_dir = tmp_path / f"run-{global_seed}"
        train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data)), run_dir)
        runs.append(run_dir)
    first, second = runs
    # The margins come from the teacher, whose new head is the part that drew random numbers.
    assert (first / "gpl-training-data.tsv").read_text() == (
        second / "gpl-training-data.tsv"
    ).read_text()
    for name, tensor in weights(first / "best").items():
        assert torch.equal(tensor, weights(second / "best")[name]), name


def test_model_normalize_overrides_what_the_model_files_say(tiny_model_dir):
    from melscribe_torch.pipeline import load_student

    def model(normalize):
        return composed_settings(f"model.name_or_path={tiny_model_dir}", f"model.normalize={normalize}").model

    saved = load_student(model("null")).normalize
    for normalize in (True, False):
        assert load_student(model(str(normalize).lower())).normalize is normalize
    assert load_student(model("null")).normalize is saved


def test_missing_model_fails_fast_with_the_loaders_message(tmp_path, tiny_data):
    cfg = compose_train(["model=bert-base", f"data.root={tiny_data}"])
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="model.name_or_path"):
        train.run(cfg, tmp_path / "run")
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "run" / "corpus.jsonl").exists()  # no stage ran


def test_test_clips_in_the_training_data_are_refused(tmp_path, tiny_model_dir):
    root = write_tiny_data(tmp_path / "data", eval_ids_in_train=True)
    with pytest.raises(DataError, match="test clip"):
        train.run(compose_train(smoke_overrides(tiny_model_dir, root)), tmp_path / "run")


def test_empty_training_data_is_a_clear_error(tmp_path, tiny_model_dir):
    root = write_tiny_data(tmp_path / "data", num_train=0)
    with pytest.raises(DataError, match="no training records|empty"):
        train.run(compose_train(smoke_overrides(tiny_model_dir, root)), tmp_path / "run")


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_weights(
    tiny_model_dir, tiny_data, tmp_path
):
    extra = ("train.steps=12", "train.eval_every=0", "train.log_every=4")
    run_dir = tmp_path / "killed"
    command = [
        sys.executable,
        "train.py",
        *smoke_overrides(tiny_model_dir, tiny_data, *extra),
        f"hydra.run.dir={run_dir}",
    ]
    # Keep the caller's PYTHONPATH (packages installed there, e.g. with pip --target).
    python_path = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, python_path))}
    log_path = tmp_path / "killed.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file
        )
    checkpoint = run_dir / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, (
        f"the run ended (exit {process.returncode}) before it could be killed; "
        "its stderr ends with:\n" + log_path.read_text(errors="replace")[-2000:]
    )
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 1 <= killed_at < 12 and not (run_dir / "results.json").exists()

    # The uninterrupted reference trains on the same stage 1-4 artifacts, in this process.
    reference = tmp_path / "reference"
    shutil.copytree(
        run_dir,
        reference,
        ignore=shutil.ignore_patterns("checkpoint.pt*", "metrics.jsonl", "best*", ".hydra"),
    )
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, *extra)), reference)

    results = train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data, *extra)), run_dir)
    assert results["training"]["resumed_from"] is not None
    # Tolerance: the first step(s) ran in another process, where CPU kernels may reduce in
    # another order (~1e-7); Adam's normalised updates carry that into the weights at ~1e-5
    # after a few steps. Exact equality of resume within one process is checked in
    # test_training_loop.py::test_resume_equals_an_uninterrupted_run.
    torch.testing.assert_close(
        weights(run_dir / "last"), weights(reference / "last"), atol=1e-4, rtol=1e-3
    )


def test_a_truncated_checkpoint_is_a_clear_error(smoke_run, tiny_model_dir, tiny_data, tmp_path):
    run_dir, _ = smoke_run
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes((run_dir / "checkpoint.pt").read_bytes()[:1000])
    cfg = compose_train(
        smoke_overrides(tiny_model_dir, tiny_data, "train.steps=3", f"train.resume_from={broken}")
    )
    from melscribe_torch.training import CheckpointError

    with pytest.raises(CheckpointError, match="unreadable"):
        train.run(cfg, tmp_path / "run")


def test_auto_precision_is_recorded_as_what_ran(tiny_model_dir, tiny_data, tmp_path, monkeypatch):
    # a CPU without native bf16: every auto stage runs (and is recorded) in fp32, so a folder
    # made with bf16 elsewhere is not silently resumed at another precision
    monkeypatch.setattr(device, "native_bf16", lambda d: False)
    run_dir = tmp_path / "run"
    overrides = smoke_overrides(tiny_model_dir, tiny_data, "train.precision=auto")
    train.run(compose_train(overrides), run_dir)
    recorded = json.loads((run_dir / "run-settings.json").read_text())["settings"]
    keys = ["mining.precision", "teacher.precision", "train.precision", "train.label_precision"]
    assert {key: recorded[key] for key in keys} == dict.fromkeys(keys, "fp32")
