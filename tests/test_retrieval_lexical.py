import math

import pytest
import torch

from melscribe_torch.retrieval import (
    TfidfRetriever,
    TfidfScorer,
    bm25_matrices,
    lexical_matrices,
    search,
    sparse_topk,
)


def test_tfidf_topk_in_blocks_equals_dense_topk(monkeypatch):
    corpus = ["sad piano", "rock guitar", "calm jazz piano", "tropical steel drums"]
    queries = ["piano", "guitar rock", "steel", "jazz piano calm"]
    scorer = TfidfScorer(corpus)
    expected = torch.topk(scorer.scores(queries), 2, dim=1)
    monkeypatch.setattr(search, "MAX_BLOCK_CELLS", 4)  # one request per block
    scores, indices = scorer.topk(queries, 2)
    torch.testing.assert_close(scores, expected.values)
    assert torch.equal(indices, expected.indices)


def test_tfidf_ngrams_match_descriptor_phrases_that_single_words_cannot_tell_apart():
    corpus = ["male voice, no guitar", "no voice, male guitar"]  # the same bag of words
    words = TfidfScorer(corpus).scores(["male voice"])[0]
    assert words[0] == pytest.approx(words[1])
    phrases = TfidfScorer(corpus, max_ngram=2).scores(["male voice"])[0]
    assert phrases[0] > phrases[1]
    with pytest.raises(ValueError, match="max_ngram"):
        TfidfScorer(corpus, max_ngram=0)


def test_bm25_matches_a_naive_formula():
    corpus = ["rock guitar rock", "jazz piano", "rock piano soft slow"]
    q_mat, d_mat = bm25_matrices(["rock piano"], corpus)
    scores = (q_mat @ d_mat.T).toarray()[0]
    docs = [text.split() for text in corpus]
    avgdl = sum(map(len, docs)) / len(docs)

    def naive(doc):
        total = 0.0
        for term in ["rock", "piano"]:
            df = sum(term in d for d in docs)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            total += idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * len(doc) / avgdl))
        return total

    assert scores.tolist() == pytest.approx([naive(d) for d in docs])


def test_one_tfidf_serves_the_baseline_mining_and_the_hybrid():
    corpus = ["sad piano", "rock guitar", "calm jazz piano", "tropical steel drums", "piano rock"]
    queries = ["piano", "rock piano please", "calm"]
    scorer = TfidfScorer(corpus)
    q_mat, d_mat = lexical_matrices("tfidf", queries, corpus)  # what mining ranks
    torch.testing.assert_close(torch.from_numpy((q_mat @ d_mat.T).toarray()).float(), scorer.scores(queries))
    baseline = TfidfRetriever().search(queries, corpus, 3)  # the paper's sparse baseline
    for ranked in (sparse_topk(q_mat, d_mat, 3), scorer.topk(queries, 3)):
        torch.testing.assert_close(ranked[0], baseline[0])
        assert torch.equal(ranked[1], baseline[1])
    assert baseline[1][1, 0].item() == 4  # "piano rock" holds both words of the request
    # cosine scores: a request equal to a document scores 1 against it
    assert scorer.scores(["calm jazz piano"])[0, 2].item() == pytest.approx(1.0)


def test_unknown_lexical_method_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown lexical method 'splade'; valid: tfidf, bm25"):
        lexical_matrices("splade", ["piano"], ["piano"])


def test_bm25_retriever_ranks_by_the_bm25_sum_and_evaluate_knows_it_by_name():
    from melscribe_torch.evaluation import build_retriever

    corpus = ["rock guitar rock", "jazz piano", "rock piano soft slow"]
    retriever, source = build_retriever("bm25", score="cos", batch_size=8, precision="fp32")
    assert (retriever.name, source) == ("bm25", "bm25")
    scores, indices = retriever.search(["rock piano"], corpus, 2)
    q_mat, d_mat = bm25_matrices(["rock piano"], corpus)
    expected = torch.topk(torch.from_numpy((q_mat @ d_mat.T).toarray()).float(), 2, dim=1)
    torch.testing.assert_close(scores, expected.values)
    assert indices.tolist() == expected.indices.tolist() == [[2, 0]]  # both words beat one word twice
