import pytest
import torch
import torch.nn.functional as F

from melscribe_torch.losses import MarginMSELoss, MultipleNegativesRankingLoss
from melscribe_torch.training import StudentLoss


def test_margin_mse_closed_form():
    loss = MarginMSELoss()(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0]))
    # margins 2 and 0 against 1 and -1: ((2-1)^2 + (0+1)^2) / 2
    assert loss.item() == pytest.approx(1.0)


def test_margin_mse_is_zero_when_margins_agree():
    pos, neg = torch.randn(8), torch.randn(8)
    assert MarginMSELoss()(pos, neg, pos - neg).item() == pytest.approx(0.0, abs=1e-7)


def test_margin_mse_sign_positive_minus_negative():
    # the student ranks the positive 2 above the negative; a teacher margin of +2 agrees,
    # -2 is the opposite ranking: (2 - (-2))^2 = 16
    pos, neg = torch.tensor([3.0]), torch.tensor([1.0])
    assert MarginMSELoss()(pos, neg, torch.tensor([2.0])).item() == 0.0
    assert MarginMSELoss()(pos, neg, torch.tensor([-2.0])).item() == pytest.approx(16.0)


def closed_form_margin_mse(q, p, n, margins):
    """mean_i ((q_i . p_i - q_i . n_i) - m_i)^2, written out element by element."""
    total = 0.0
    for i in range(q.shape[0]):
        student = sum(q[i, k] * p[i, k] for k in range(q.shape[1])) - sum(
            q[i, k] * n[i, k] for k in range(q.shape[1])
        )
        total += (student - margins[i]) ** 2
    return total / q.shape[0]


def test_student_margin_mse_is_the_closed_form_on_raw_dot_products():
    torch.manual_seed(0)
    # unnormalised embeddings: a dot product here can reach the teacher's logit margins
    q, p, n = (3 * torch.randn(5, 4) for _ in range(3))
    margins = torch.randn(5) * 4
    loss, parts = StudentLoss(margin_mse_weight=1.0, mnrl_weight=0.0, similarity="dot")(
        q, p, n, margins
    )
    expected = closed_form_margin_mse(q, p, n, margins)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts == {"margin_mse": pytest.approx(expected.item(), rel=1e-5)}


def test_student_margin_mse_with_cos_is_the_closed_form_on_unit_vectors():
    torch.manual_seed(1)
    q, p, n = (torch.randn(5, 4) for _ in range(3))
    margins = torch.rand(5) * 2 - 1
    loss, _ = StudentLoss(1.0, 0.0, similarity="cos")(q, p, n, margins)
    unit = [F.normalize(e, dim=-1) for e in (q, p, n)]
    assert loss.item() == pytest.approx(closed_form_margin_mse(*unit, margins).item(), rel=1e-5)


def test_student_margin_mse_moves_the_request_toward_the_teachers_ranking():
    # the teacher prefers p by a margin of 5; the student's margin is 0 (p and n equally far):
    # one descent step on q must raise q . p - q . n
    q = torch.tensor([[1.0, 1.0]], requires_grad=True)
    p, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    loss, _ = StudentLoss(1.0, 0.0, similarity="dot")(q, p, n, torch.tensor([5.0]))
    loss.backward()
    with torch.no_grad():
        stepped = q - 0.1 * q.grad
        assert ((stepped * p).sum() - (stepped * n).sum()).item() > 0


def naive_in_batch_loss(q, d, scale, group_size):
    total = 0.0
    for i in range(q.shape[0]):
        logits = torch.stack([scale * F.cosine_similarity(q[i], d[j], dim=0) for j in range(d.shape[0])])
        total = total - torch.log_softmax(logits, dim=0)[i * group_size]
    return total / q.shape[0]


@pytest.mark.parametrize("group_size", [1, 3])
def test_in_batch_negatives_against_a_naive_loop(group_size):
    torch.manual_seed(0)
    q, d = torch.randn(4, 8), torch.randn(4 * group_size, 8)
    got = MultipleNegativesRankingLoss(scale=20.0)(q, d)
    torch.testing.assert_close(got, naive_in_batch_loss(q, d, 20.0, group_size))


def test_in_batch_loss_rewards_the_right_pairing():
    q = torch.eye(4)
    loss = MultipleNegativesRankingLoss(scale=20.0)
    assert loss(q, q) < loss(q, q.roll(1, dims=0))


def test_in_batch_loss_refuses_ragged_groups():
    with pytest.raises(ValueError, match="not a multiple"):
        MultipleNegativesRankingLoss()(torch.randn(3, 4), torch.randn(4, 4))


def test_excluded_columns_are_not_negatives_but_the_own_positive_stays():
    torch.manual_seed(0)
    q, d = torch.randn(3, 8), torch.randn(3, 8)
    exclude = torch.zeros(3, 3, dtype=torch.bool)
    exclude[0, 2] = True  # document 2 is also a positive of request 0
    exclude[1, 1] = True  # marking a row's own positive changes nothing
    got = MultipleNegativesRankingLoss(scale=20.0)(q, d, exclude)
    scores = 20.0 * F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T
    expected = (
        -torch.log_softmax(scores[0, :2], dim=0)[0]
        - torch.log_softmax(scores[1], dim=0)[1]
        - torch.log_softmax(scores[2], dim=0)[2]
    ) / 3
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="exclude has shape"):
        MultipleNegativesRankingLoss()(q, d, exclude[:2])


def test_symmetric_loss_averages_both_directions():
    torch.manual_seed(0)
    q, d = torch.randn(4, 8), torch.randn(8, 8)  # groups of two: positives at columns 0, 2, 4, 6
    got = MultipleNegativesRankingLoss(scale=20.0, symmetric=True)(q, d)
    forward = naive_in_batch_loss(q, d, 20.0, 2)
    backward = naive_in_batch_loss(d[::2], q, 20.0, 1)  # each positive against the requests
    torch.testing.assert_close(got, (forward + backward) / 2)
