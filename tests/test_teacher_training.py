"""Teacher training loop and its metrics, on the tiny model."""

import logging

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from melscribe_torch.models import CrossEncoder
from melscribe_torch.teacher import (
    ListwiseSoftmax,
    PointwiseBCE,
    binary_metrics,
    constant_score_losses,
    evaluate_cross_encoder,
    evaluate_groups,
    group_ranking_metrics,
    listwise_softmax_loss,
    lr_at,
    train_cross_encoder,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_examples():
    """Separable by the document alone: relevant descriptor sets say "happy", the others "sad"."""
    requests = ["play rock music", "calm piano", "something like jazz", "upbeat pop"]
    return [
        (request, f"{mood}, {extra}", label)
        for request in requests
        for mood, label in (("happy", 1.0), ("sad", 0.0))
        for extra in ("guitar", "drums", "bass")
    ]


def toy_groups(group_size=4):
    """The same toy task as groups: the "happy" set first, then "sad" ones."""
    requests = ["play rock music", "calm piano", "something like jazz", "upbeat pop"]
    extras = ["guitar", "drums", "bass", "piano", "strings"]
    return [
        (request, [f"happy, {extra}"] + [f"sad, {other}" for other in extras if other != extra][: group_size - 1])
        for request in requests
        for extra in extras
    ]


def test_loss_falls_on_a_separable_toy_set(teacher):
    examples = toy_examples()
    before = evaluate_cross_encoder(teacher, examples)
    metrics = train_cross_encoder(
        teacher,
        examples,
        examples,
        loss_fn=PointwiseBCE(),
        valid_groups=toy_groups(),
        steps=40,  # the new head reads the pooler's tanh: slower to start than a bare Linear
        batch_size=8,
        lr=1e-2,
        warmup_steps=3,
        precision="bf16",
        seed=0,
    )
    assert metrics["loss"] < 0.5 * before["loss"] and metrics["accuracy"] == 1.0
    assert metrics["auc"] > before["auc"] and metrics["auc"] > 0.9
    assert metrics["steps"] == 40 and metrics["examples_per_s"] > 0
    assert metrics["group_mrr"] == 1.0 and metrics["group_accuracy@1"] == 1.0
    assert not teacher.training


def test_listwise_loss_falls_and_ranks_the_positive_first(teacher):
    groups = toy_groups(group_size=4)
    before = evaluate_groups(teacher, groups)
    metrics = train_cross_encoder(
        teacher,
        groups,
        toy_examples(),
        loss_fn=ListwiseSoftmax(group_size=4),
        valid_groups=groups,
        steps=30,
        batch_size=8,  # pairs: two groups of four per step
        lr=1e-2,
        warmup_steps=3,
        precision="bf16",
        seed=0,
    )
    assert metrics["group_loss"] < 0.5 * before["group_loss"]
    assert metrics["group_mrr"] == 1.0 > before["group_mrr"]
    assert metrics["auc"] > 0.9  # the pointwise held-out metrics are reported for this loss too
    assert metrics["examples_per_s"] > 0 and not teacher.training


def test_listwise_batch_must_hold_whole_groups(teacher):
    with pytest.raises(ValueError, match="multiple of teacher.group_size"):
        train_cross_encoder(
            teacher, toy_groups(4), toy_examples(), loss_fn=ListwiseSoftmax(4), valid_groups=toy_groups(4),
            steps=1, batch_size=6, lr=1e-3, warmup_steps=1, precision="fp32", seed=0,
        )


def test_training_is_deterministic_for_a_seed(tiny_model_dir):
    examples = toy_examples()
    results = []
    for _ in range(2):
        torch.manual_seed(5)
        model = CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
        train_cross_encoder(
            model, examples, examples[:4], loss_fn=PointwiseBCE(), valid_groups=toy_groups()[:2],
            steps=3, batch_size=4, lr=2e-5, warmup_steps=100, precision="fp32", seed=1,
        )
        results.append(model.predict([(q, d) for q, d, _ in examples]))
    torch.testing.assert_close(results[0], results[1])


def test_fp16_on_cpu_is_refused(teacher):
    with pytest.raises(ValueError, match="fp16"):
        train_cross_encoder(
            teacher, toy_examples(), toy_examples(), loss_fn=PointwiseBCE(), valid_groups=toy_groups(),
            steps=1, batch_size=8, lr=2e-5, warmup_steps=1, precision="fp16", seed=0,
        )


def test_schedule_warms_up_then_decays_to_zero():
    rates = [lr_at(step, 1.0, warmup_steps=4, total_steps=10) for step in range(10)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert rates[4:] == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(-3, 4, size=200).astype(float)  # many ties
    labels = rng.integers(0, 2, size=200)
    accuracy, auc = binary_metrics(torch.tensor(scores), torch.tensor(labels))
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    assert accuracy == pytest.approx(np.mean((scores > 0) == (labels == 1)))


def test_group_ranking_metrics_by_hand():
    scores = [
        [3.0, 1.0, 2.0],  # positive first: rank 1
        [1.0, 2.0, 0.0],  # one negative above: rank 2
        [1.0, 1.0, 1.0],  # ties count against the positive: rank 3
    ]
    mrr, accuracy_at_1 = group_ranking_metrics(torch.tensor(scores))
    assert mrr == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert accuracy_at_1 == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_ranking_metrics([[1.0], [2.0]])


def test_binary_metrics_by_hand():
    assert binary_metrics([2.0, 1.0, -1.0], [1, 0, 0]) == (pytest.approx(2 / 3), 1.0)
    assert binary_metrics([0.5, 0.5], [1, 0])[1] == 0.5
    assert np.isnan(binary_metrics([1.0, 2.0], [1, 1])[1])


def test_default_config_names_a_known_backbone():
    from omegaconf import OmegaConf

    from melscribe_torch.conf import CONF_DIR as conf_dir
    cfg = OmegaConf.load(conf_dir / "teacher" / "default.yaml")
    assert (conf_dir / "model" / f"{cfg.model}.yaml").is_file()
    assert cfg.steps > 0 and cfg.warmup_steps <= cfg.steps and 0 < cfg.valid_fraction < 1
    assert cfg.loss == "bce"  # the listwise loss is an option; existing runs keep their teacher
    assert cfg.batch_size % cfg.group_size == 0  # so loss=listwise runs with the same batch


def test_the_mpnet_teacher_preset_changes_the_backbone_and_its_learning_rate_only():
    from training_fixtures import compose_train

    default = compose_train(["data.root=unused"]).teacher
    mpnet = compose_train(["data.root=unused", "teacher=mpnet-base"]).teacher
    assert (mpnet.model, mpnet.lr) == ("mpnet-base", 2e-5) != (default.model, default.lr)
    assert {key: value for key, value in mpnet.items() if key not in ("model", "lr")} == {
        key: value for key, value in default.items() if key not in ("model", "lr")
    }


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_training_on_cuda_uses_the_grad_scaler(teacher):
    examples = toy_examples()
    metrics = train_cross_encoder(
        teacher,
        examples,
        examples,
        loss_fn=PointwiseBCE(),
        valid_groups=toy_groups(),
        steps=30,
        batch_size=8,
        lr=1e-2,
        warmup_steps=3,
        precision="fp16",
        seed=0,
        device="cuda",
    )
    assert metrics["accuracy"] == 1.0 and teacher.device.type == "cuda"


def test_a_constant_scorer_reaches_the_constant_score_losses():
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0] * 5)  # a 25% positive rate, as the BCE teacher's pairs
    best_constant_logit = torch.full((20,), float(np.log(0.25 / 0.75)))
    expected = constant_score_losses(labels, group_size=8)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(best_constant_logit, labels)
    assert expected["constant_loss"] == pytest.approx(bce.item(), abs=1e-6)
    assert expected["constant_loss"] == pytest.approx(0.5623, abs=1e-4)
    assert expected["constant_group_loss"] == pytest.approx(listwise_softmax_loss(torch.zeros(3, 8)).item())


