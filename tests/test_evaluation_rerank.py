"""The rerank cascade: a first stage's top candidates reordered by a cross-encoder."""

import pytest
import torch

from melscribe_torch.evaluation import build_retriever
from melscribe_torch.evaluation.retrievers import parse_rerank_name
from melscribe_torch.models import CrossEncoder
from melscribe_torch.retrieval import TfidfRetriever
from melscribe_torch.retrieval.rerank import RerankRetriever, rerank_top

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CORPUS = [
    "rock, guitar, drums",
    "soft piano, calm",
    "jazz, bass, drums",
    "happy pop, female vocal",
    "sad piano, slow tempo",
    "electronic beat, fast tempo",
]
QUERIES = ["calm piano music", "fast electronic beat with drums"]


class LengthScorer:
    """A stand-in cross-encoder: the longer the document, the higher its logit."""

    def __init__(self):
        self.pairs = []

    def predict(self, pairs, *, batch_size=64, precision="fp32"):
        self.pairs += list(pairs)
        return torch.tensor([float(len(document)) for _, document in pairs])


def test_rerank_top_reorders_only_the_first_depth_candidates():
    candidates = torch.tensor([[0, 1, 2, 3, 4]])
    scorer = LengthScorer()
    scores, indices = rerank_top(scorer, ["q"], CORPUS, candidates, depth=3)
    # lengths: 0 -> 19, 1 -> 16, 2 -> 17; then 3 and 4 in the first stage's order
    assert indices.tolist() == [[0, 2, 1, 3, 4]]
    assert scores[0, :3].tolist() == [19.0, 17.0, 16.0]
    assert scores[0, 2] > scores[0, 3] > scores[0, 4]  # the tail stays below, in order
    assert [document for _, document in scorer.pairs] == CORPUS[:3]  # only the depth is read


def test_rerank_top_keeps_padding_last_and_checks_its_input():
    scores, indices = rerank_top(LengthScorer(), ["q"], CORPUS, torch.tensor([[1, -1, 0]]), depth=3)
    assert indices.tolist() == [[0, 1, -1]] and scores[0, 2] == float("-inf")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        rerank_top(LengthScorer(), ["q"], CORPUS, torch.tensor([[0]]), depth=0)
    with pytest.raises(ValueError, match="2 requests but 1 candidate rows"):
        rerank_top(LengthScorer(), ["q", "r"], CORPUS, torch.tensor([[0]]), depth=1)


def test_rerank_retriever_on_a_tiny_cross_encoder(tiny_model_dir):
    torch.manual_seed(0)
    cross_encoder = CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    first = TfidfRetriever()
    _, first_indices = first.search(QUERIES, CORPUS, 5)
    retriever = RerankRetriever(cross_encoder, first, depth=4, name="rerank")
    scores, indices = retriever.search(QUERIES, CORPUS, 5)
    assert indices.shape == (2, 5)
    for row, query in enumerate(QUERIES):
        head = first_indices[row, :4].tolist()
        assert sorted(indices[row, :4].tolist()) == sorted(head)  # the same four, reordered
        logits = cross_encoder.predict([(query, CORPUS[i]) for i in head])
        assert indices[row, :4].tolist() == [head[i] for i in logits.argsort(descending=True)]
        torch.testing.assert_close(scores[row, :4], logits.sort(descending=True).values)
        assert indices[row, 4] == first_indices[row, 4]  # past the depth: the first stage's
    top2, _ = retriever.search(QUERIES, CORPUS, 2)
    assert top2.shape == (2, 2)


def test_build_retriever_reads_the_cascade_name(tiny_model_dir):
    encode = {"score": "cos", "batch_size": 8, "precision": "fp32"}  # the evaluate config's score, encode.*
    name = f"rerank:{tiny_model_dir}@tfidf"
    retriever, source = build_retriever(name, {}, **encode, rerank={"depth": 3})
    assert isinstance(retriever, RerankRetriever) and retriever.depth == 3
    assert isinstance(retriever.first_stage, TfidfRetriever)
    assert source == f"{tiny_model_dir} over tfidf"
    with pytest.raises(ValueError, match="set rerank.depth"):
        build_retriever(name, {}, **encode)


@pytest.mark.parametrize("name", ["rerank:only-a-model", "rerank:@tfidf", "rerank:ce@"])
def test_a_malformed_cascade_name_says_how_to_write_it(name):
    with pytest.raises(ValueError, match="rerank:<cross-encoder dir>@<first-stage retriever>"):
        parse_rerank_name(name)
