"""A run folder keeps its results: other settings are refused, one process at a time, leftovers cleared."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys

import pytest
from training_fixtures import REPO_ROOT, compose_train, smoke_overrides

from melscribe_torch.cli import train
from melscribe_torch.locking import LockError
from melscribe_torch.training.run_guard import RunSettingsError, check_settings


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    train.run(compose_train(smoke_overrides(tiny_model_dir, tiny_data)), run_dir)
    return run_dir


def snapshot(folder):
    """Every file's sha256: what a refused run must leave unchanged."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def run(model, data, run_dir, *overrides):
    return train.run(compose_train(smoke_overrides(model, data, *overrides)), run_dir)


def test_a_finished_run_with_other_settings_is_refused_and_left_as_it_was(
    finished, tiny_model_dir, tiny_data, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before = snapshot(run_dir)
    with pytest.raises(RunSettingsError) as refused:
        run(tiny_model_dir, tiny_data, run_dir, "train.steps=3", "optim.lr=0.001")
    message = str(refused.value)
    assert "holds a finished run" in message and "\n" not in message
    assert "optim.lr: 3e-05 -> 0.001" in message and "train.steps: 2 -> 3" in message
    assert "new hydra.run.dir" in message and "train.overwrite=true" in message
    assert snapshot(run_dir) == before  # best/, last/, results.json, metrics, checkpoint: untouched


def test_a_half_finished_run_is_refused_too_and_overwrite_starts_it_over_on_the_record(
    finished, tiny_model_dir, tiny_data, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    for name in ("results.json", "results.json.meta.json"):  # as if killed during training
        (run_dir / name).unlink()
    with pytest.raises(RunSettingsError, match="holds a half-finished run .*train.log_every: 1 -> 2"):
        run(tiny_model_dir, tiny_data, run_dir, "train.log_every=2")
    results = run(tiny_model_dir, tiny_data, run_dir, "train.log_every=2", "train.overwrite=true")
    assert results["training"]["resumed_from"] is None  # started over: no mix of both settings
    [change] = results["settings_changes"]
    assert change["from_state"] == "half-finished" and change["changed"] == {"train.log_every": [1, 2]}
    # the same settings again need no override, and the record keeps the change
    again = run(tiny_model_dir, tiny_data, run_dir, "train.log_every=2")
    assert again["settings_changes"] == results["settings_changes"]
    # how to run (not what to make) is not a setting change
    run(tiny_model_dir, tiny_data, run_dir, "train.log_every=2", "train.stop_after=5")


def test_leftover_temporary_files_are_removed_and_the_users_files_kept(
    finished, tiny_model_dir, tiny_data, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    temp_file = run_dir / ".checkpoint.pt.k2x9_q1z.tmp"  # a kill during a checkpoint save
    temp_file.write_bytes(b"\0" * 4096)
    temp_dir = run_dir / "best.tmp-4242"  # a kill during a model save
    temp_dir.mkdir()
    (temp_dir / "model.safetensors").write_bytes(b"\0")
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "checkpoint.pt.bak").write_text("mine too")
    results = run(tiny_model_dir, tiny_data, run_dir)
    assert results["skipped_stages"] == ["data", "mining", "teacher", "labels", "train"]
    assert not temp_file.exists() and not temp_dir.exists()
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / "checkpoint.pt.bak").read_text() == "mine too"


def test_a_run_that_made_nothing_does_not_block_the_folder(tmp_path):
    settings = {"data": {"root": "wrong/path"}, "train": {"steps": 2}}
    assert check_settings(tmp_path, settings, overwrite=False).changes == []
    # it failed at once (nothing made): the corrected run is not a settings change
    fixed = {"data": {"root": "data"}, "train": {"steps": 2}}
    assert check_settings(tmp_path, fixed, overwrite=False).changes == []
    (tmp_path / "corpus.jsonl.meta.json").write_text("{}")  # now a stage has finished
    with pytest.raises(RunSettingsError, match="half-finished run .*data.root: 'data' -> 'other'"):
        check_settings(tmp_path, {**fixed, "data": {"root": "other"}}, overwrite=False)


HOLD_LOCK = """
import sys, time
from melscribe_torch.locking import exclusive_lock
with exclusive_lock(sys.argv[1], "run folder", "wait"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_run_in_a_busy_folder_is_refused_naming_the_holder(
    finished, tiny_model_dir, tiny_data, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before = snapshot(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=rf"run folder {run_dir} is in use by PID {holder.pid} on .+ \(started"):
            run(tiny_model_dir, tiny_data, run_dir)
        # through the driver: one line on stderr, status 2, no traceback
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        driver = subprocess.run(
            [sys.executable, "train.py", *smoke_overrides(tiny_model_dir, tiny_data), f"hydra.run.dir={run_dir}"],
            cwd=REPO_ROOT, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
        )
        assert driver.returncode == 2
        err = driver.stderr.strip().splitlines()[-1]
        assert err.startswith("error: run folder") and f"PID {holder.pid}" in err
        assert "Traceback" not in driver.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    def results_of(snap):  # Hydra itself rewrites .hydra/ and the driver's log at each start
        return {k: v for k, v in snap.items() if not k.startswith(".hydra") and not k.endswith(".log")}

    assert results_of(snapshot(run_dir)) == results_of(before)
    run(tiny_model_dir, tiny_data, run_dir)  # the killed holder's lock is free
