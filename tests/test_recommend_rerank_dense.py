"""An ensemble reranker whose dense member is the index's model reads the index's embeddings."""

import pytest
import torch
from recommend_fakes import SONGS, write_csv

from melscribe_torch.models import BiEncoder, CrossEncoder
from melscribe_torch.recommend import Recommender
from melscribe_torch.recommend.cli import main
from melscribe_torch.teacher.ensemble import build_teacher_scorer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REQUEST = "upbeat tropical music with steel drums"
DENSE_WEIGHT = 2.0


@pytest.fixture(scope="module", params=["cos", "dot"])
def index_dir(request, tmp_path_factory, tiny_model_dir):
    """An index of float16 rows (the default), stored normalised ("cos") or as encoded ("dot")."""
    tmp = tmp_path_factory.mktemp("rerank-dense")
    catalog = write_csv(tmp / "songs.csv", SONGS)
    args = ["index", "--catalog", str(catalog), "--model", str(tiny_model_dir)]
    assert main([*args, "--out", str(tmp / "idx"), "--score", request.param]) == 0
    return tmp / "idx"


def ensemble_of(dense_dir, cross_encoder_dir):
    torch.manual_seed(0)  # the cross-encoder's new head
    cross_encoder = CrossEncoder.from_pretrained(str(cross_encoder_dir), device="cpu")
    settings = {
        "dense": str(dense_dir),
        "dense_weight": DENSE_WEIGHT,
        "tfidf_weight": 0.0,
        "max_ngram": 1,
    }
    return build_teacher_scorer(cross_encoder, settings)


def spy_on_encode(bi_encoder) -> list[str]:
    encoded = []
    encode = bi_encoder.encode
    bi_encoder.encode = lambda texts, **kw: encoded.extend(texts) or encode(texts, **kw)
    return encoded


def expected_scores(ensemble, dense_dir, descriptor_sets):
    """What the ensemble's formula gives, the dense member encoded afresh: CE + w * cos."""
    pairs = [(REQUEST, text) for text in descriptor_sets]
    encoder = BiEncoder.from_pretrained(str(dense_dir), device="cpu")
    q, d = (
        encoder.encode([REQUEST], normalize=True),
        encoder.encode(descriptor_sets, normalize=True),
    )
    return ensemble.cross_encoder.predict(pairs) + DENSE_WEIGHT * (d @ q[0])


def test_an_ensemble_with_the_index_model_reads_the_stored_embeddings(index_dir, tiny_model_dir):
    ensemble = ensemble_of(tiny_model_dir, tiny_model_dir)
    encoded = spy_on_encode(ensemble.bi_encoder)
    rec = Recommender.load(index_dir, rerank=ensemble, rerank_depth=4, device="cpu")
    recs = rec.recommend(REQUEST, k=3)
    assert encoded == []  # neither the request nor a candidate set encoded again
    sets = [", ".join(r.descriptors) for r in recs]
    # the same scores as encoding afresh, up to the float16 rows (2e-3 per cosine allowed, times the weight)
    expected = expected_scores(ensemble, tiny_model_dir, sets)
    assert [r.score for r in recs] == pytest.approx(expected.tolist(), abs=DENSE_WEIGHT * 2e-3)
    assert recs[0].score >= recs[1].score >= recs[2].score


def test_an_ensemble_with_other_weights_encodes_with_its_own_model(
    index_dir, tiny_model_dir, tmp_path
):
    from conftest import build_tiny_model_dir

    other = build_tiny_model_dir(tmp_path / "other", seed=1)
    ensemble = ensemble_of(other, tiny_model_dir)
    encoded = spy_on_encode(ensemble.bi_encoder)
    rec = Recommender.load(index_dir, rerank=ensemble, rerank_depth=4, device="cpu")
    recs = rec.recommend(REQUEST, k=3)
    assert REQUEST in encoded  # its own model, not the index's rows
    sets = [", ".join(r.descriptors) for r in recs]
    expected = expected_scores(ensemble, other, sets)
    assert [r.score for r in recs] == pytest.approx(expected.tolist(), abs=1e-4)


def test_the_cli_reranks_with_the_ensemble_reading_the_index(index_dir, tiny_model_dir, tmp_path, capsys):
    import json

    ensemble = ensemble_of(tiny_model_dir, tiny_model_dir)  # its cross-encoder: the one saved here
    ensemble.cross_encoder.save(tmp_path / "ce")
    args = ["query", "--index", str(index_dir), REQUEST, "-k", "3", "--json", "--rerank", str(tmp_path / "ce")]
    assert main([*args, "--rerank-depth", "4", "--rerank-dense-weight", str(DENSE_WEIGHT)]) == 0
    recs = json.loads(capsys.readouterr().out)["recommendations"]
    expected = expected_scores(ensemble, tiny_model_dir, [", ".join(r["descriptors"]) for r in recs])
    assert [r["score"] for r in recs] == pytest.approx(expected.tolist(), abs=DENSE_WEIGHT * 2e-3)


def test_ensemble_members_without_a_cross_encoder_are_one_clear_line(index_dir, capsys):
    args = ["query", "--index", str(index_dir), REQUEST, "--rerank-tfidf-weight", "5"]
    assert main(args) == 2
    assert "give rerank (--rerank DIR)" in capsys.readouterr().err
