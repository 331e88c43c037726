"""A FAISS IVF index stored with the song index: written, checked, read instead of rebuilt, kept on append."""

import numpy as np
import pytest
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv

from melscribe_torch.recommend import Recommender, recommender as recommender_module
from melscribe_torch.recommend.catalog import Song, load_catalog
from melscribe_torch.recommend.index import IndexCorruptError, load_index
from melscribe_torch.recommend.index_write import build_index

faiss = pytest.importorskip("faiss")


@pytest.fixture
def songs(tmp_path):
    return load_catalog(write_csv(tmp_path / "songs.csv", SONGS))


def build(songs, out, **kwargs):
    return build_index(songs, KeywordEncoder(), out, FAKE_MODEL, dim=KeywordEncoder.dim, **kwargs)


def test_the_ivf_index_is_a_listed_and_checksummed_file(tmp_path, songs):
    index = build(songs, tmp_path / "idx", ann="ivf")
    entry = index.manifest["files"]["ann_ivf"]
    path = tmp_path / "idx" / entry["name"]
    assert path.stat().st_size == entry["bytes"] and len(entry["sha256"]) == 64
    assert index.manifest["ann"] == {"kind": "ivf", "nlist": 4, "rows": len(index.set_texts)}
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="sha256"):
        load_index(tmp_path / "idx")
    with pytest.raises(ValueError, match="unknown ann index"):
        build(songs, tmp_path / "other", ann="hnsw")


def test_the_recommender_reads_the_stored_index_instead_of_building_one(tmp_path, songs, monkeypatch):
    build(songs, tmp_path / "idx", ann="ivf")
    index = load_index(tmp_path / "idx")
    exact = Recommender(index, KeywordEncoder(), backend="exact", device="cpu")

    def no_build(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(recommender_module, "build_faiss_index", no_build)
    ivf = Recommender(index, KeywordEncoder(), backend="faiss-ivf", nprobe=4, device="cpu")
    for text in ["tropical steel drums", "calm sad piano", "upbeat rock guitar"]:
        expected = [r.song_id for r in exact.recommend(text, k=3)]
        assert [r.song_id for r in ivf.recommend(text, k=3)] == expected  # nprobe = every list
    assert ivf._faiss.nprobe == 4


def test_append_adds_the_new_sets_to_the_stored_lists(tmp_path, songs):
    first = build(songs, tmp_path / "idx", ann="ivf")
    old_file = tmp_path / "idx" / first.manifest["files"]["ann_ivf"]["name"]
    old_ivf = faiss.read_index(str(old_file))
    new = [Song("n1", ("jazz", "guitar", "calm")), Song("n2", ("tropical", "jazz"))]
    index = build(new, tmp_path / "idx", append=True)  # no ann= given: the index keeps its own
    stored = faiss.read_index(str(tmp_path / "idx" / index.manifest["files"]["ann_ivf"]["name"]))
    assert stored.ntotal == len(index.set_texts) == len(first.set_texts) + 2
    assert not old_file.exists()  # replaced, like every file of the previous manifest
    np.testing.assert_array_equal(  # the centroids were kept, not trained again
        stored.quantizer.reconstruct_n(0, stored.nlist), old_ivf.quantizer.reconstruct_n(0, old_ivf.nlist)
    )
    rec = Recommender(index, KeywordEncoder(), backend="faiss-ivf", nprobe=4, device="cpu")
    assert rec.recommend("calm jazz guitar", k=1)[0].song_id == "n1"


def test_an_index_without_one_still_builds_it_in_memory(tmp_path, songs):
    index = build(songs, tmp_path / "idx")
    assert "ann_ivf" not in index.manifest["files"] and "ann" not in index.manifest
    rec = Recommender(index, KeywordEncoder(), backend="faiss-ivf", device="cpu")
    assert rec.recommend("tropical steel drums", k=1)[0].song_id == "s1"
