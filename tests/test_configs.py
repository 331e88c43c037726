"""Every train config composes, and every preset builds the pipeline's settings."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from training_fixtures import CONF_DIR, compose_train

from melscribe_torch.pipeline import (
    DataSettings,
    LossSettings,
    MiningSettings,
    ModelSettings,
    OptimSettings,
    TeacherSettings,
    TrainSettings,
)

SETTINGS = {
    "model": ModelSettings,
    "data": DataSettings,
    "mining": MiningSettings,
    "teacher": TeacherSettings,
    "train": TrainSettings,
    "loss": LossSettings,
    "optim": OptimSettings,
}


def build_settings(cfg):
    return {
        key: cls(**OmegaConf.to_container(cfg[key], resolve=True)) for key, cls in SETTINGS.items()
    }


@pytest.mark.parametrize(
    "preset", [p.stem for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
)
def test_every_preset_composes_and_fits_the_settings(preset):
    cfg = compose_train([f"+experiment={preset}", "data.root=somewhere"])
    settings = build_settings(cfg)
    assert settings["train"].steps >= 1


@pytest.mark.parametrize("loss", [p.stem for p in sorted((CONF_DIR / "loss").glob("*.yaml"))])
def test_every_loss_composes(loss):
    settings = build_settings(compose_train([f"loss={loss}", "data.root=x"]))
    assert settings["loss"].margin_mse_weight > 0 or settings["loss"].mnrl_weight > 0


@pytest.mark.parametrize("model", [p.stem for p in sorted((CONF_DIR / "model").glob("*.yaml"))])
def test_every_model_composes(model):
    assert build_settings(compose_train([f"model={model}", "data.root=x"]))["model"].name_or_path


def test_paper_preset_is_the_papers_recipe():
    cfg = compose_train(["+experiment=paper", "data.root=x"])
    assert (cfg.train.steps, cfg.train.batch_size, cfg.mining.k) == (140000, 4, 30)
    assert len(cfg.mining.retrievers) == 2 and cfg.loss.mnrl_weight == 0
    assert cfg.train.dropout is None  # the backbone's own
    assert cfg.optim.lr == 2e-5  # GPL's


def test_a_preset_keeps_the_users_model_choice():
    chosen = compose_train(["model=bert-base", "data.root=x"]).model
    with_preset = compose_train(["model=bert-base", "+experiment=paper", "data.root=x"]).model
    assert with_preset.name_or_path == chosen.name_or_path == "bert-base-uncased"


def test_presets_open_with_their_command():
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        # Hydra reads the package header only on the first line; the command comes right after.
        command = path.read_text().splitlines()[1]
        assert command.startswith(
            (f"# melscribe-train +experiment={path.stem}", f"# python train.py +experiment={path.stem}")
        ), path


def flatten(node: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize(
    "preset", [p.stem for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
)
def test_a_preset_changes_only_the_values_it_names(preset):
    """Everything a preset does not name stays the default (or the user's choice)."""
    plain = flatten(OmegaConf.to_container(compose_train(["data.root=x"])))
    composed = flatten(OmegaConf.to_container(compose_train([f"+experiment={preset}", "data.root=x"])))
    text = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "experiment" / f"{preset}.yaml"))
    # "override /loss: ..." in the preset's defaults swaps a whole group
    swapped = [
        next(iter(entry)).split("/")[-1] + "."
        for entry in text.pop("defaults", [])
        if isinstance(entry, dict)
    ]
    named = set(flatten(text))
    changed = {key for key in plain.keys() | composed.keys() if plain.get(key) != composed.get(key)}
    assert changed, f"{preset} changes nothing"
    unnamed = {key for key in changed - named if not key.startswith(tuple(swapped))}
    assert not unnamed, f"{preset} changes values it does not name: {sorted(unnamed)}"
