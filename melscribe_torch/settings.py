"""The training run's settings: typed views of the composed Hydra config, one per config group.

No field has a default: every value comes from the YAML (``melscribe_torch/conf/<group>/*.yaml``), so
a default is written once and cannot drift. ``settings_from_config`` builds them all, and
names the group and key when the config lacks one or has one no setting reads. The ``loss``
group stays a mapping of components (``losses.build_loss`` builds it): each loss brings
its own options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf


@dataclass
class ModelSettings:
    name_or_path: str
    pooling: str
    max_length: int
    normalize: bool | None  # None: as the model's files say


@dataclass
class DataSettings:
    root: str
    train_sources: list[str]
    valid_fraction: float
    split_seed: int
    pair_seed: int
    docs_per_query: int
    max_records: int | None
    valid_seeds: list[int]
    valid_request_sources: list[str] | None
    valid_layout: str
    request_style_fraction: float
    omit_descriptor_fraction: float


@dataclass
class MiningSettings:
    retrievers: list[str]
    k: int
    score: str
    batch_size: int
    precision: str
    exclude_same_clip: bool
    exclude_described: bool


@dataclass
class TeacherSettings:
    model: str
    path: str | None
    require_path: bool
    loss: str
    group_size: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    negatives_per_positive: int
    random_negatives: int
    precision: str
    valid_fraction: float
    max_valid_examples: int
    seed: int
    checkpoint_every: int


@dataclass
class EnsembleSettings:
    dense: str | None
    dense_weight: float
    tfidf_weight: float
    max_ngram: int
    second_dense: str | None
    second_dense_weight: float


@dataclass
class TrainSettings:
    steps: int
    batch_size: int
    grad_accum: int
    precision: str
    dropout: float | None
    max_query_len: int
    max_doc_len: int
    warmup: int
    warmup_max_fraction: float
    checkpoint_every: int
    eval_every: int
    log_every: int
    label_batch_size: int
    label_precision: str
    encode_batch_size: int
    resume_from: str | None
    stop_after: int | None
    overwrite: bool
    select_metric: str
    ema_decay: float | None


# Component name -> {_target_: its class, weight: ..., its own options} (``losses.build_loss``).
LossSettings = dict[str, dict[str, Any]]


@dataclass
class OptimSettings:
    lr: float
    weight_decay: float
    decay_bias_and_norm: bool
    max_grad_norm: float


@dataclass
class Settings:
    """Everything a training run reads from ``train.yaml`` and its groups."""

    model: ModelSettings
    data: DataSettings
    mining: MiningSettings
    teacher: TeacherSettings
    ensemble: EnsembleSettings
    train: TrainSettings
    loss: LossSettings
    optim: OptimSettings
    seed: int


GROUPS = {
    "model": ModelSettings,
    "data": DataSettings,
    "mining": MiningSettings,
    "teacher": TeacherSettings,
    "ensemble": EnsembleSettings,
    "train": TrainSettings,
    "optim": OptimSettings,
}

T = TypeVar("T")


def section_settings(cls: type[T], values: Mapping[str, Any], group: str) -> T:
    """``cls`` from one config group's values; a missing or unknown key is one clear error."""
    expected = {f.name for f in fields(cls)}
    missing, unknown = expected - set(values), set(values) - expected
    if missing or unknown:
        problems = [f"missing {group}.{k}" for k in sorted(missing)]
        problems += [f"unknown {group}.{k}" for k in sorted(unknown)]
        raise ValueError(f"config group {group!r}: {', '.join(problems)}")
    return cls(**values)


def settings_from_config(cfg: DictConfig | Mapping[str, Any]) -> Settings:
    """The typed settings of a composed train config (interpolations resolved)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    built = {group: section_settings(cls, cfg[group], group) for group, cls in GROUPS.items()}
    return Settings(**built, loss=dict(cfg["loss"]), seed=cfg["seed"])
