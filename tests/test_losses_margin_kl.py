"""MarginKL: the teacher's preference for the positive over the negative, as a soft target."""

import math

import pytest
import torch
import torch.nn.functional as F
from training_fixtures import loss_from

from melscribe_torch.losses import StudentBatch


def student_batch(q, p, n, margins):
    return StudentBatch([""] * len(q), [""] * len(q), q, p, n, margins)


def closed_form_margin_kl(q, p, n, margins, scale, temperature):
    """mean_i KL over the two candidates, each softmax written out with exponentials."""
    total = 0.0
    for i in range(q.shape[0]):
        student = [scale * float(q[i] @ p[i]), scale * float(q[i] @ n[i])]
        teacher = [float(margins[i]) / temperature, 0.0]  # a softmax sees the margin alone
        s = [math.exp(x) / sum(math.exp(y) for y in student) for x in student]
        t = [math.exp(x) / sum(math.exp(y) for y in teacher) for x in teacher]
        total += sum(t[k] * math.log(t[k] / s[k]) for k in range(2))
    return total / q.shape[0]


def test_margin_kl_is_the_closed_form_on_raw_dot_products():
    torch.manual_seed(0)
    q, p, n = (torch.randn(5, 4) for _ in range(3))
    margins = torch.randn(5) * 3
    build = loss_from(
        "loss=margin_kl",
        "loss.margin_kl.similarity=dot",
        "loss.margin_kl.scale=1",
        "loss.margin_kl.temperature=2",
    )
    loss, parts = build(student_batch(q, p, n, margins))
    expected = closed_form_margin_kl(q, p, n, margins, scale=1.0, temperature=2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert parts == {"margin_kl": pytest.approx(expected, rel=1e-5)}


def test_margin_kl_with_cos_reads_unit_vectors_at_the_in_batch_scale():
    torch.manual_seed(1)
    q, p, n = (torch.randn(5, 4) for _ in range(3))
    margins = torch.randn(5) * 6
    # the YAML's values: cos, scale 20, temperature 1
    loss, _ = loss_from("loss=margin_kl")(student_batch(q, p, n, margins))
    unit = [F.normalize(e, dim=-1) for e in (q, p, n)]
    assert loss.item() == pytest.approx(closed_form_margin_kl(*unit, margins, 20.0, 1.0), rel=1e-5)


def test_margin_kl_is_zero_where_the_student_is_as_sure_as_the_teacher():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[1.5, 0.0], [0.0, 0.5]])
    n = torch.tensor([[0.5, 0.0], [0.0, 1.0]])
    margins = torch.tensor([1.0, -1.0]) * 3  # student margins 1 and -1, scale 3
    build = loss_from("loss=margin_kl", "loss.margin_kl.similarity=dot", "loss.margin_kl.scale=3")
    loss, _ = build(student_batch(q, p, n, margins))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_margin_kl_sign_positive_minus_negative():
    # the student ranks the positive above the negative by 2; a teacher that agrees costs
    # less than one that ranks them the other way by as much
    q, p, n = torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.tensor([[1.0]])
    build = loss_from("loss=margin_kl", "loss.margin_kl.similarity=dot", "loss.margin_kl.scale=1")
    agrees, _ = build(student_batch(q, p, n, torch.tensor([2.0])))
    opposes, _ = build(student_batch(q, p, n, torch.tensor([-2.0])))
    assert agrees.item() == pytest.approx(0.0, abs=1e-7)
    expected = closed_form_margin_kl(q, p, n, torch.tensor([-2.0]), scale=1.0, temperature=1.0)
    assert opposes.item() == pytest.approx(expected)
    assert opposes.item() > 1.0


def test_margin_kl_stays_finite_and_saturates_at_large_teacher_margins():
    # an ensemble teacher's margins reach tens of logits; MarginMSE's loss grows with the
    # square, this one toward -log of the student's probability of the positive first
    # the student's margin is 2
    q, p, n = torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.tensor([[0.0]])
    build = loss_from("loss=margin_kl", "loss.margin_kl.similarity=dot", "loss.margin_kl.scale=1")
    at_20, _ = build(student_batch(q, p, n, torch.tensor([20.0])))
    at_80, _ = build(student_batch(q, p, n, torch.tensor([80.0])))
    assert math.isfinite(at_80.item())
    minus_log_p_positive_first = -math.log(torch.sigmoid(torch.tensor(2.0)).item())
    assert at_80.item() == pytest.approx(minus_log_p_positive_first, rel=1e-4)
    assert at_80.item() - at_20.item() < 1e-6


def test_margin_kl_moves_the_request_toward_the_teachers_ranking():
    q = torch.tensor([[1.0, 1.0]], requires_grad=True)
    p, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    build = loss_from("loss=margin_kl", "loss.margin_kl.similarity=dot")
    loss, _ = build(student_batch(q, p, n, torch.tensor([5.0])))
    loss.backward()
    with torch.no_grad():
        stepped = q - 0.01 * q.grad
        assert ((stepped * p).sum() - (stepped * n).sum()).item() > 0


def test_margin_kl_beside_in_batch_negatives_is_their_weighted_sum():
    torch.manual_seed(3)
    q, p, n = (torch.randn(4, 8) for _ in range(3))
    batch = student_batch(q, p, n, torch.randn(4) * 5)
    combined, parts = loss_from("loss=margin_kl+mnrl", "loss.margin_kl.weight=0.5")(batch)
    assert set(parts) == {"margin_kl", "mnrl"}
    assert combined.item() == pytest.approx(0.5 * parts["margin_kl"] + parts["mnrl"], rel=1e-5)
    assert loss_from("loss=margin_kl+mnrl").needs_margins


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss.margin_kl.temperature=0", "loss.margin_kl.temperature"),
        ("loss.margin_kl.scale=-1", "loss.margin_kl.scale"),
        ("loss.margin_kl.similarity=l2", "unknown similarity"),
    ],
)
def test_a_bad_margin_kl_option_is_one_clear_error(override, message):
    with pytest.raises(ValueError, match=message):
        loss_from("loss=margin_kl", override)
