"""Train a bi-encoder with GPL on the training sources: data -> mining -> teacher -> labels -> student.

melscribe-train data.root=../shared/data                 # or: python train.py ... in a checkout
melscribe-train +experiment=smoke data.root=../shared/data
melscribe-train hydra.run.dir=outputs/train/<run>        # resume an interrupted run
melscribe-train --multirun optim.lr=2e-5,3e-5 ...        # a sweep, under outputs/sweeps/train/
melscribe-train ... --debug                              # a traceback instead of a one-line error
torchrun --nproc_per_node=2 train.py data.root=../shared/data
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from melscribe_torch.conf import CONF_DIR
from melscribe_torch.errors import errors_in_one_line, take_debug_flag
from melscribe_torch.model_card import write_model_cards
from melscribe_torch.models.aliases import load_model_aliases
from melscribe_torch.pipeline import run_pipeline, settings_from_config
from melscribe_torch.training.distributed import cleanup, init_distributed

log = logging.getLogger(__name__)


def model_aliases() -> dict[str, dict]:
    """Short model names (conf/model/<name>.yaml) -> their settings."""
    return load_model_aliases(CONF_DIR / "model")

def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run or resume the GPL pipeline in ``run_dir``; returns the contents of results.json."""
    rank, world_size, device = init_distributed()
    try:
        results = run_pipeline(
            run_dir,
            settings_from_config(cfg),
            aliases=model_aliases(),
            rank=rank,
            world_size=world_size,
            device=device,
        )
    finally:
        cleanup()
    if rank == 0:
        write_model_cards(run_dir)  # best/ and last/ say what they are and how they scored
        log.info(
            "validation Recall@10: %s; timings (s): %s",
            results["valid_recall@10"],
            results["timings_s"],
        )
    return results


@hydra.main(config_path="pkg://melscribe_torch.conf", config_name="train", version_base="1.3")
def train_app(cfg: DictConfig) -> float | None:
    """Returns the best value of ``train.select_metric``: what a Hydra sweeper optimises."""
    with errors_in_one_line():
        return run(cfg, HydraConfig.get().runtime.output_dir)["valid_recall@10"]["best"]


def main() -> float | None:
    """The ``melscribe-train`` console script: Hydra's command line; ``--debug`` shows tracebacks."""
    sys.argv = take_debug_flag(sys.argv)
    return train_app()


if __name__ == "__main__":
    main()
