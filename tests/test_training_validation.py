"""Validation Recall@10 during training: caption sets, request-like sets and their mean."""

import pytest

from melscribe_torch.data.sampling import RetrievalSet
from melscribe_torch.models import BiEncoder
from melscribe_torch.training import validation_metrics, validation_recall


CORPUS = {"d0": "rock, electric guitar", "d1": "piano, calm", "d2": "techno, upbeat"}


def retrieval_set(requests, relevant=("d0", "d1", "d2")):
    return RetrievalSet(
        queries={f"q{i}": text for i, text in enumerate(requests)},
        corpus=CORPUS,
        qrels={f"q{i}": {doc_id} for i, doc_id in enumerate(relevant)},
    )


ENCODE = {"batch_size": 8, "precision": "fp32"}  # the pipeline passes train.encode_batch_size, train.precision


@pytest.fixture
def model(tiny_model_dir):
    return BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu").eval()


def test_a_request_that_is_its_document_text_ranks_it_first(model):
    # Identical texts embed identically, so cosine ranks each request's own text first, even
    # with random weights; relevance judgements pointing elsewhere then score nothing.
    texts = list(CORPUS.values())
    assert validation_recall(model, [retrieval_set(texts)], k=1, **ENCODE) == pytest.approx(1.0)
    shifted = retrieval_set(texts, relevant=("d1", "d2", "d0"))
    assert validation_recall(model, [shifted], k=1, **ENCODE) == pytest.approx(0.0)


def test_request_like_sets_add_their_recall_and_the_mean(model):
    captions = [retrieval_set(["loud rock guitar", "a calm piano piece", "upbeat techno"])]
    requests = [retrieval_set(["find me rock", "I need piano", "any techno?"])]
    only_captions = validation_metrics(model, captions, k=1, **ENCODE)
    assert set(only_captions) == {"valid_recall@1"}
    both = validation_metrics(model, captions, requests, k=1, **ENCODE)
    assert both["valid_recall@1"] == only_captions["valid_recall@1"]
    assert both["valid_request_recall@1"] == validation_recall(model, requests, k=1, **ENCODE)
    assert both["valid_mean_recall@1"] == pytest.approx(
        (both["valid_recall@1"] + both["valid_request_recall@1"]) / 2
    )


def test_no_validation_set_is_a_clear_error(model):
    with pytest.raises(ValueError, match="valid_fraction"):
        validation_metrics(model, [], **ENCODE)
