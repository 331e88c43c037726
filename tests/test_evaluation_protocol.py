import pytest
import torch

from melscribe_torch.data import RetrievalSet, paper_test_set
from melscribe_torch.evaluation import (
    count_empty_set_requests,
    evaluate_over_seeds,
    evaluate_retrieval_set,
)
from melscribe_torch.retrieval import DenseRetriever, TfidfRetriever

KEYWORDS = ["piano", "rock", "jazz", "drums"]


class KeywordEncoder:
    """One-hot 'keyword' embeddings, so rankings can be worked out by hand."""

    def encode(self, texts, **_):
        return torch.tensor([[float(w in t) for w in KEYWORDS] for t in texts])


def test_dense_retriever_with_keyword_embeddings():
    rs = RetrievalSet(
        queries={"q1": "soft piano please", "q2": "loud rock with drums", "q3": "some jazz"},
        corpus={"d0": "piano", "d1": "rock, drums", "d2": "jazz", "d3": "drums"},
        qrels={"q1": {"d0"}, "q2": {"d1"}, "q3": {"d3"}},
    )
    m = evaluate_retrieval_set(DenseRetriever(KeywordEncoder(), "kw"), rs, k_values=[1])
    assert m["recall@1"] == 2 / 3 and m["mrr@1"] == 2 / 3


def test_tfidf_reproduces_table1_on_mc(data_root):
    """The paper reports 89.4 ± 0.4 (MC) and 77.7 ± 0.5 (MC_reco) with its protocol."""
    for name, paper in [("mc", 0.894), ("mc_reco", 0.777)]:
        result = evaluate_over_seeds(
            TfidfRetriever(), paper_test_set(name, data_root), seeds=[0, 1, 2], k_values=[10]
        )
        recall = result["metrics"]["recall@10"]
        assert abs(recall["mean"] - paper) <= 0.01, (name, recall)
        assert len(recall["per_seed"]) == 3 and min(result["num_requests"]) > 2300
        # Rephrased requests name fewer descriptors: more of them get only the empty set.
        assert result["num_empty_set_requests"] == {"mc": [3] * 3, "mc_reco": [84] * 3}[name]


def test_requests_whose_only_relevant_set_is_empty_are_counted():
    rs = RetrievalSet(
        queries={"q1": "soft piano", "q2": "something to relax to, maybe piano", "q3": "calm jazz"},
        corpus={"d0": "piano", "d1": "", "d2": "jazz"},
        qrels={"q1": {"d0"}, "q2": {"d1"}, "q3": {"d2", "d1"}},
    )
    assert count_empty_set_requests(rs) == 1  # q3 also has a set it can be found by
    # Keywords find q1's set and one of q3's two; q2's "piano" points away from the empty text.
    m = evaluate_retrieval_set(DenseRetriever(KeywordEncoder(), "kw"), rs, k_values=[1])
    assert m["recall@1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["nonempty_recall@1"] == pytest.approx((1 + 0.5) / 2)  # q1 and q3 only
