import json

import numpy as np
import pytest
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv

from melscribe_torch.recommend import index_write
from melscribe_torch.recommend.catalog import Song, load_catalog
from melscribe_torch.recommend.index import (
    IndexCorruptError,
    IndexMismatchError,
    build_index,
    check_compatible,
    load_index,
    model_fingerprint,
)


@pytest.fixture
def songs(tmp_path):
    return load_catalog(write_csv(tmp_path / "songs.csv", SONGS))


def build(songs, out, encoder=None, **kwargs):
    encoder = encoder or KeywordEncoder()
    return build_index(songs, encoder, out, FAKE_MODEL, dim=KeywordEncoder.dim, **kwargs)


def test_each_distinct_descriptor_set_is_encoded_once(tmp_path, songs):
    encoder = KeywordEncoder()
    index = build(songs, tmp_path / "idx", encoder)
    # s1 and s4 share one descriptor set: 4 sets for 5 songs
    assert index.set_texts == [
        "tropical, steel drums, upbeat",
        "sad, piano, calm",
        "rock, guitar, upbeat",
        "jazz, piano",
    ]
    assert index.song_sets.tolist() == [0, 1, 2, 0, 3]
    assert index.songs_of_set(0) == [0, 3]
    descriptors = [
        "tropical",
        "steel drums",
        "upbeat",
        "sad",
        "piano",
        "calm",
        "rock",
        "guitar",
        "jazz",
    ]
    assert encoder.encoded == index.set_texts + descriptors
    assert index.set_emb.shape == (4, KeywordEncoder.dim) and index.set_emb.dtype == np.float16
    # score "cos": stored normalised
    np.testing.assert_allclose(
        np.linalg.norm(index.set_emb.astype(np.float32), axis=1), 1, atol=1e-3
    )


def test_manifest_records_model_sizes_and_files(tmp_path, songs):
    index = build(songs, tmp_path / "idx", dtype="float32")
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert m["model"] == FAKE_MODEL and m["dim"] == KeywordEncoder.dim and m["dtype"] == "float32"
    assert (m["num_songs"], m["num_descriptor_sets"], m["num_descriptors"]) == (5, 4, 9)
    assert m["score"] == "cos" and m["package_version"] and m["created"]
    for entry in m["files"].values():
        assert (tmp_path / "idx" / entry["name"]).stat().st_size == entry["bytes"] and len(
            entry["sha256"]
        ) == 64
    assert index.set_emb.dtype == np.float32


def test_append_encodes_only_new_texts(tmp_path, songs):
    build(songs[:3], tmp_path / "idx")
    encoder = KeywordEncoder()
    new = [songs[3], songs[4], Song("s6", ("calm", "guitar"), "Dawn", None)]
    index = build(new, tmp_path / "idx", encoder, append=True)
    # s4's set is already indexed; only s5's and s6's sets and the unseen descriptors are encoded
    assert encoder.encoded == ["jazz, piano", "calm, guitar", "jazz"]
    assert [s.song_id for s in index.songs] == ["s1", "s2", "s3", "s4", "s5", "s6"]
    fresh = build(songs + [new[2]], tmp_path / "fresh")
    assert fresh.set_texts == index.set_texts
    np.testing.assert_array_equal(np.asarray(fresh.set_emb), np.asarray(index.set_emb))
    # old generation files are gone
    assert len(list((tmp_path / "idx").glob("set_embeddings-*.npy"))) == 1


def test_append_refuses_known_ids_and_other_models(tmp_path, songs):
    build(songs[:3], tmp_path / "idx")
    with pytest.raises(ValueError, match="already in the index.*s2"):
        build(songs[1:2], tmp_path / "idx", append=True)
    other = dict(FAKE_MODEL, weights_sha256="1" * 64, name_or_path="other")
    with pytest.raises(IndexMismatchError, match="built with model 'keyword'.*not with 'other'"):
        build_index(
            songs[3:],
            KeywordEncoder(),
            tmp_path / "idx",
            other,
            dim=KeywordEncoder.dim,
            append=True,
        )
    with pytest.raises(FileNotFoundError, match="no index to append to"):
        build(songs, tmp_path / "empty", append=True)


def test_dimension_mismatch(tmp_path, songs):
    index = build(songs, tmp_path / "idx")
    with pytest.raises(IndexMismatchError, match="11-dimensional.*makes 32-dimensional"):
        check_compatible(index.manifest, FAKE_MODEL, dim=32)


def test_model_fingerprint_changes_with_weights(tmp_path, tiny_model_dir):
    from conftest import build_tiny_model_dir

    a = model_fingerprint(str(tiny_model_dir))
    b = model_fingerprint(str(build_tiny_model_dir(tmp_path / "other", seed=1)))
    assert a["weights_sha256"] and a["weights_sha256"] != b["weights_sha256"]
    assert model_fingerprint(str(tiny_model_dir)) == a


def test_truncated_or_corrupt_file_is_an_error(tmp_path, songs):
    index = build(songs, tmp_path / "idx")
    emb = tmp_path / "idx" / index.manifest["files"]["set_embeddings"]["name"]
    data = emb.read_bytes()
    emb.write_bytes(data[:-8])
    with pytest.raises(IndexCorruptError, match="truncated"):
        load_index(tmp_path / "idx")
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    emb.write_bytes(bytes(flipped))
    with pytest.raises(IndexCorruptError, match="sha256"):
        load_index(tmp_path / "idx")
    load_index(tmp_path / "idx", verify=False)  # same size: only the checksum catches it
    (tmp_path / "idx" / "manifest.json").write_text("{")
    with pytest.raises(IndexCorruptError, match="unreadable"):
        load_index(tmp_path / "idx")
    with pytest.raises(FileNotFoundError, match="not a song index"):
        load_index(tmp_path)


def test_crash_mid_write_leaves_the_old_index_loadable(tmp_path, songs, monkeypatch):
    build(songs[:3], tmp_path / "idx")
    before = sorted(p.name for p in (tmp_path / "idx").iterdir())

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(index_write, "atomic_write_json", crash)  # dies just before the commit
    with pytest.raises(OSError, match="disk full"):
        build(songs[3:], tmp_path / "idx", append=True)
    monkeypatch.undo()
    monkeypatch.setattr(index_write, "_write_embeddings", crash)  # dies mid-way through the files
    with pytest.raises(OSError, match="disk full"):
        build(songs, tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == before
    index = load_index(tmp_path / "idx")
    assert [s.song_id for s in index.songs] == ["s1", "s2", "s3"]
