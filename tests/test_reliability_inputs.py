"""Bad input gets one line naming the file, row or field and the fix; corrupt models are not trusted."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys

import pytest
import torch
from recommend_fakes import SONGS, KeywordEncoder, write_csv
from safetensors.torch import load_file, save_file
from training_fixtures import REPO_ROOT

from melscribe_torch.data import DataError
from melscribe_torch.data.sources import load_custom
from melscribe_torch.errors import errors_in_one_line
from melscribe_torch.integrity import DIRECTORY_SUMS, IntegrityError
from melscribe_torch.io import atomic_write_json
from melscribe_torch.models import BiEncoder, ModelNotFoundError
from melscribe_torch.recommend.catalog import load_catalog
from melscribe_torch.recommend.cli import main
from melscribe_torch.recommend.index import build_index
from melscribe_torch.recommend.recommender import Recommender

CSV_TEXT = "id,descriptors,title\ns1,\"tropical, steel drums\",Café del Mar\ns2,\"sad, piano\",Rain\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_csvs_load_with_or_without_the_bom_spreadsheets_write(tmp_path, encoding):
    path = tmp_path / "songs.csv"
    path.write_text(CSV_TEXT, encoding=encoding)
    songs = load_catalog(path)
    assert [s.song_id for s in songs] == ["s1", "s2"] and songs[0].title == "Café del Mar"
    custom = tmp_path / "custom.csv"
    custom.write_text("request,descriptors\ncalm piano,\"piano, calm\"\n", encoding=encoding)
    assert len(load_custom(custom, "request", "descriptors")) == 1  # not "\ufeffrequest"


@pytest.mark.parametrize(
    "encoding, named", [("latin-1", "line 2: byte 0xe9 is not UTF-8; .*Windows-1252"), ("utf-16", "UTF-16")]
)
def test_a_csv_in_another_encoding_is_refused_naming_the_file_and_the_encoding(tmp_path, encoding, named):
    path = tmp_path / "songs.csv"
    path.write_text(CSV_TEXT, encoding=encoding)
    with pytest.raises(DataError, match=f"catalog {path}.*{named}"):
        load_catalog(path)
    with pytest.raises(DataError, match=f"custom test set {path}.*{named}"):
        load_custom(path, "id", "descriptors")


def test_evaluate_without_custom_path_names_custom_path_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "evaluate.py", "test_sets=[custom]", "retrievers=[tfidf]", f"hydra.run.dir={tmp_path}"],
        cwd=REPO_ROOT, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: test set custom needs your CSV: set custom.path=<file.csv> (one request and its "
        "descriptors per row; columns custom.request_column, custom.descriptor_column)"
    ]


def test_tracebacks_only_when_asked(monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exited, errors_in_one_line():
        raise KeyError("x")
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: KeyError: 'x' (unexpected; rerun with --debug for the traceback)\n"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(KeyError), errors_in_one_line():
        raise KeyError("x")


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    return BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu").save(tmp_path / "model")


def test_a_saved_model_carries_checksums_and_the_umask_permissions(model_dir):
    listed = {line.split("  ")[1] for line in (model_dir / DIRECTORY_SUMS).read_text().splitlines()}
    assert "model.safetensors" in listed and "modules.json" in listed
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in model_dir.rglob("*") if p.is_file()} == {0o666 & ~umask}


def test_a_truncated_model_file_is_refused_naming_it(model_dir):
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(IntegrityError, match=f"{weights} does not match its sha256"):
        BiEncoder.from_pretrained(str(model_dir))
    # without checksums (a model copied from elsewhere) the loader's error still names the file
    (model_dir / DIRECTORY_SUMS).unlink()
    with pytest.raises(ModelNotFoundError, match=f"{model_dir} \\(model.safetensors: Error while deserializing"):
        BiEncoder.from_pretrained(str(model_dir))


def test_model_weights_changed_in_place_or_non_finite_are_not_trusted(model_dir):
    weights = model_dir / "model.safetensors"
    tensors = load_file(weights)
    name = next(n for n, t in tensors.items() if t.is_floating_point() and t.numel() > 1)
    size = weights.stat().st_size
    tensors[name] = tensors[name] + 1.0  # same size, still a valid file
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert weights.stat().st_size == size
    with pytest.raises(IntegrityError, match="model.safetensors does not match its sha256"):
        BiEncoder.from_pretrained(str(model_dir))
    BiEncoder.from_pretrained(str(model_dir), verify=False)  # skipping the check is explicit
    tensors[name][0] = float("nan")
    save_file(tensors, str(weights), metadata={"format": "pt"})
    with pytest.raises(IntegrityError, match=f"weight .*{name.split('.')[-1]} holds .* non-finite"):
        BiEncoder.from_pretrained(str(model_dir), verify=False)


@pytest.fixture
def recommender(tmp_path):
    songs = load_catalog(write_csv(tmp_path / "songs.csv", SONGS))
    model = {"name_or_path": "keyword", "path": "keyword", "weights_sha256": "0" * 64}
    index = build_index(songs, KeywordEncoder(), tmp_path / "idx", model, dim=KeywordEncoder.dim)
    return Recommender(index, KeywordEncoder(), device="cpu")


def test_a_lexical_request_matching_no_word_returns_no_song(recommender):
    assert recommender.recommend("zzz qqq", k=3, retriever="lexical") == []
    matched = recommender.recommend("piano", k=5, retriever="lexical")
    assert {r.song_id for r in matched} == {"s2", "s5"} and all(r.score > 0 for r in matched)


@pytest.mark.parametrize("k", [True, 2.0, "3", 0])
def test_k_must_be_a_positive_integer(recommender, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommender.recommend("piano", k=k)


def test_a_negative_explain_top_is_refused(recommender, tmp_path, capsys):
    with pytest.raises(ValueError, match="explain_top must be an integer >= 0"):
        Recommender(recommender.index, KeywordEncoder(), explain_top=-3)
    assert main(["query", "--index", str(tmp_path / "idx"), "piano", "--explain-top", "-3"]) == 2
    assert capsys.readouterr().err == "error: --explain-top must be 0 or more (descriptors per explanation), got -3\n"


def test_json_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write_json(tmp_path / "modules.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
