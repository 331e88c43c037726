"""The ensemble teacher: a cross-encoder's logit plus weighted dense and TF-IDF cosines of each pair."""

import pytest
import torch

from melscribe_torch.evaluation import build_retriever
from melscribe_torch.labeling import label_margins
from melscribe_torch.data import RetrievalSet
from melscribe_torch.models import BiEncoder
from melscribe_torch.retrieval import TfidfRetriever
from melscribe_torch.retrieval.lexical import TfidfScorer
from melscribe_torch.teacher.ensemble import EnsembleTeacher, build_teacher_scorer, recorded_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CORPUS = ["rock, guitar, drums", "soft piano, calm", "jazz, bass, drums", "sad piano, slow tempo"]
QUERIES = ["calm piano music", "loud rock drums"]
OFF = {"dense": None, "dense_weight": 0.0, "tfidf_weight": 0.0, "max_ngram": 1}


class LengthScorer:
    """A stand-in cross-encoder: the logit is the document's length."""

    def predict(self, pairs, *, batch_size=64, precision="fp32"):
        return torch.tensor([float(len(document)) for _, document in pairs])


def all_pairs():
    return [(q, d) for q in QUERIES for d in CORPUS]


def test_tfidf_member_adds_its_weighted_cosine_to_the_logit():
    teacher = EnsembleTeacher(LengthScorer(), dense_weight=0.0, tfidf_weight=3.0, max_ngram=1).fit(CORPUS)
    cosine = TfidfScorer(CORPUS, 1).scores(QUERIES)  # (Q, N), the TF-IDF retriever's own scores
    expected = torch.tensor([float(len(d)) for d in CORPUS]).repeat(2) + 3.0 * cosine.flatten()
    torch.testing.assert_close(teacher.predict(all_pairs(), batch_size=4, precision="fp32"), expected)


def test_dense_member_adds_its_weighted_cosine(tiny_model_dir):
    encoder = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    teacher = EnsembleTeacher(LengthScorer(), bi_encoder=encoder, dense_weight=2.0, tfidf_weight=0.0, max_ngram=1)
    q = encoder.encode(QUERIES, normalize=True)
    d = encoder.encode(CORPUS, normalize=True)
    expected = torch.tensor([float(len(x)) for x in CORPUS]).repeat(2) + 2.0 * (q @ d.T).flatten()
    encoded = []
    encode = encoder.encode
    encoder.encode = lambda texts, **kw: encoded.extend(texts) or encode(texts, **kw)
    torch.testing.assert_close(teacher.predict(all_pairs(), batch_size=4, precision="fp32"), expected)
    # each request comes once per candidate, yet each distinct text is encoded once
    assert sorted(encoded) == sorted(QUERIES + CORPUS)
    # asked again, the descriptor sets come from the cache: only the requests are encoded
    encoded.clear()
    torch.testing.assert_close(teacher.predict(all_pairs(), batch_size=4, precision="fp32"), expected)
    assert sorted(encoded) == sorted(QUERIES)


def test_second_dense_member_adds_its_own_weighted_cosine(tiny_model_dir, tmp_path):
    from conftest import build_tiny_model_dir

    first = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    second = BiEncoder.from_pretrained(str(build_tiny_model_dir(tmp_path / "other", seed=1)), device="cpu")
    teacher = EnsembleTeacher(LengthScorer(), bi_encoder=first, dense_weight=2.0, tfidf_weight=0.0, max_ngram=1,
                              second_bi_encoder=second, second_dense_weight=3.0)

    def cosines(encoder):
        return (encoder.encode(QUERIES, normalize=True) @ encoder.encode(CORPUS, normalize=True).T).flatten()

    assert not torch.allclose(cosines(first), cosines(second))  # two members that disagree
    lengths = torch.tensor([float(len(x)) for x in CORPUS]).repeat(2)
    expected = lengths + 2.0 * cosines(first) + 3.0 * cosines(second)
    torch.testing.assert_close(teacher.predict(all_pairs(), batch_size=4, precision="fp32"), expected)
    # asked again, each member's sets come from its own cache, not the other member's
    torch.testing.assert_close(teacher.predict(all_pairs(), batch_size=4, precision="fp32"), expected)
    with pytest.raises(ValueError, match="second_dense_weight is 1.0 but no bi-encoder"):
        EnsembleTeacher(LengthScorer(), dense_weight=0.0, tfidf_weight=0.0, max_ngram=1, second_dense_weight=1.0)


def test_the_set_embedding_cache_drops_the_least_recently_used(tiny_model_dir, monkeypatch):
    from melscribe_torch.teacher import ensemble

    monkeypatch.setattr(ensemble, "SET_EMBEDDING_CACHE_SIZE", 2)
    encoder = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    teacher = EnsembleTeacher(LengthScorer(), bi_encoder=encoder, dense_weight=1.0, tfidf_weight=0.0, max_ngram=1)
    for document in CORPUS[:3]:  # CORPUS[0] is the least recently used when CORPUS[2] comes
        teacher.predict([(QUERIES[0], document)], batch_size=4, precision="fp32")
    assert [text for text, _ in teacher._set_embeddings["dense"]] == CORPUS[1:3]
    # a cached embedding is the one a fresh encoding gives
    fresh = encoder.encode(CORPUS[2:3], normalize=True)[0]
    torch.testing.assert_close(teacher._set_embeddings["dense"][(CORPUS[2], "fp32")], fresh)


