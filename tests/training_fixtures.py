"""Helpers for the training tests: a tiny MusicCaps-layout data directory and composed train configs."""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

from hydra import compose, initialize_config_dir

from melscribe_torch.conf import CONF_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
DESCRIPTORS = [
    "rock",
    "pop",
    "jazz",
    "piano",
    "guitar",
    "drums",
    "bass",
    "female vocal",
    "male singer",
    "fast tempo",
    "slow tempo",
    "happy",
    "sad",
    "calm",
    "energetic",
    "electronic",
    "acoustic",
    "soft",
    "loud",
]


def write_tiny_data(
    root: Path,
    num_train: int = 60,
    num_eval: int = 5,
    seed: int = 0,
    eval_ids_in_train: bool = False,
) -> Path:
    """A MusicCaps CSV of made-up clips whose captions mention their descriptors."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_train + num_eval):
        tags = rng.sample(DESCRIPTORS, 4)
        caption = (
            f"this song features {tags[0]} and {tags[1]}. the music is {tags[2]} with {tags[3]}."
        )
        is_eval = i >= num_train
        clip_id = f"clip{i:03d}"
        rows.append(
            {
                "ytid": clip_id,
                "aspect_list": str(tags),
                "caption": caption,
                "is_audioset_eval": str(is_eval),
            }
        )
        if is_eval and eval_ids_in_train:
            rows.append({**rows[-1], "is_audioset_eval": "False"})
    path = root / "MusicCaps" / "musiccaps-public.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["ytid", "aspect_list", "caption", "is_audioset_eval"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return root


def smoke_overrides(model_dir: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        "+experiment=smoke",
        f"model.name_or_path={model_dir}",
        f"data.root={data_root}",
        *extra,
    ]


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def composed_settings(*overrides: str):
    """The pipeline's settings built from ``train.yaml`` with command-line style ``overrides``."""
    from melscribe_torch.pipeline import settings_from_config

    return settings_from_config(compose_train(["data.root=unused", *overrides]))


def loss_from(*overrides: str):
    """The student's loss built from the ``loss`` config group, e.g. ``loss_from("loss=mnrl")``."""
    from melscribe_torch.losses import build_loss

    return build_loss(composed_settings(*overrides).loss)


# What the short test runs change in the YAML's train/optim settings: a few exact fp32 steps.
BRIEF = {"steps": 4, "batch_size": 4, "precision": "fp32", "warmup": 1, "log_every": 1, "lr": 1e-3}
FILES = {"checkpoint_path": "checkpoint", "metrics_path": "metrics", "best_dir": "best"}


def train_briefly(model, examples, loss_fn=None, seed=0, **overrides):
    """``train_bi_encoder`` for a few exact fp32 steps of a tiny model.

    ``overrides`` replace ``train``/``optim`` settings by field name (``steps=1``,
    ``weight_decay=0.0``), name the files (``checkpoint_path``, ``metrics_path``,
    ``best_dir``), or pass the loop's other arguments (``validate``, ``known_positives``, ...).
    The loss defaults to ``loss=margin_mse``.
    """
    from melscribe_torch.training import TrainingFiles, train_bi_encoder

    settings = composed_settings()
    train, optim, files, rest = {}, {}, {}, {}
    for key, value in {**BRIEF, **overrides}.items():
        if key in FILES:
            files[FILES[key]] = value
        elif hasattr(settings.train, key):
            train[key] = value
        elif hasattr(settings.optim, key):
            optim[key] = value
        else:
            rest[key] = value
    return train_bi_encoder(
        model,
        examples,
        loss_fn if loss_fn is not None else loss_from("loss=margin_mse"),
        dataclasses.replace(settings.train, **train),
        dataclasses.replace(settings.optim, **optim),
        seed=seed,
        files=TrainingFiles(**files),
        **rest,
    )
