import pytest
import torch
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv

from melscribe_torch.recommend.catalog import load_catalog
from melscribe_torch.recommend.explain import explain
from melscribe_torch.recommend.index import build_index
from melscribe_torch.recommend.recommender import Recommendation, Recommender

REQUEST = "upbeat tropical music with steel drums"


@pytest.fixture
def recommender(tmp_path):
    songs = load_catalog(write_csv(tmp_path / "songs.csv", SONGS))
    index = build_index(
        songs,
        KeywordEncoder(),
        tmp_path / "idx",
        FAKE_MODEL,
        dim=KeywordEncoder.dim,
        dtype="float32",
    )
    return Recommender(index, KeywordEncoder(), alpha=0.5)


@pytest.mark.parametrize("retriever", ["dense", "lexical", "hybrid"])
def test_matching_songs_rank_first(recommender, retriever):
    recs = recommender.recommend(REQUEST, k=3, retriever=retriever)
    # s1 and s4 share the descriptor set "tropical, steel drums, upbeat": equal scores, catalog order
    assert [r.song_id for r in recs[:2]] == ["s1", "s4"]
    assert recs[0].score == recs[1].score > recs[2].score
    assert recs[2].song_id == "s3"  # the other "upbeat" song
    assert (
        isinstance(recs[0], Recommendation)
        and recs[0].title == "Island"
        and recs[0].artist == "Band A"
    )


def test_dense_scores_are_cosines(recommender):
    # request (keyword counts + 0.1 bias) vs "tropical, steel drums, upbeat": both [1,1,1,...,1,0.1]
    assert recommender.recommend(REQUEST, k=1)[0].score == pytest.approx(1.0, abs=1e-3)
    recs = recommender.recommend("sad piano", k=5)
    # "sad, piano, calm": (1 + 1 + 0.01) / (sqrt(2.01) * sqrt(3.01))
    assert recs[0].song_id == "s2" and recs[0].score == pytest.approx(
        2.01 / (2.01**0.5 * 3.01**0.5), abs=1e-3
    )


def test_explanation_ranks_the_song_descriptors(recommender):
    top = recommender.recommend(REQUEST, k=1)[0]
    # request · "steel drums" = 2.01; · "tropical" = · "upbeat" = 1.01 (ties keep catalog order)
    norm_q = 4.01**0.5
    assert top.explanation == [
        ("steel drums", pytest.approx(2.01 / (norm_q * 2.01**0.5), abs=1e-3)),
        ("tropical", pytest.approx(1.01 / (norm_q * 1.01**0.5), abs=1e-3)),
        ("upbeat", pytest.approx(1.01 / (norm_q * 1.01**0.5), abs=1e-3)),
    ]
    assert top.to_dict()["explanation"][0]["descriptor"] == "steel drums"


def test_explain_top_and_duplicates():
    import numpy as np
    import torch

    emb = np.eye(3, dtype=np.float32)
    rows = {"a": 0, "b": 1, "c": 2}
    assert explain(torch.tensor([0.0, 1.0, 0.5]), ["a", "b", "b", "c"], rows, emb, top=2) == [
        ("b", pytest.approx(0.8944, abs=1e-4)),
        ("c", pytest.approx(0.4472, abs=1e-4)),
    ]


def test_k_larger_than_catalog_and_batches(recommender):
    assert len(recommender.recommend("jazz", k=50)) == 5
    batch = recommender.recommend_batch(["jazz piano", "rock guitar"], k=1, retriever="hybrid")
    assert [recs[0].song_id for recs in batch] == ["s5", "s3"]


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_request(recommender, text):
    with pytest.raises(ValueError, match="request 1 is empty"):
        recommender.recommend(text)


@pytest.mark.parametrize("k", [0, -3])
def test_bad_k(recommender, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommender.recommend("jazz", k=k)


def test_unknown_retriever_and_backend(recommender):
    with pytest.raises(ValueError, match="unknown retriever 'bm99'"):
        recommender.recommend("jazz", retriever="bm99")
    with pytest.raises(ValueError, match="unknown backend"):
        Recommender(recommender.index, KeywordEncoder(), backend="annoy")
    with pytest.raises(ValueError, match="max_ngram must be a positive integer"):
        Recommender(recommender.index, KeywordEncoder(), max_ngram=0)


@pytest.mark.parametrize("backend", ["faiss", "faiss-flat", "faiss-hnsw", "faiss-ivf"])
def test_faiss_backend_matches_exact(recommender, backend):
    pytest.importorskip("faiss")
    fast = Recommender(recommender.index, KeywordEncoder(), backend=backend)
    for text in (REQUEST, "sad piano", "rock guitar"):
        assert [r.song_id for r in fast.recommend(text, k=3)] == [
            r.song_id for r in recommender.recommend(text, k=3)
        ]


class PianoScorer:
    """A stand-in cross-encoder that prefers sets with "piano", then keeps the order."""

    def __init__(self):
        self.pairs = []

    def predict(self, pairs, *, batch_size=64, precision="fp32"):
        self.pairs += list(pairs)
        return torch.tensor([float("piano" in document) for _, document in pairs])


def test_a_reranker_reorders_the_first_stage_top_sets(recommender):
    # dense: every set is in the first stage's top 10 (a lexical one holds only sets sharing a word)
    plain = recommender.recommend(REQUEST, k=10, retriever="dense")
    scorer = PianoScorer()
    recommender.reranker, recommender.rerank_depth = scorer, 10
    reranked = recommender.recommend(REQUEST, k=10, retriever="dense")
    piano = [r.song_id for r in plain if "piano" in r.descriptors]
    assert piano and [r.song_id for r in reranked[: len(piano)]] == piano
    assert {r.song_id for r in reranked} == {r.song_id for r in plain}
    assert reranked[0].score == 1.0  # the cross-encoder's logit
    assert all(request == REQUEST for request, _ in scorer.pairs)


def test_rerank_depth_limits_what_the_reranker_reads(recommender):
    plain = recommender.recommend(REQUEST, k=3, retriever="lexical")
    scorer = PianoScorer()
    recommender.reranker, recommender.rerank_depth = scorer, 1
    reranked = recommender.recommend(REQUEST, k=3, retriever="lexical")
    assert len(scorer.pairs) == 1
    assert [r.song_id for r in reranked] == [r.song_id for r in plain]


def test_rerank_depth_must_be_positive(recommender):
    with pytest.raises(ValueError, match="rerank_depth must be >= 1"):
        Recommender(recommender.index, KeywordEncoder(), rerank=PianoScorer(), rerank_depth=0)


def test_an_ensemble_reranker_learns_its_idf_from_the_catalog(recommender):
    from melscribe_torch.teacher.ensemble import EnsembleTeacher

    ensemble = EnsembleTeacher(PianoScorer(), dense_weight=0.0, tfidf_weight=1.0, max_ngram=1)
    rec = Recommender(recommender.index, KeywordEncoder(), alpha=0.5, rerank=ensemble, rerank_depth=10)
    assert ensemble.tfidf.d_mat.shape[0] == len(recommender.index.set_texts)  # fitted on the catalog
    top = rec.recommend("sad piano", k=1, retriever="dense")[0]
    assert top.song_id == "s2" and 1.0 < top.score < 2.0  # piano logit 1 + the TF-IDF cosine
