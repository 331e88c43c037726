import pytest
import torch
import torch.nn.functional as F

from training_fixtures import loss_from

from melscribe_torch.losses import MarginMSELoss, MultipleNegativesRankingLoss, StudentBatch


def student_batch(q, p, n, margins):
    """A batch whose texts no MarginMSE reads (only in-batch negatives' exclusions do)."""
    return StudentBatch([""] * len(q), [""] * len(q), q, p, n, margins)


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
    loss, parts = loss_from("loss=margin_mse")(student_batch(q, p, n, margins))
    expected = closed_form_margin_mse(q, p, n, margins)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts == {"margin_mse": pytest.approx(expected.item(), rel=1e-5)}


def test_student_margin_mse_with_cos_is_the_closed_form_on_unit_vectors():
    torch.manual_seed(1)
    q, p, n = (torch.randn(5, 4) for _ in range(3))
    margins = torch.rand(5) * 2 - 1
    loss, _ = loss_from("loss=margin_mse", "loss.margin_mse.similarity=cos")(
        student_batch(q, p, n, margins)
    )
    unit = [F.normalize(e, dim=-1) for e in (q, p, n)]
    assert loss.item() == pytest.approx(closed_form_margin_mse(*unit, margins).item(), rel=1e-5)


def test_student_margin_mse_scale_multiplies_the_students_scores():
    # cos margins lie in [-2, 2]; scale 20 reads them as the in-batch loss's logits
    torch.manual_seed(2)
    q, p, n = (torch.randn(5, 4) for _ in range(3))
    margins = torch.randn(5) * 6
    loss, _ = loss_from("loss=margin_mse", "loss.margin_mse.similarity=cos", "loss.margin_mse.scale=20")(
        student_batch(q, p, n, margins)
    )
    unit = [F.normalize(e, dim=-1) for e in (q, p, n)]
    scaled_q = 20 * unit[0]  # (20 q).p - (20 q).n = 20 (q.p - q.n)
    assert loss.item() == pytest.approx(closed_form_margin_mse(scaled_q, *unit[1:], margins).item(), rel=1e-5)
    with pytest.raises(ValueError, match="loss.margin_mse.scale"):
        loss_from("loss=margin_mse", "loss.margin_mse.scale=0")


def test_student_margin_mse_moves_the_request_toward_the_teachers_ranking():
    # the teacher prefers p by a margin of 5; the student's margin is 0 (p and n equally far):
    # one descent step on q must raise q . p - q . n
    q = torch.tensor([[1.0, 1.0]], requires_grad=True)
    p, n = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    loss, _ = loss_from("loss=margin_mse")(student_batch(q, p, n, torch.tensor([5.0])))
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


def test_combined_loss_is_the_weighted_sum_of_its_components():
    torch.manual_seed(2)
    q, p, n = (torch.randn(4, 8) for _ in range(3))
    batch = StudentBatch(["a", "b", "c", "d"], ["w", "x", "y", "z"], q, p, n, torch.randn(4))
    combined = loss_from("loss=margin_mse+mnrl")
    assert list(combined.weights) == ["margin_mse", "mnrl"]  # the config's order
    loss, parts = combined(batch)
    margin_mse = combined.components["margin_mse"](batch)
    mnrl = combined.components["mnrl"](batch)
    assert parts == {"margin_mse": margin_mse.item(), "mnrl": mnrl.item()}
    assert loss.item() == pytest.approx(combined.weights["margin_mse"] * margin_mse.item() + mnrl.item())
    # what each component reads decides what the pipeline makes: margins need a teacher
    assert combined.needs_margins and combined.needs_negatives
    # a weight of 0 leaves a component out, with what it needed
    only_mnrl = loss_from("loss=margin_mse+mnrl", "loss.margin_mse.weight=0")
    assert list(only_mnrl.weights) == ["mnrl"] and not only_mnrl.needs_margins


def test_in_batch_negatives_with_hard_negatives_use_them_as_extra_columns():
    torch.manual_seed(3)
    q, p, n = (torch.randn(3, 8) for _ in range(3))
    with_negatives = loss_from("loss=mnrl", "loss.mnrl.hard_negatives=true", "loss.mnrl.exclude_described=false")
    assert with_negatives.needs_negatives
    got = with_negatives(StudentBatch(["a", "b", "c"], ["x", "y", "z"], q, p, n))[0]
    documents = torch.stack([p, n], dim=1).flatten(0, 1)  # p0, n0, p1, n1, ...
    assert got.item() == pytest.approx(naive_in_batch_loss(q, documents, 20.0, 2).item(), rel=1e-5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.mnrl.weight=-1", "loss.mnrl.weight must be >= 0"),
        ("loss.mnrl._target_=torch.nn.Identity", "is not a LossComponent"),
        ("loss.mnrl._target_=melscribe_torch.losses.NoSuchLoss", "loss.mnrl"),
        ("loss.mnrl.weight=0", "no component with a weight > 0"),
    ],
)
def test_a_bad_loss_config_is_one_clear_error(override, message):
    with pytest.raises(ValueError, match=message):
        loss_from("loss=mnrl", override)


def test_denoised_hard_negatives_drop_those_the_teacher_ranks_above_the_positive():
    torch.manual_seed(4)
    q, p, n = (torch.randn(3, 8) for _ in range(3))
    n[1] = q[1]  # request 1's mined negative is its nearest document: the student would be pushed off it
    denoised = loss_from("loss=margin_mse+mnrl", "loss.margin_mse.weight=0", "loss.mnrl.hard_negatives=true",
                         "loss.mnrl.denoise_margin=0", "loss.mnrl.exclude_described=false")
    assert denoised.needs_margins and denoised.needs_negatives  # the teacher is trained for it
    margins = torch.tensor([1.5, -0.5, 0.0])  # request 1's mined negative outranks its positive
    got = denoised(StudentBatch(["a", "b", "c"], ["x", "y", "z"], q, p, n, margins))[0]
    documents = torch.stack([p, n], dim=1).flatten(0, 1)  # p0, n0, p1, n1, p2, n2
    scores = 20.0 * F.normalize(q, dim=-1) @ F.normalize(documents, dim=-1).T
    scores[1, 3] = float("-inf")  # only request 1's own negative; it stays a negative of requests 0 and 2
    expected = F.cross_entropy(scores, torch.tensor([0, 2, 4]))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    kept = loss_from("loss=mnrl", "loss.mnrl.hard_negatives=true", "loss.mnrl.exclude_described=false")
    assert kept(StudentBatch(["a", "b", "c"], ["x", "y", "z"], q, p, n))[0].item() != pytest.approx(got.item())
    with pytest.raises(ValueError, match="set loss.mnrl.hard_negatives=true"):
        loss_from("loss=margin_mse+mnrl", "loss.mnrl.denoise_margin=0")
