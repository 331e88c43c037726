"""Validation Recall@10 during training: caption sets, request-like sets and their mean."""

import pytest

from melscribe_torch.data.sampling import RetrievalSet
from melscribe_torch.models import BiEncoder
from melscribe_torch.training import validation_metrics, validation_recall


def retrieval_set(requests):
    corpus = {"d0": "rock, electric guitar", "d1": "piano, calm", "d2": "techno, upbeat"}
    return RetrievalSet(
        queries={f"q{i}": text for i, text in enumerate(requests)},
        corpus=corpus,
        qrels={f"q{i}": {f"d{i}"} for i in range(len(requests))},
    )


@pytest.fixture
def model(tiny_model_dir):
    return BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu").eval()


def test_every_document_in_the_top_ten_is_full_recall(model):
    # Three documents and k = 10: each request's one relevant set is always retrieved.
    captions = [retrieval_set(["loud rock guitar", "a calm piano piece", "upbeat techno"])]
    assert validation_recall(model, captions, k=10) == pytest.approx(1.0)


def test_request_like_sets_add_their_recall_and_the_mean(model):
    captions = [retrieval_set(["loud rock guitar", "a calm piano piece", "upbeat techno"])]
    requests = [retrieval_set(["find me rock", "I need piano", "any techno?"])]
    only_captions = validation_metrics(model, captions, k=1)
    assert set(only_captions) == {"valid_recall@1"}
    both = validation_metrics(model, captions, requests, k=1)
    assert both["valid_recall@1"] == only_captions["valid_recall@1"]
    assert both["valid_request_recall@1"] == validation_recall(model, requests, k=1)
    assert both["valid_mean_recall@1"] == pytest.approx(
        (both["valid_recall@1"] + both["valid_request_recall@1"]) / 2
    )


def test_no_validation_set_is_a_clear_error(model):
    with pytest.raises(ValueError, match="valid_fraction"):
        validation_metrics(model, [])
