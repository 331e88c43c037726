"""The exponential moving average of the weights, on its own and inside the training loop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from melscribe_torch.models import BiEncoder
from melscribe_torch.training import set_dropout
from melscribe_torch.training.weight_average import WeightAverage
from training_fixtures import train_briefly

EXAMPLES = [
    (f"i want {a} {b} music", f"{a}, {b}", f"{c}, slow tempo", 1.0)
    for a, b, c in [
        ("rock", "guitar", "jazz"),
        ("pop", "female vocal", "bass"),
        ("jazz", "piano", "rock"),
        ("calm", "acoustic", "loud"),
        ("happy", "upbeat", "sad"),
        ("electronic", "beat", "piano"),
    ]
]


def linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(value)
    return layer


def test_the_average_follows_the_weights_with_a_warmed_up_decay():
    layer = linear(0.0)
    average = WeightAverage(layer, decay=0.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average.update(layer)  # first update: decay min(0.5, 1/10) = 0.1, so 0.9 of the new weights
    assert average.average["weight"] == pytest.approx(torch.full((1, 2), 0.9))
    with torch.no_grad():
        layer.weight.fill_(3.0)
    average.update(layer)  # decay min(0.5, 2/11) = 2/11
    expected = 0.9 + (1 - 2 / 11) * (3.0 - 0.9)
    assert average.average["weight"] == pytest.approx(torch.full((1, 2), expected))
    assert layer.weight.eq(3.0).all()  # the training weights never see the average


def test_swapped_in_lends_the_average_and_gives_the_training_weights_back():
    layer = linear(1.0)
    average = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.fill_(5.0)
    with average.swapped_in(layer) as averaged:
        assert averaged(torch.ones(1, 2)).item() == pytest.approx(2.0)
    assert layer.weight.eq(5.0).all()
    with pytest.raises(RuntimeError), average.swapped_in(layer):
        raise RuntimeError("a failed validation")
    assert layer.weight.eq(5.0).all()  # given back on errors too


def test_state_dict_round_trip_and_a_mismatched_average():
    layer = linear(2.0)
    average = WeightAverage(layer, decay=0.9)
    average.update(layer)
    restored = WeightAverage(linear(0.0), decay=0.9)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 1 and restored.average["weight"].eq(2.0).all()
    with pytest.raises(KeyError, match="lacks 1 tensor"):
        WeightAverage(nn.Linear(2, 1), 0.9).load_state_dict(average.state_dict())
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(layer, decay=1.0)


@pytest.fixture
def model(tiny_model_dir):
    model = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    set_dropout(model, 0.0)
    return model


def train(model, **kwargs):
    return train_briefly(model, EXAMPLES, **kwargs)


def first_weight(model) -> torch.Tensor:
    return next(model.parameters()).detach().clone()


def test_validation_scores_both_and_best_dir_holds_the_average_when_selected(model, tmp_path):
    seen = []  # the first weight tensor each validation call saw

    def validate(m):
        seen.append(first_weight(m))
        return {"valid_recall@10": float(len(seen))}

    summary = train(
        model,
        steps=2,
        validate=validate,
        eval_every=1,
        ema_decay=0.9,
        select_metric="ema_valid_recall@10",
        best_dir=tmp_path / "best",
    )
    assert set(summary["last_metrics"]) == {"valid_recall@10", "ema_valid_recall@10"}
    assert len(seen) == 4  # training weights, then the average, at steps 1 and 2
    assert not torch.equal(seen[2], seen[3])  # the average is not the training weights
    # The model ends holding the average, which is also what best/ saved at its last pass.
    torch.testing.assert_close(first_weight(model), seen[3])
    saved = BiEncoder.from_pretrained(str(tmp_path / "best"), device="cpu")
    torch.testing.assert_close(first_weight(saved), seen[3])


def test_the_training_weights_do_not_depend_on_the_average(model):
    plain, averaged = copy.deepcopy(model), copy.deepcopy(model)
    train(plain)
    train(averaged, ema_decay=0.99, validate=lambda m: 0.5, eval_every=2)
    torch.testing.assert_close(averaged.state_dict(), plain.state_dict(), rtol=0, atol=0)


def test_resume_restores_the_average(model, tmp_path):
    uninterrupted = copy.deepcopy(model)
    train(uninterrupted, steps=4, ema_decay=0.5, select_metric="ema_valid_recall@10", validate=lambda m: 0.5)
    interrupted = copy.deepcopy(model)
    args = {"ema_decay": 0.5, "select_metric": "ema_valid_recall@10", "validate": lambda m: 0.5}
    train(interrupted, steps=4, stop_after=2, checkpoint_path=tmp_path / "checkpoint.pt", **args)
    fresh = copy.deepcopy(model)
    train(fresh, steps=4, checkpoint_path=tmp_path / "checkpoint.pt", **args)
    torch.testing.assert_close(fresh.state_dict(), uninterrupted.state_dict(), rtol=0, atol=0)


def test_an_average_metric_without_an_average_is_a_clear_error(model):
    with pytest.raises(ValueError, match="set train.ema_decay"):
        train(model, steps=1, validate=lambda m: 0.5, select_metric="ema_valid_recall@10")
