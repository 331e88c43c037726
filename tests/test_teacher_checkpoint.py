"""A teacher killed in training resumes from its checkpoint and ends where an unkilled one ends."""

import copy
import logging

import pytest
import torch
from test_teacher_training import toy_examples, toy_groups

from melscribe_torch.teacher import PointwiseBCE, train_cross_encoder
from melscribe_torch.teacher.checkpoint import TeacherCheckpoint, remove_teacher_checkpoint
from melscribe_torch.training.checkpoint import CheckpointError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = 6


class Killed(Exception):
    """Stands for a SIGKILL: the loop stops between two steps, nothing after it runs."""


class KilledAtStep(PointwiseBCE):
    """The loss of a run that dies when it reaches step ``step`` (0-based)."""

    def __init__(self, step: int):
        self.calls, self.step = 0, step

    def __call__(self, logits, items):
        if self.calls == self.step:
            raise Killed
        self.calls += 1
        return super().__call__(logits, items)


def train(model, checkpoint=None, loss_fn=None):
    return train_cross_encoder(
        model,
        toy_examples(),
        toy_examples(),
        loss_fn=loss_fn or PointwiseBCE(),
        valid_groups=toy_groups(),
        steps=STEPS,
        batch_size=5,  # 24 examples: passes end mid-batch, so the shuffle's remainder matters
        lr=1e-3,
        warmup_steps=2,
        precision="fp32",
        seed=0,
        checkpoint=checkpoint,
    )


def test_a_teacher_killed_mid_training_resumes_to_the_unkilled_weights(teacher, tmp_path):
    unkilled = copy.deepcopy(teacher)
    expected = train(unkilled)

    checkpoint = TeacherCheckpoint(tmp_path / "teacher-checkpoint.pt", every=2, key="settings-a")
    killed = copy.deepcopy(teacher)
    with pytest.raises(Killed):
        train(killed, checkpoint, KilledAtStep(5))  # the last save was after step 4
    assert checkpoint.path.is_file() and (tmp_path / "teacher-checkpoint.pt.sha256").is_file()

    resumed = copy.deepcopy(teacher)  # a new process: the weights it starts from are the fresh ones
    torch.manual_seed(123)  # and its random state is not the killed one's
    steps_run = KilledAtStep(STEPS + 1)  # never killed: counts the steps this process trains
    metrics = train(resumed, checkpoint, steps_run)
    assert steps_run.calls == STEPS - 4
    for name, value in unkilled.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert metrics["train_loss"] == pytest.approx(expected["train_loss"], abs=1e-7)
    assert metrics["auc"] == expected["auc"] and metrics["steps"] == STEPS

    remove_teacher_checkpoint(checkpoint.path)
    assert not any(tmp_path.iterdir())


def test_a_checkpoint_made_with_other_settings_is_not_resumed(teacher, tmp_path, caplog):
    unkilled = copy.deepcopy(teacher)
    train(unkilled)
    path = tmp_path / "teacher-checkpoint.pt"
    with pytest.raises(Killed):
        train(copy.deepcopy(teacher), TeacherCheckpoint(path, 2, "settings-a"), KilledAtStep(5))

    other, steps_run = copy.deepcopy(teacher), KilledAtStep(STEPS + 1)
    with caplog.at_level(logging.WARNING):
        train(other, TeacherCheckpoint(path, 2, "settings-b"), steps_run)
    assert steps_run.calls == STEPS
    assert "made with other settings or data; the teacher starts over" in caplog.text
    # started from step 0, as an unkilled run with these settings would
    for name, value in unkilled.state_dict().items():
        torch.testing.assert_close(other.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_a_damaged_teacher_checkpoint_is_refused_naming_it(teacher, tmp_path):
    path = tmp_path / "teacher-checkpoint.pt"
    with pytest.raises(Killed):
        train(copy.deepcopy(teacher), TeacherCheckpoint(path, 2, "k"), KilledAtStep(3))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="teacher-checkpoint.pt"):
        train(copy.deepcopy(teacher), TeacherCheckpoint(path, 2, "k"))
