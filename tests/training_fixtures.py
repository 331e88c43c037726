"""Helpers for the training tests: a tiny MusicCaps-layout data directory and composed train configs."""

from __future__ import annotations

import csv
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


def train_briefly(model, examples, **overrides):
    """``train_bi_encoder`` for a few exact fp32 steps of a tiny model; ``overrides`` replace any argument."""
    from melscribe_torch.training import StudentLoss, train_bi_encoder

    args = {
        "steps": 4,
        "batch_size": 4,
        "loss_fn": StudentLoss(),
        "lr": 1e-3,
        "warmup_steps": 1,
        "precision": "fp32",
        "seed": 0,
        "log_every": 1,
    }
    return train_bi_encoder(model, examples, **{**args, **overrides})
