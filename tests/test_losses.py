import pytest
import torch
import torch.nn.functional as F

from melscribe_torch.losses import MarginMSELoss, MultipleNegativesRankingLoss


def test_margin_mse_closed_form():
    loss = MarginMSELoss()(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0]))
    # margins 2 and 0 against 1 and -1: ((2-1)^2 + (0+1)^2) / 2
    assert loss.item() == pytest.approx(1.0)


def test_margin_mse_is_zero_when_margins_agree():
    pos, neg = torch.randn(8), torch.randn(8)
    assert MarginMSELoss()(pos, neg, pos - neg).item() == pytest.approx(0.0, abs=1e-7)


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
