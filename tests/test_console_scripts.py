"""melscribe-train / melscribe-evaluate as a user runs them: from any folder, on the configs
inside the package, with --help and --multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from hydra_callbacks import RETURN_FILE
from training_fixtures import write_tiny_data

import melscribe_torch
from melscribe_torch.conf import CONF_DIR

# The subprocess imports the package under test (not another installed copy) and the callback.
IMPORT_PATH = [str(Path(melscribe_torch.__file__).parents[1]), str(Path(__file__).resolve().parent)]


def run_script(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m <module> args`` in ``cwd`` (outside the checkout), its output captured."""
    python_path = os.pathsep.join(filter(None, [*IMPORT_PATH, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def config_groups(app: str) -> set[str]:
    """The groups ``<app>.yaml`` chooses in its defaults list (and train's +experiment presets)."""
    defaults = yaml.safe_load((CONF_DIR / f"{app}.yaml").read_text())["defaults"]
    keys = {next(iter(entry)) for entry in defaults if isinstance(entry, dict)}
    return {key for key in keys if not key.startswith("override ")} | ({"experiment"} if app == "train" else set())


def described_groups(help_text: str) -> set[str]:
    return {line.split()[0] for line in help_text.splitlines() if line.startswith("  ") and line.split()}


def test_every_config_group_belongs_to_an_app():
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")}
    assert groups == config_groups("train") | config_groups("evaluate")


def test_train_help_describes_every_config_group_and_lists_its_options(tmp_path):
    text = run_script("melscribe_torch.cli.train", "--help", cwd=tmp_path).stdout
    assert config_groups("train") <= described_groups(text), text
    # the options come from the files, so a new preset or loss shows up without editing the help
    presets = ", ".join(sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
    assert f"experiment: {presets}" in text


def test_evaluate_help_names_its_command(tmp_path):
    text = run_script("melscribe_torch.cli.evaluate", "--help", cwd=tmp_path).stdout
    assert text.startswith("melscribe-evaluate:") and "model=outputs/train/<run>/best" in text
    assert config_groups("evaluate") <= described_groups(text), text


def test_a_sweep_writes_under_outputs_and_each_job_returns_its_best_validation_metric(
    tmp_path, tiny_model_dir
):
    data = write_tiny_data(tmp_path / "data", num_train=30)
    work = tmp_path / "elsewhere"
    work.mkdir()
    run_script(
        "melscribe_torch.cli.train",
        "--multirun",
        "+experiment=smoke",
        "loss=mnrl",  # no teacher: the sweep's wiring is under test, not the stages
        f"model.name_or_path={tiny_model_dir}",
        f"data.root={data}",
        "train.select_metric=valid_recall@10,valid_mean_recall@10",
        "+hydra.callbacks.record._target_=hydra_callbacks.RecordReturnValue",
        cwd=work,
    )
    jobs = sorted((work / "outputs" / "sweeps" / "train").glob("*/[0-9]*"))
    assert [job.name for job in jobs] == ["0", "1"]
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        returned = json.loads((job / RETURN_FILE).read_text())
        # the value a sweeper optimises is the best of the metric that job selects on
        assert returned == results["valid_recall@10"]["best"]
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        selected = results["valid_recall@10"]["select_metric"]
        assert returned == max(row[selected] for row in rows if selected in row)
        # best/ carries a model card with its base model and the score it was kept for
        card = (job / "best" / "README.md").read_text()
        assert f"`{tiny_model_dir}`" in card and f"| `{selected}` | {100 * returned:.2f} |" in card
