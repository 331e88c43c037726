"""The GPL training pipeline: settings from the config, the stage runner, the stage bodies, the run."""

from .run import run_pipeline
from .runner import StageRunner
from ..settings import (
    DataSettings,
    LossSettings,
    MiningSettings,
    ModelSettings,
    OptimSettings,
    Settings,
    TeacherSettings,
    TrainSettings,
    settings_from_config,
)
from .stages import label, load_student, mine, prepare_data, train_teacher, write_tuples

__all__ = [
    "DataSettings",
    "LossSettings",
    "MiningSettings",
    "ModelSettings",
    "OptimSettings",
    "Settings",
    "StageRunner",
    "TeacherSettings",
    "TrainSettings",
    "label",
    "load_student",
    "mine",
    "prepare_data",
    "run_pipeline",
    "settings_from_config",
    "train_teacher",
    "write_tuples",
]