def test_zero_weights_leave_the_cross_encoder_alone_and_bad_settings_are_clear():
    cross_encoder = LengthScorer()
    assert build_teacher_scorer(cross_encoder, OFF) is cross_encoder
    with pytest.raises(ValueError, match="ensemble.dense is not set"):
        build_teacher_scorer(cross_encoder, {**OFF, "dense_weight": 1.0})
    with pytest.raises(ValueError, match="ensemble.second_dense is not set"):
        build_teacher_scorer(cross_encoder, {**OFF, "second_dense": None, "second_dense_weight": 1.0})
    unfitted = build_teacher_scorer(cross_encoder, {**OFF, "tfidf_weight": 1.0})
    with pytest.raises(RuntimeError, match=r"call fit\(corpus\) first"):
        unfitted.predict(all_pairs(), batch_size=4, precision="fp32")


def test_a_run_folder_records_the_second_member_only_when_it_is_weighted():
    unweighted = {**OFF, "second_dense": None, "second_dense_weight": 0.0}
    assert recorded_settings(unweighted) is None  # the cross-encoder alone: nothing recorded
    # an ensemble without the second member records what folders labelled before it existed did
    assert recorded_settings({**unweighted, "tfidf_weight": 5.0}) == {**OFF, "tfidf_weight": 5.0}
    weighted = {**unweighted, "second_dense": "mpnet-base", "second_dense_weight": 10.0}
    assert recorded_settings(weighted) == weighted


def test_margins_of_an_ensemble_are_the_sum_of_its_members_margins():
    pairs = RetrievalSet(
        queries={"q0": QUERIES[0]},
        corpus={f"d{i}": text for i, text in enumerate(CORPUS)},
        qrels={"q0": {"d1"}},
        name="toy",
    )
    tuples = [("q0", "d1", "d0"), ("q0", "d1", "d3")]
    teacher = build_teacher_scorer(LengthScorer(), {**OFF, "tfidf_weight": 5.0}).fit(CORPUS)
    margins = label_margins(teacher, pairs, tuples, batch_size=4, precision="fp32")
    alone = label_margins(LengthScorer(), pairs, tuples, batch_size=4, precision="fp32")
    cosine = TfidfScorer(CORPUS, 1).scores(QUERIES[:1])[0]
    lexical = [cosine[1] - cosine[0], cosine[1] - cosine[3]]
    assert lexical[0] > 0  # the positive shares "calm piano": the lexical member prefers it
    for margin, ce_margin, lexical_margin in zip(margins, alone, lexical):
        assert margin == pytest.approx(ce_margin + 5.0 * float(lexical_margin), abs=1e-5)


def test_evaluate_reranks_with_the_ensemble_score(tiny_model_dir):
    encode = {"score": "cos", "batch_size": 8, "precision": "fp32"}
    name = f"rerank:{tiny_model_dir}@tfidf"
    plain, _ = build_retriever(name, {}, **encode, rerank={"depth": 4})
    mixed, _ = build_retriever(name, {}, **encode, rerank={"depth": 4}, ensemble={**OFF, "tfidf_weight": 100.0})
    assert isinstance(mixed.cross_encoder, EnsembleTeacher)
    # A TF-IDF member weighted 100 outweighs the tiny random model's logits: the sets that
    # share the requests' words come first, as TF-IDF ranks them.
    _, tfidf_order = TfidfRetriever().search(QUERIES, CORPUS, 4)
    mixed_scores, mixed_order = mixed.search(QUERIES, CORPUS, 4)
    assert mixed_order[:, 0].tolist() == tfidf_order[:, 0].tolist() == [1, 0]
    # each candidate's score is its member's logit plus 100 x TF-IDF cosine, idf from the
    # corpus searched (the tiny model has no relevance head: each load draws its own)
    member = mixed.cross_encoder.cross_encoder
    cosine = TfidfScorer(CORPUS, 1).scores(QUERIES)
    for i, query in enumerate(QUERIES):
        docs = mixed_order[i].tolist()
        logits = member.predict([(query, CORPUS[d]) for d in docs], batch_size=4, precision="fp32")
        expected = [float(logit) + 100.0 * float(cosine[i, d]) for logit, d in zip(logits, docs)]
        assert mixed_scores[i].tolist() == pytest.approx(expected, abs=1e-4)
    logits, _ = plain.search(QUERIES, CORPUS, 4)
    assert mixed_scores[:, 0].min() > 20 > logits.abs().max()  # the ensemble's score, not the logit alone
