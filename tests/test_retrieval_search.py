import pytest
import torch
import torch.nn.functional as F

from melscribe_torch.retrieval import exact_topk


@pytest.mark.parametrize("score", ["cos", "dot"])
def test_chunked_equals_unchunked(score):
    torch.manual_seed(0)
    q, d = torch.randn(37, 16), torch.randn(301, 16)
    ref = (F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T) if score == "cos" else q @ d.T
    ref_scores, ref_idx = torch.topk(ref, 10, dim=1)
    scores, idx = exact_topk(q, d, 10, score=score, query_chunk=8, corpus_chunk=13)
    torch.testing.assert_close(scores, ref_scores)
    assert torch.equal(idx, ref_idx)


def test_k_larger_than_corpus_returns_everything():
    scores, idx = exact_topk(torch.randn(3, 4), torch.randn(5, 4), k=50)
    assert idx.shape == (3, 5) and sorted(idx[0].tolist()) == list(range(5))


def test_excluded_documents_never_come_back():
    torch.manual_seed(1)
    q, d = torch.randn(4, 8), torch.randn(40, 8)
    exclude = [[0, 1, 2], [39], [], list(range(35))]
    _, idx = exact_topk(q, d, 5, exclude=exclude, corpus_chunk=7)
    for row, banned in zip(idx.tolist(), exclude):
        assert not set(row) & set(banned)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be positive"):
        exact_topk(torch.randn(1, 4), torch.randn(2, 4), 0)
    with pytest.raises(ValueError, match="differ in size"):
        exact_topk(torch.randn(1, 4), torch.randn(2, 5), 1)
    with pytest.raises(ValueError, match="valid: cos, dot"):
        exact_topk(torch.randn(1, 4), torch.randn(2, 4), 1, score="l2")
