"""kill -9 at each stage and during each save: the next run resumes, and ends where an unkilled run ends.

Each attempt runs in a fork of one helper process (tests/kill_points.py) and is SIGKILLed at
an exact point; the next attempt starts in what the last one left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv
from training_fixtures import REPO_ROOT, compose_train, smoke_overrides, write_tiny_data

from melscribe_torch.cli import train
from melscribe_torch.io import is_temp_file
from melscribe_torch.models import BiEncoder
from melscribe_torch.recommend.index import build_index, load_index

HELPER = REPO_ROOT / "tests" / "kill_points.py"

# In pipeline order; each attempt resumes what the one before left (smoke run: 2 steps,
# validation and a checkpoint after every step).
TRAIN_KILL_POINTS = [
    "call:melscribe_torch.pipeline.stages:write_beir:2",  # data: one validation set written of several
    "replace:^hard-negatives.jsonl$:1",  # mining: while saving
    "replace:^teacher-checkpoint.pt$:2",  # teacher: while saving its step-2 checkpoint
    "replace:^cross-encoder$:1",  # teacher: while saving its model directory (it resumes at step 2)
    "replace:^gpl-training-data.tsv$:1",  # labels: while saving
    "replace:^gpl-training-data.tsv.meta.json$:1",  # between a stage's artifact and its record
    "replace:^best$:1",  # train: while saving best/ (step 1, before any checkpoint)
    "call:melscribe_torch.training.loop:_append_jsonl:2",  # train: logging, before any checkpoint
    "replace:^checkpoint.pt$:2",  # train: while saving the step-2 checkpoint
    "after-replace:^checkpoint.pt$:1",  # train: checkpoint in place, its sha256 not yet updated
    "replace:^last$:1",  # train: while saving last/
    "replace:^results.json$:1",  # train: while saving results.json
]


def run_helper(*args: str) -> list[dict]:
    python_path = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    # One thread: tiny matmuls gain nothing from more, and spinning threads cost a busy machine.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, python_path)), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(HELPER), *map(str, args)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def weights(model_dir):
    return BiEncoder.from_pretrained(str(model_dir), device="cpu").state_dict()


def leftovers(folder):
    return [p for p in folder.rglob("*") if is_temp_file(p.name) or ".tmp-" in p.name or ".old-" in p.name]


def test_a_run_killed_at_every_stage_and_save_ends_as_an_unkilled_run(
    tiny_model_dir, tmp_path, one_torch_thread
):
    data = write_tiny_data(tmp_path / "data")
    killed = tmp_path / "killed"
    outcomes = run_helper("train", killed, tiny_model_dir, data, *TRAIN_KILL_POINTS)
    assert [o["point"] for o in outcomes if not o["killed"]] == []  # every point was reached
    assert leftovers(killed)  # the kills left temporary files behind ...
    assert not (killed / "results.json").exists()

    results = train.run(compose_train(smoke_overrides(tiny_model_dir, data)), killed)
    reference = tmp_path / "reference"
    expected = train.run(compose_train(smoke_overrides(tiny_model_dir, data)), reference)

    assert leftovers(killed) == []  # ... which the next run removed
    assert results["training"]["resumed_from"] is not None  # the last checkpoint was trusted
    assert results["skipped_stages"] == ["data", "mining", "teacher", "labels"]
    for name in ("gpl-training-data.tsv", "hard-negatives.jsonl", "qgen-queries.jsonl"):
        assert (killed / name).read_text() == (reference / name).read_text(), name
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]  # every step logged once
    # Another process ran the first steps: CPU kernels may reduce in another order (~1e-7).
    for model in ("best", "last"):
        torch.testing.assert_close(weights(killed / model), weights(reference / model), atol=1e-4, rtol=1e-3)
    assert results["valid_recall@10"]["best"] == pytest.approx(expected["valid_recall@10"]["best"], abs=1e-6)


INDEX_KILL_POINTS = [
    "call:melscribe_torch.recommend.index_write:_write_embeddings:2",  # half the new files written
    "replace:^manifest.json$:1",  # new files complete, the manifest not yet replaced
    "after-replace:^manifest.json$:1",  # committed; the replaced files not yet removed
]


def test_an_index_write_killed_at_each_step_keeps_a_loadable_index_and_the_users_files(tmp_path):
    catalog = write_csv(tmp_path / "catalog.csv", SONGS)
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "songs-2024.csv").write_text("the user's own file\n")
    first = run_helper("index", folder, catalog, "call:melscribe_torch.recommend.index_write:_write_embeddings:99")
    assert first == [{"point": first[0]["point"], "killed": False}]  # an unkilled build
    for point in INDEX_KILL_POINTS:
        assert run_helper("index", folder, catalog, point)[0]["killed"], point
        assert len(load_index(folder).songs) == len(SONGS)  # loadable after every kill
    index = build_index(load_index(folder).songs, KeywordEncoder(), folder, FAKE_MODEL, dim=KeywordEncoder.dim)
    ours = {e["name"] for e in index.manifest["files"].values()} | {"manifest.json", ".lock"}
    assert {p.name for p in folder.iterdir()} == ours | {"songs-2024.csv"}  # nothing else left
    assert (folder / "songs-2024.csv").read_text() == "the user's own file\n"
