"""The teacher's losses: listwise softmax against its closed form, pointwise BCE, the builder."""

import math

import pytest
import torch
import torch.nn.functional as F

from melscribe_torch.teacher import ListwiseSoftmax, PointwiseBCE, build_teacher_loss, listwise_softmax_loss


def test_listwise_loss_matches_the_closed_form():
    logits = torch.tensor([[math.log(2.0), 0.0], [0.0, 0.0], [1.0, 3.0]])
    # -log softmax of column 0: log(1 + e^-ln2) = log(3/2); log 2; log(1 + e^2)
    expected = (math.log(1.5) + math.log(2.0) + math.log(1 + math.exp(2.0))) / 3
    assert listwise_softmax_loss(logits).item() == pytest.approx(expected, rel=1e-6)


def test_listwise_loss_reads_the_positive_at_column_zero_and_pushes_it_up():
    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    loss = listwise_softmax_loss(logits)
    swapped = listwise_softmax_loss(logits.detach()[:, [1, 0, 2]])
    assert swapped > loss  # the positive scoring lower costs more
    # negatives' order does not matter, nor a shift of every logit in a group
    assert listwise_softmax_loss(logits.detach()[:, [0, 2, 1]]) == pytest.approx(loss.item())
    assert listwise_softmax_loss(logits.detach() + 5.0) == pytest.approx(loss.item())
    loss.backward()
    assert logits.grad[0, 0] < 0 and (logits.grad[0, 1:] > 0).all()  # descent raises the positive


def test_listwise_pairs_and_logits_line_up_group_by_group():
    loss = ListwiseSoftmax(group_size=3)
    groups = [("q1", ["p1", "n1", "n2"]), ("q2", ["p2", "n3", "n4"])]
    queries, docs = loss.pairs(groups)
    assert queries == ["q1"] * 3 + ["q2"] * 3 and docs == ["p1", "n1", "n2", "p2", "n3", "n4"]
    flat = torch.tensor([4.0, 0.0, 0.0, 0.0, 4.0, 0.0])  # group 1 right, group 2 wrong
    expected = listwise_softmax_loss(flat.view(2, 3))
    assert loss(flat, groups).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="holds 2 descriptor sets"):
        loss.pairs([("q", ["p", "n"])])


def test_pointwise_bce_is_binary_cross_entropy_on_the_labels():
    examples = [("q", "a", 1.0), ("q", "b", 0.0), ("r", "c", 0.0)]
    logits = torch.tensor([1.5, -0.5, 2.0])
    loss = PointwiseBCE()
    assert loss.pairs(examples) == (["q", "q", "r"], ["a", "b", "c"])
    expected = F.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 0.0, 0.0]))
    assert loss(logits, examples).item() == pytest.approx(expected.item())


def test_a_step_spends_batch_size_pairs_whichever_the_loss():
    assert build_teacher_loss("bce", group_size=8, batch_size=32).items_per_step(32) == 32
    assert build_teacher_loss("listwise", group_size=8, batch_size=32).items_per_step(32) == 4


@pytest.mark.parametrize(
    "name, group_size, batch_size, message",
    [
        ("softmax", 8, 32, "unknown teacher.loss 'softmax'; valid: bce, listwise"),
        ("listwise", 8, 30, r"teacher.batch_size \(30\) .* multiple of teacher.group_size \(8\)"),
        ("listwise", 1, 32, "group_size must be >= 2"),
    ],
)
def test_bad_settings_are_named(name, group_size, batch_size, message):
    with pytest.raises(ValueError, match=message):
        build_teacher_loss(name, group_size, batch_size)
