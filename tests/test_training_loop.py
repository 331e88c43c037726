"""The bi-encoder loop: schedule, batch order, gradient accumulation, exact resume, checkpoint errors."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from melscribe_torch.data.sampling import RetrievalSet
from melscribe_torch.models import BiEncoder
from melscribe_torch.losses import StudentBatch
from melscribe_torch.training import (
    CheckpointError,
    batch_indices,
    known_positive_texts,
    load_checkpoint,
    lr_at,
    set_dropout,
    warmup_for,
)
from training_fixtures import loss_from, train_briefly

EXAMPLES = [
    (f"i want {a} {b} music", f"{a}, {b}", f"{c}, slow tempo", m)
    for a, b, c, m in [
        ("rock", "guitar", "jazz", 2.0),
        ("pop", "female vocal", "bass", 1.5),
        ("jazz", "piano", "rock", 3.0),
        ("calm", "acoustic", "loud", 0.5),
        ("happy", "upbeat", "sad", 1.0),
        ("electronic", "beat", "piano", 2.5),
        ("sad", "strings", "happy", 0.7),
        ("energetic", "drums", "calm", 1.2),
    ]
]


@pytest.fixture
def model(tiny_model_dir):
    model = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    set_dropout(model, 0.0)  # runs compare exactly
    return model


def train(model, **kwargs):
    return train_briefly(model, EXAMPLES, **kwargs)


def test_lr_warms_up_linearly_then_decays_to_zero():
    assert [lr_at(s, 1.0, 4, 10) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(7, 1.0, 4, 10) == pytest.approx(0.5)
    assert lr_at(10, 1.0, 4, 10) == 0.0
    assert (
        warmup_for(1000, 100, 0.1) == 10
        and warmup_for(1000, 100_000, 0.1) == 1000
        and warmup_for(5, 3, 0.1) == 1
    )


def test_batch_order_is_a_pure_function_of_seed_and_position_and_shards_ranks():
    assert batch_indices(5, 8, 2, seed=3) == batch_indices(5, 8, 2, seed=3)
    epoch = [i for m in range(4) for i in batch_indices(m, 8, 2, seed=3)]
    assert sorted(epoch) == list(range(8))  # one epoch sees every example once
    ranks = [set(batch_indices(0, 8, 2, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert not ranks[0] & ranks[1]
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(0, 3, 4, seed=0)


def test_two_accumulated_half_batches_equal_one_full_batch(model):
    full, accumulated = copy.deepcopy(model), copy.deepcopy(model)
    train(full, steps=1, batch_size=4, grad_accum=1)
    train(accumulated, steps=1, batch_size=2, grad_accum=2)
    torch.testing.assert_close(accumulated.state_dict(), full.state_dict())
    assert not torch.equal(
        full.state_dict()["backbone.embeddings.word_embeddings.weight"],
        model.state_dict()["backbone.embeddings.word_embeddings.weight"],
    )


def test_resume_equals_an_uninterrupted_run(model, tmp_path):
    uninterrupted, resumed = copy.deepcopy(model), copy.deepcopy(model)
    train(uninterrupted, steps=5)
    first = train(resumed, steps=5, stop_after=2, checkpoint_path=tmp_path / "checkpoint.pt")
    assert first["step"] == 2
    fresh = copy.deepcopy(model)  # a new process: the initial weights, then the checkpoint
    summary = train(fresh, steps=5, checkpoint_path=tmp_path / "checkpoint.pt")
    assert summary["step"] == 5 and summary["resumed_from"]
    torch.testing.assert_close(fresh.state_dict(), uninterrupted.state_dict(), rtol=0, atol=0)


def test_best_dir_follows_the_selected_one_of_several_validation_metrics(model, tmp_path):
    # Caption recall falls after step 1, request recall rises: best/ follows the one selected.
    scores = iter(
        {"valid_recall@10": 0.9 - 0.1 * i, "valid_request_recall@10": 0.5 + 0.1 * i}
        for i in range(4)
    )
    summary = train(
        model,
        steps=4,
        validate=lambda m: next(scores),
        select_metric="valid_request_recall@10",
        eval_every=1,
        metrics_path=tmp_path / "metrics.jsonl",
    )
    assert summary["best_metric"] == pytest.approx(0.8)  # the last pass, not the first
    assert summary["last_metrics"] == {
        "valid_recall@10": pytest.approx(0.6),
        "valid_request_recall@10": pytest.approx(0.8),
    }
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    captions = [r["valid_recall@10"] for r in rows if "valid_recall@10" in r]
    assert captions == pytest.approx([0.9, 0.8, 0.7, 0.6])


def test_a_selected_metric_that_validation_does_not_give_is_a_clear_error(model):
    with pytest.raises(ValueError, match="'valid_mean_recall@10'.*valid: valid_recall@10"):
        train(model, steps=1, validate=lambda m: 0.5, select_metric="valid_mean_recall@10")


def test_mnrl_and_combined_losses_train(model):
    for loss_fn in (
        loss_from("loss=mnrl", "loss.mnrl.hard_negatives=true"),
        loss_from("loss=margin_mse+mnrl", "loss.margin_mse.similarity=cos"),
        loss_from("loss=margin_kl+mnrl"),
    ):
        assert train(copy.deepcopy(model), steps=1, loss_fn=loss_fn)["train_loss"] > 0


def test_in_batch_only_loss_never_encodes_the_negatives(model):
    loss_fn = loss_from("loss=mnrl")
    assert not loss_fn.needs_negatives and not loss_fn.needs_margins
    forwards = []
    model.register_forward_pre_hook(lambda *_: forwards.append(1))
    no_margins = [(*example[:3], None) for example in EXAMPLES]  # as a run without a teacher has
    assert train_briefly(model, no_margins, loss_fn, steps=1)["train_loss"] > 0
    assert len(forwards) == 2  # requests and positives only
    batch = StudentBatch(["rock", "jazz"], ["rock", "jazz"], torch.randn(2, 8), torch.randn(2, 8))
    assert loss_fn(batch)[0] > 0
    with pytest.raises(ValueError, match="negatives"):
        loss_from("loss=margin_mse+mnrl")(batch)
    with pytest.raises(ValueError, match="margins"):
        train_briefly(model, no_margins, loss_from("loss=margin_mse"), steps=1)


def test_dropout_zero_silences_hidden_and_attention_dropout(tiny_model_dir):
    model = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu").train()
    tokens = model.tokenize(["calm acoustic guitar for a rainy evening"] * 2)
    assert not torch.equal(model(**tokens), model(**tokens))  # the backbone's own 0.1
    set_dropout(model, 0.0)
    assert model.backbone.config.attention_probs_dropout_prob > 0  # only the modules change
    assert torch.equal(model(**tokens), model(**tokens))
    with pytest.raises(ValueError, match="dropout"):
        set_dropout(model, 1.0)


def test_training_sets_the_configured_dropout(tiny_model_dir):
    model = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    train(model, steps=1, dropout=0.25)
    probabilities = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert probabilities == {0.25}


def test_known_positives_are_keyed_by_request_text_and_united_across_requests():
    pairs = RetrievalSet(
        queries={"a_1": "no voices", "b_1": "no voices", "c_1": "rock"},
        corpus={"d1": "no voice", "d2": "instrumental", "d3": "rock"},
        qrels={"a_1": {"d1"}, "b_1": {"d2"}, "c_1": {"d3"}},
    )
    assert known_positive_texts(pairs) == {
        "no voices": frozenset({"no voice", "instrumental"}),
        "rock": frozenset({"rock"}),
    }


def test_excluding_known_positives_changes_the_update_only_where_a_batch_holds_one(model):
    plain = loss_from("loss=mnrl", "loss.mnrl.exclude_described=false")
    loss_fn = loss_from(
        "loss=mnrl", "loss.mnrl.exclude_described=false", "loss.mnrl.exclude_known_positives=true"
    )
    assert loss_fn.needs_known_positives and not plain.needs_known_positives
    with pytest.raises(ValueError, match="known_positives"):
        train(copy.deepcopy(model), steps=1, loss_fn=loss_fn)
    runs = {}
    for name, fn, known in [
        ("plain", plain, None),
        ("none_shared", loss_fn, {e[0]: {e[1]} for e in EXAMPLES}),
        ("shared", loss_fn, {e[0]: {x[1] for x in EXAMPLES} for e in EXAMPLES}),
    ]:
        runs[name] = copy.deepcopy(model)
        train(runs[name], steps=1, loss_fn=fn, known_positives=known, weight_decay=0.0)
    torch.testing.assert_close(runs["none_shared"].state_dict(), runs["plain"].state_dict())
    assert not torch.equal(
        runs["plain"].state_dict()["backbone.embeddings.word_embeddings.weight"],
        model.state_dict()["backbone.embeddings.word_embeddings.weight"],
    )
    # Every in-batch document is a known positive: nothing is left to push away, no update.
    torch.testing.assert_close(runs["shared"].state_dict(), model.state_dict(), rtol=0, atol=0)


def test_positives_a_request_describes_are_not_its_in_batch_negatives(model):
    def mask(loss_fn, requests, positives):
        q = torch.zeros(len(requests), 4)
        return loss_fn.components["mnrl"].exclusions(StudentBatch(requests, positives, q, q))

    plain_fn = loss_from("loss=mnrl", "loss.mnrl.exclude_described=false")
    assert mask(plain_fn, ["rock"], ["rock"]) is None
    loss_fn = loss_from("loss=mnrl")  # the default excludes them
    got = mask(loss_fn, ["rock with no voices", "loud rock guitar"], ["no voices", "rock"])
    assert got.tolist() == [[True, True], [False, True]]  # the loss ignores the diagonal (its target)
    # No request of EXAMPLES names another's positive: the update is plain in-batch negatives'.
    plain, described = copy.deepcopy(model), copy.deepcopy(model)
    train(plain, steps=1, loss_fn=plain_fn, weight_decay=0.0)
    train(described, steps=1, loss_fn=loss_fn, weight_decay=0.0)
    torch.testing.assert_close(described.state_dict(), plain.state_dict())
    # Every request names every positive: nothing is left to push away, no update.
    everything = "i want " + " ".join(e[1] for e in EXAMPLES)
    named = [(everything, p, n, m) for _, p, n, m in EXAMPLES]
    all_described = copy.deepcopy(model)
    train_briefly(all_described, named, steps=1, loss_fn=loss_fn, weight_decay=0.0)
    torch.testing.assert_close(all_described.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_corrupt_or_foreign_checkpoint_is_a_clear_error(model, tmp_path):
    train(copy.deepcopy(model), steps=1, checkpoint_path=tmp_path / "checkpoint.pt")
    data = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "truncated.pt", model)
    other = torch.nn.Linear(3, 3)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_checkpoint(tmp_path / "checkpoint.pt", other)


def test_empty_training_data_is_a_clear_error(model):
    with pytest.raises(ValueError, match="empty"):
        train_briefly(model, [], steps=1, batch_size=1)
