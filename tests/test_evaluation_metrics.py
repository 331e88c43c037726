import math

import pytest

from melscribe_torch.evaluation import ranking_metrics


def test_hand_worked_rankings():
    rankings = [["a", "b", "c"], ["x", "y", "z"], ["p", "q", "r"]]
    relevant = [{"a"}, {"y", "z"}, {"nope"}]
    m = ranking_metrics(rankings, relevant, k_values=[1, 3])
    assert m["accuracy@1"] == pytest.approx(1 / 3)
    assert m["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["precision@3"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    idcg2 = 1 + 1 / math.log2(3)
    assert m["ndcg@3"] == pytest.approx((1 + (1 / math.log2(3) + 1 / math.log2(4)) / idcg2 + 0) / 3)
    assert m["map@3"] == pytest.approx((1 + (1 / 2 + 2 / 3) / 2 + 0) / 3)


def test_recall_counts_only_the_top_k():
    assert ranking_metrics([["x", "a"]], [{"a"}], k_values=[1, 2]) == pytest.approx(
        {
            "accuracy@1": 0, "precision@1": 0, "recall@1": 0, "mrr@1": 0, "ndcg@1": 0, "map@1": 0,
            "accuracy@2": 1, "precision@2": 0.5, "recall@2": 1, "mrr@2": 0.5,
            "ndcg@2": 1 / math.log2(3), "map@2": 0.5,
        }
    )


def test_zero_requests_is_an_error_not_a_zero_score():
    with pytest.raises(ValueError, match="0 requests"):
        ranking_metrics([], [], k_values=[10])
