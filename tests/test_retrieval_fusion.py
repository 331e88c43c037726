import pytest
import torch
from recommend_fakes import KeywordEncoder

from melscribe_torch.retrieval import HybridRetriever, fuse_scores, fused_topk
from melscribe_torch.retrieval.fusion import ranks, zscore

DENSE = torch.tensor([[0.9, 0.5, 0.1, 0.3], [0.2, 0.4, 0.6, 0.8]])
LEXICAL = torch.tensor([[0.0, 0.0, 1.0, 0.5], [0.3, 0.0, 0.0, 0.0]])


def test_zscore_by_hand():
    z = zscore(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    std = (2 / 3) ** 0.5  # population std of 1, 2, 3
    torch.testing.assert_close(z[0], torch.tensor([-1 / std, 0.0, 1 / std]))
    torch.testing.assert_close(z[1], torch.zeros(3))  # a constant row carries no preference


def test_zscore_fusion_by_hand():
    fused = fuse_scores(DENSE, LEXICAL, alpha=0.5)
    torch.testing.assert_close(fused, 0.5 * zscore(DENSE) + 0.5 * zscore(LEXICAL))
    # row 0 by hand: dense mean 0.45, std sqrt(0.0875); lexical mean 0.375, std sqrt(0.171875)
    dense_z = (torch.tensor([0.9, 0.5, 0.1, 0.3]) - 0.45) / 0.0875**0.5
    lexical_z = (torch.tensor([0.0, 0.0, 1.0, 0.5]) - 0.375) / 0.171875**0.5
    torch.testing.assert_close(fused[0], 0.5 * dense_z + 0.5 * lexical_z)
    # dense prefers doc 0, lexical doc 2: the mix keeps doc 0 first, doc 2 second
    assert fused[0].argsort(descending=True).tolist() == [0, 2, 3, 1]


def test_alpha_one_is_dense_and_zero_is_lexical():
    for method in ("zscore", "rrf"):
        assert torch.equal(
            fuse_scores(DENSE, LEXICAL, 1.0, method).argsort(dim=1), DENSE.argsort(dim=1)
        )
        assert torch.equal(
            fuse_scores(LEXICAL, DENSE, 0.0, method).argsort(dim=1), DENSE.argsort(dim=1)
        )


def test_rrf_by_hand():
    assert ranks(DENSE).tolist() == [[1, 2, 4, 3], [4, 3, 2, 1]]
    fused = fuse_scores(DENSE, LEXICAL, 0.5, "rrf")
    # doc 2 of request 0: dense rank 4, lexical rank 1
    assert fused[0, 2].item() == pytest.approx(0.5 / 64 + 0.5 / 61)


def test_bad_fusion_settings():
    with pytest.raises(ValueError, match="alpha must be in"):
        fuse_scores(DENSE, LEXICAL, 1.5)
    with pytest.raises(ValueError, match="unknown fusion method 'max'"):
        fuse_scores(DENSE, LEXICAL, 0.5, "max")
    with pytest.raises(ValueError, match="differ in shape"):
        fuse_scores(DENSE, LEXICAL[:, :3], 0.5)


def test_fused_topk_in_blocks_equals_one_block(monkeypatch):
    from melscribe_torch.retrieval import search

    dense, lexical = torch.rand(7, 5), torch.rand(7, 5)
    expected = torch.topk(fuse_scores(dense, lexical, 0.3), 3, dim=1)
    monkeypatch.setattr(search, "MAX_BLOCK_CELLS", 10)  # 2 requests per block
    scores, indices = fused_topk(lambda a, b: dense[a:b], lambda a, b: lexical[a:b], 7, 5, 3, 0.3)
    torch.testing.assert_close(scores, expected.values)
    assert torch.equal(indices, expected.indices)


def test_hybrid_retriever_protocol_and_extremes():
    corpus = ["tropical, steel drums", "sad piano", "rock guitar", "calm jazz piano"]
    queries = ["tropical steel drums please", "sad piano"]
    dense = HybridRetriever(KeywordEncoder(), "hybrid:kw", alpha=1.0, method="zscore", max_ngram=1)
    scores, indices = dense.search(queries, corpus, k=10)
    assert scores.shape == indices.shape == (2, 4)
    assert indices[:, 0].tolist() == [0, 1]
    lexical = HybridRetriever(KeywordEncoder(), "hybrid:kw", alpha=0.0, method="zscore", max_ngram=1)
    assert lexical.search(queries, corpus, k=2)[1][:, 0].tolist() == [0, 1]


def test_build_retriever_knows_hybrid_names(tiny_model_dir):
    from melscribe_torch.evaluation import build_retriever

    encode = {"score": "cos", "batch_size": 8, "precision": "fp32"}  # the evaluate config's score, encode.*
    retriever, source = build_retriever(
        f"hybrid:{tiny_model_dir}", hybrid={"alpha": 0.3, "method": "rrf", "max_ngram": 2}, **encode
    )
    assert (retriever.name, retriever.alpha, retriever.method, retriever.max_ngram, source) == (
        f"hybrid:{tiny_model_dir}",
        0.3,
        "rrf",
        2,
        str(tiny_model_dir),
    )
    with pytest.raises(ValueError, match=r"needs its fusion settings: set hybrid.method, hybrid.max_ngram"):
        build_retriever(f"hybrid:{tiny_model_dir}", hybrid={"alpha": 0.3}, **encode)


def test_hybrid_retriever_encodes_each_text_once_across_searches():
    encoder = KeywordEncoder()
    retriever = HybridRetriever(encoder, "hybrid:kw", alpha=0.5, method="zscore", max_ngram=1)
    retriever.search(["sad piano"], ["sad, piano", "rock"], k=1)
    retriever.search(["sad piano"], ["rock", "jazz"], k=1)  # a second seed: new set "jazz" only
    assert encoder.encoded == ["sad, piano", "rock", "sad piano", "jazz"]
