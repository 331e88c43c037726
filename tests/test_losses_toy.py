"""A loss added from outside the package: a class here, a YAML in a temporary config folder.

This is what docs/extending.md walks through: no package file changes, the new component
trains through melscribe-train, and the pipeline asks it what it needs (here the mined negatives,
no teacher margins).
"""

from __future__ import annotations

import torch
from training_fixtures import compose_train, smoke_overrides, write_tiny_data

from melscribe_torch.cli import train
from melscribe_torch.losses import LossComponent, StudentBatch


class TripletLoss(LossComponent):
    """max(0, margin - (q·p - q·n)): each positive ahead of its mined negative by ``margin``."""

    needs_negatives = True  # the loop embeds the mined negatives; no teacher margin is read
    calls: list[StudentBatch] = []

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, batch: StudentBatch) -> torch.Tensor:
        TripletLoss.calls.append(batch)
        gap = (batch.q * batch.p).sum(-1) - (batch.q * batch.n).sum(-1)
        return torch.relu(self.margin - gap).mean()


def test_a_loss_from_a_yaml_outside_the_package_trains_two_steps(tiny_model_dir, tmp_path):
    conf = tmp_path / "conf"
    (conf / "loss").mkdir(parents=True)
    (conf / "loss" / "triplet.yaml").write_text(
        f"triplet:\n  _target_: {__name__}.TripletLoss\n  weight: 1.0\n  margin: 0.5\n"
    )
    data = write_tiny_data(tmp_path / "data")
    cfg = compose_train(
        smoke_overrides(tiny_model_dir, data, "loss=triplet", f"hydra.searchpath=[file://{conf}]")
    )
    assert cfg.loss.triplet.margin == 0.5
    TripletLoss.calls.clear()
    results = train.run(cfg, tmp_path / "run")
    assert results["training"]["step"] == 2
    assert len(TripletLoss.calls) == 2  # one micro-batch per step
    assert all(b.n is not None and b.margins is None for b in TripletLoss.calls)
    assert not (tmp_path / "run" / "cross-encoder").exists()  # it reads no margin: no teacher
    assert results["settings"]["loss"]["triplet"]["margin"] == 0.5
