"""Train a bi-encoder with GPL on the training sources: data -> mining -> teacher -> labels -> student.

python train.py data.root=../shared/data
python train.py +experiment=smoke data.root=../shared/data
python train.py hydra.run.dir=outputs/train/<run>      # resume an interrupted run
python train.py ... --debug                            # a traceback instead of a one-line error
torchrun --nproc_per_node=2 train.py data.root=../shared/data
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from melscribe_torch.errors import errors_in_one_line, take_debug_flag
from melscribe_torch.models.aliases import load_model_aliases
from melscribe_torch.pipeline import (
    DataSettings,
    LossSettings,
    MiningSettings,
    ModelSettings,
    OptimSettings,
    TeacherSettings,
    TrainSettings,
    run_pipeline,
)
from melscribe_torch.training.distributed import cleanup, init_distributed

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parent / "hydra_conf"


def model_aliases() -> dict[str, dict]:
    """Short model names (hydra_conf/model/<name>.yaml) -> their settings."""
    return load_model_aliases(CONF_DIR / "model")

def section(cfg: DictConfig, key: str) -> dict:
    return OmegaConf.to_container(cfg[key], resolve=True)


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run or resume the GPL pipeline in ``run_dir``; returns the contents of results.json."""
    rank, world_size, device = init_distributed()
    try:
        results = run_pipeline(
            run_dir,
            model=ModelSettings(**section(cfg, "model")),
            data=DataSettings(**section(cfg, "data")),
            mining_settings=MiningSettings(**section(cfg, "mining")),
            teacher_settings=TeacherSettings(**section(cfg, "teacher")),
            train=TrainSettings(**section(cfg, "train")),
            loss=LossSettings(**section(cfg, "loss")),
            optim=OptimSettings(**section(cfg, "optim")),
            seed=cfg.seed,
            aliases=model_aliases(),
            rank=rank,
            world_size=world_size,
            device=device,
        )
    finally:
        cleanup()
    if rank == 0:
        log.info(
            "validation Recall@10: %s; timings (s): %s",
            results["valid_recall@10"],
            results["timings_s"],
        )
    return results


@hydra.main(config_path="hydra_conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with errors_in_one_line():
        run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    import sys

    sys.argv = take_debug_flag(sys.argv)
    main()
