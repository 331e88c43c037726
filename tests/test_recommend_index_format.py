"""The stored set embeddings are ready for search; format 1 indexes still load."""

import json

import numpy as np
import pytest
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv

from melscribe_torch.recommend.catalog import load_catalog
from melscribe_torch.recommend.index import IndexCorruptError, build_index, load_index


@pytest.fixture
def index_dir(tmp_path):
    songs = load_catalog(write_csv(tmp_path / "songs.csv", SONGS))
    build_index(songs, KeywordEncoder(), tmp_path / "idx", FAKE_MODEL, dim=KeywordEncoder.dim)
    return tmp_path / "idx"


def rewrite_manifest(index_dir, change):
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_set_embeddings_are_stored_normalised_in_the_index_dtype(index_dir):
    index = load_index(index_dir)
    assert index.manifest["format_version"] == 2 and index.manifest["normalized"] is True
    assert index.set_emb.dtype == np.float16
    np.testing.assert_allclose(
        np.linalg.norm(index.set_emb.astype(np.float32), axis=1), 1, atol=1e-3
    )


def test_format_1_index_with_unnormalised_rows_is_normalised_on_load(index_dir):
    index = load_index(index_dir)
    emb_path = index_dir / index.manifest["files"]["set_embeddings"]["name"]
    stored = np.array(index.set_emb)  # a copy: the memory map follows the file
    scaled = stored.astype(np.float32) * np.array([[2.0], [0.5], [3.0], [1.0]])
    np.save(emb_path, scaled.astype(np.float16))  # same size: only the checksum changes

    def as_format_1(manifest):
        manifest["format_version"] = 1
        del manifest["normalized"]

    rewrite_manifest(index_dir, as_format_1)
    old = load_index(index_dir, verify=False)
    assert old.manifest["normalized"] is True and old.set_emb.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(old.set_emb.astype(np.float32), axis=1), 1, atol=1e-3)
    np.testing.assert_allclose(old.set_emb, stored, atol=2e-3)


def test_format_1_index_already_normalised_loads_as_it_is(index_dir):
    rewrite_manifest(index_dir, lambda m: (m.update(format_version=1), m.pop("normalized")))
    old = load_index(index_dir)
    assert old.manifest["normalized"] is True and isinstance(old.set_emb, np.memmap)


def test_a_newer_format_is_refused_with_the_way_out(index_dir):
    rewrite_manifest(index_dir, lambda m: m.update(format_version=3))
    with pytest.raises(
        IndexCorruptError, match="index format 3, this package reads formats 1 to 2; upgrade"
    ):
        load_index(index_dir)
