"""Checkpoints are data, never code: a pickle payload is refused, corruption is caught, NaN is not resumed."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from melscribe_torch.integrity import recorded_digests, sidecar
from melscribe_torch.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)


def tiny_state(model: nn.Module) -> dict:
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": 3,
        "micro_batch": 3,
        "best_metric": 0.5,
        "seed": 7,
        "config": {"train": {"steps": 10, "precision": "fp32"}, "seed": 7, "sources": ["a", "b"]},
        "rng": rng_states(),
    }


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    path = save_checkpoint(tmp_path / "checkpoint.pt", tiny_state(model))
    return path, model


def test_a_checkpoint_round_trips_with_its_rng_states_under_weights_only(saved):
    path, model = saved
    import random

    import numpy as np

    draws = (random.random(), np.random.rand(), torch.rand(1))
    state = load_checkpoint(path, nn.Linear(4, 3))
    set_rng_states(state["rng"])  # back to the states saved before the draws
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws
    assert state["config"]["sources"] == ["a", "b"] and state["step"] == 3
    assert recorded_digests(path) is not None  # its sha256 sits beside it


class Payload:
    """Unpickling this calls ``open(marker, "w")``: what a crafted checkpoint would do with os.system."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_in_a_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    crafted = tmp_path / "crafted.pt"
    torch.save({"model": {}, "x": Payload(str(marker))}, crafted)
    torch.load(crafted, weights_only=False)["x"].close()  # plain unpickling runs it:
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="crafted.pt.*not loaded"):
        load_checkpoint(crafted, nn.Linear(4, 3))
    assert not marker.exists()


def test_a_truncated_checkpoint_is_refused_naming_the_file(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f"{path}.*(unreadable|sha256)"):
        load_checkpoint(path, nn.Linear(4, 3))


def test_weights_changed_in_place_are_caught_by_the_checksum_alone(saved):
    path, model = saved
    weight = model.state_dict()["weight"].numpy().tobytes()
    data = path.read_bytes()
    assert data.count(weight) == 1
    path.write_bytes(data.replace(weight, bytes(len(weight))))  # same size, still a valid file
    loaded = nn.Linear(4, 3)
    load_checkpoint(path, loaded, verify=False)  # parses fine: only the digest tells
    assert not loaded.weight.any()
    with pytest.raises(CheckpointError, match=f"{path} does not match its sha256"):
        load_checkpoint(path, nn.Linear(4, 3))


def test_non_finite_weights_are_refused_even_without_a_checksum(saved):
    path, model = saved
    state = torch.load(path, weights_only=True)
    state["model"]["weight"][0, 0] = float("nan")
    torch.save(state, path)
    sidecar(path).unlink()  # a checkpoint from elsewhere: only the finiteness check can catch it
    with pytest.raises(CheckpointError, match="weight holds 1 non-finite"):
        load_checkpoint(path, nn.Linear(4, 3))
    # verify=False skips the checksum, not the finiteness check
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(path, nn.Linear(4, 3), verify=False)


def test_the_checkpoint_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.pt", tiny_state(nn.Linear(4, 3)))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert sidecar(path).stat().st_mode & 0o777 == 0o644