def test_a_teacher_that_learned_nothing_is_named_in_a_warning(teacher, caplog):
    examples = toy_examples()
    kwargs = {
        "loss_fn": PointwiseBCE(), "valid_groups": toy_groups(), "steps": 3, "batch_size": 8,
        "warmup_steps": 1, "precision": "fp32", "seed": 0,
    }
    with caplog.at_level(logging.WARNING, logger="melscribe_torch.teacher.training"):
        metrics = train_cross_encoder(teacher, examples, examples, lr=0.0, **kwargs)
    assert metrics["loss"] > 0.95 * metrics["constant_loss"] == pytest.approx(0.95 * np.log(2))
    assert len(caplog.records) == 1 and "learned next to nothing" in caplog.text
    assert "teacher.lr below 0" in caplog.text and "teacher.steps than 3" in caplog.text


def test_a_teacher_that_learned_is_not_warned_about(teacher, caplog):
    with caplog.at_level(logging.WARNING, logger="melscribe_torch.teacher.training"):
        metrics = train_cross_encoder(
            teacher, toy_groups(4), toy_examples(), loss_fn=ListwiseSoftmax(group_size=4),
            valid_groups=toy_groups(4), steps=30, batch_size=8, lr=1e-2, warmup_steps=3,
            precision="bf16", seed=0,
        )
    assert metrics["group_loss"] < 0.95 * metrics["constant_group_loss"] == pytest.approx(
        0.95 * np.log(4)
    )
    assert not caplog.records
