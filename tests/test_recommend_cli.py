import json

import pytest
from recommend_fakes import SONGS, write_csv, write_jsonl

from melscribe_torch.recommend.cli import main

REQUEST = "upbeat tropical music with steel drums"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("cli")
    catalog = write_csv(tmp / "songs.csv", SONGS)
    assert (
        main(
            [
                "index",
                "--catalog",
                str(catalog),
                "--model",
                str(tiny_model_dir),
                "--out",
                str(tmp / "idx"),
            ]
        )
        == 0
    )
    return tmp / "idx"


def test_index_reports_counts(index_dir, capsys, tiny_model_dir, tmp_path):
    rows = [{"song": "x1", "tags": ["calm", "guitar"]}]
    catalog = write_jsonl(tmp_path / "more.jsonl", rows)
    args = [
        "index",
        "--catalog",
        str(catalog),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_path / "idx"),
        "--id-column",
        "song",
        "--descriptor-column",
        "tags",
        "--dtype",
        "float32",
    ]
    assert main(args) == 0
    assert "1 songs, 1 descriptor sets, 2 descriptors, dim 32 float32" in capsys.readouterr().out


def test_query_table(index_dir, capsys):
    assert (
        main(["query", "--index", str(index_dir), REQUEST, "-k", "3", "--retriever", "lexical"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["rank", "score", "song"]
    assert out[1].split()[:3] == ["1", out[1].split()[1], "s1"] and "Island — Band A" in out[1]
    assert out[2].strip() == "descriptors: tropical, steel drums, upbeat"
    assert out[3].strip().startswith("why: ")
    assert out[4].split()[2] == "s4"


def test_query_json_dense(index_dir, capsys):
    assert main(["query", "--index", str(index_dir), REQUEST, "-k", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["request"] == REQUEST and payload["retriever"] == "dense"
    recs = payload["recommendations"]
    assert len(recs) == 2 and recs[0]["score"] >= recs[1]["score"]
    assert set(recs[0]) == {"song_id", "title", "artist", "score", "descriptors", "explanation"}
    assert len(recs[0]["explanation"]) == 3


def test_requests_file_writes_jsonl(index_dir, tmp_path):
    requests = tmp_path / "requests.txt"
    requests.write_text("sad piano\n\nrock guitar\n")
    out = tmp_path / "out.jsonl"
    args = [
        "query",
        "--index",
        str(index_dir),
        "--requests-file",
        str(requests),
        "-k",
        "1",
        "--retriever",
        "hybrid",
        "--alpha",
        "0",
        "--max-ngram",
        "2",
        "--output",
        str(out),
    ]  # alpha 0: lexical ranking (TF-IDF over words and word pairs)
    assert main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["request"] for line in lines] == ["sad piano", "rock guitar"]
    assert [line["recommendations"][0]["song_id"] for line in lines] == ["s2", "s3"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["   "], "request 1 is empty"),
        ([REQUEST, "-k", "0"], "-k must be a positive integer"),
        ([], "give either a request or --requests-file"),
        ([REQUEST, "--max-ngram", "0"], "max_ngram must be a positive integer"),
    ],
)
def test_bad_query_input(index_dir, capsys, args, message):
    assert main(["query", "--index", str(index_dir), *args]) == 2
    assert message in capsys.readouterr().err


def test_index_built_by_another_model(index_dir, tmp_path, capsys):
    from conftest import build_tiny_model_dir

    other = build_tiny_model_dir(tmp_path / "other", seed=1)
    assert main(["query", "--index", str(index_dir), REQUEST, "--model", str(other)]) == 2
    assert "the index was built with model" in capsys.readouterr().err


def test_corrupt_index(index_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(index_dir, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    songs = broken / manifest["files"]["songs"]["name"]
    songs.write_text(songs.read_text()[:-20])
    assert main(["query", "--index", str(broken), REQUEST]) == 2
    assert "truncated" in capsys.readouterr().err


def test_bad_catalog(tmp_path, tiny_model_dir, capsys):
    catalog = write_csv(tmp_path / "songs.csv", SONGS)
    args = [
        "index",
        "--catalog",
        str(catalog),
        "--out",
        str(tmp_path / "idx"),
        "--model",
        str(tiny_model_dir),
    ]
    assert main(args + ["--id-column", "ytid"]) == 2
    assert (
        "no column(s) ytid; columns found: artist, descriptors, id, title"
        in capsys.readouterr().err
    )
    assert (
        main(["index", "--catalog", str(tmp_path / "none.csv"), "--out", str(tmp_path / "idx")])
        == 2
    )
    assert "catalog file not found" in capsys.readouterr().err


def test_python_m_entry_point_exists():
    import importlib.util

    assert importlib.util.find_spec("melscribe_torch.recommend.__main__") is not None


@pytest.mark.data
def test_select_weight_refuses_clips_the_model_was_trained_on(tmp_path, tiny_model_dir, data_root, capsys):
    """A train.py model is tuned on its own run's split; a split it trained on is an error."""
    import shutil

    from melscribe_torch.data.training import load_training_records

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "best")
    clips = sorted({r.clip_id for r in load_training_records(data_root, ["musiccaps"])})
    (run / "qgen-queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"{clip}_0", "text": "x"}) + "\n" for clip in clips)
    )
    settings = {"valid_fraction": 0.3, "split_seed": 0}
    (run / "qgen-queries.jsonl.meta.json").write_text(json.dumps({"settings": settings}))
    args = ["select-weight", "--model", str(run / "best"), "--data-root", str(data_root)]
    assert main(args) == 2
    out = capsys.readouterr()
    assert "validation split of the training run" in out.out
    assert "the model was trained on" in out.err and "--valid-fraction" in out.err


def test_query_with_a_reranking_cross_encoder(index_dir, tiny_model_dir, tmp_path, capsys):
    import torch

    from melscribe_torch.models import CrossEncoder

    torch.manual_seed(0)
    cross_encoder = CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    cross_encoder.save(tmp_path / "ce")
    args = ["query", "--index", str(index_dir), REQUEST, "-k", "3", "--json"]
    assert main([*args, "--rerank", str(tmp_path / "ce"), "--rerank-depth", "4"]) == 0
    recs = json.loads(capsys.readouterr().out)["recommendations"]
    logits = cross_encoder.predict([(REQUEST, ", ".join(r["descriptors"])) for r in recs])
    assert [r["score"] for r in recs] == pytest.approx(logits.tolist(), abs=1e-4)
    assert recs[0]["score"] >= recs[1]["score"] >= recs[2]["score"]


@pytest.mark.parametrize(
    "backend_args", [["--backend", "faiss-ivf", "--nprobe", "64"], ["--backend", "faiss-hnsw", "--ef-search", "64"]]
)
def test_approximate_backends_answer_like_exact_search_on_a_small_index(index_dir, capsys, backend_args):
    pytest.importorskip("faiss")
    args = ["query", "--index", str(index_dir), REQUEST, "-k", "3", "--json"]
    assert main(args) == 0
    exact = [r["song_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    assert main([*args, *backend_args]) == 0  # every IVF list scanned; HNSW over 4 rows is exact
    assert [r["song_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]] == exact


def test_nprobe_reaches_the_ivf_index(index_dir, capsys):
    pytest.importorskip("faiss")
    # 4 descriptor sets make 4 one-row lists: scanning one list finds one set (s1 and s4 share it)
    args = ["query", "--index", str(index_dir), REQUEST, "-k", "3", "--json", "--backend", "faiss-ivf"]
    assert main([*args, "--nprobe", "1"]) == 0
    found = [r["song_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    assert found == ["s1", "s4"]


def test_index_ann_ivf_stores_the_index_query_reads(tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("faiss")
    catalog = write_csv(tmp_path / "songs.csv", SONGS)
    out = tmp_path / "idx"
    args = ["index", "--catalog", str(catalog), "--model", str(tiny_model_dir), "--out", str(out)]
    assert main([*args, "--ann", "ivf"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / manifest["files"]["ann_ivf"]["name"]).is_file() and manifest["ann"]["rows"] == 4
    capsys.readouterr()
    query = ["query", "--index", str(out), REQUEST, "-k", "3", "--json"]
    assert main(query) == 0
    exact = json.loads(capsys.readouterr().out)["recommendations"]
    assert main([*query, "--backend", "faiss-ivf", "--nprobe", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["recommendations"] == exact
