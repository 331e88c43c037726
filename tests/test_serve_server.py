"""``melscribe-recommend serve`` as a real process on a free loopback port, over HTTP."""

import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from serve_process import build_served_index, call, running_server

from melscribe_torch import __version__


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    index_dir = build_served_index(tmp_path_factory.mktemp("serve"), tiny_model_dir)
    with running_server(index_dir, "--retriever", "hybrid", "--max-k", "4") as url:
        yield url


def test_every_endpoint(server):
    assert call(f"{server}/healthz") == (200, {"status": "ok", "songs": 5})

    status, version = call(f"{server}/version")
    assert status == 200 and version["package_version"] == __version__
    assert len(version["model"]["weights_sha256"]) == 64
    assert version["index"]["num_songs"] == 5 and version["index"]["dim"] == 32
    assert version["serving"]["default_retriever"] == "hybrid"
    assert version["serving"]["device"] == "cpu" and version["limits"]["max_k"] == 4

    status, one = call(f"{server}/recommend", {"request": "tropical steel drums", "k": 3})
    assert status == 200 and one["retriever"] == "hybrid" and len(one["results"]) == 3
    top = one["results"][0]
    assert top["rank"] == 1 and top["score_type"] == "fused z-score"
    assert set(top) == {
        "id",
        "rank",
        "score",
        "score_type",
        "title",
        "artist",
        "descriptors",
        "matching",
        "link",
    }
    assert top["link"].startswith("https://www.youtube.com/watch?v=" + top["id"] + "&t=")

    status, batch = call(
        f"{server}/recommend", {"requests": ["sad piano", "rock"], "k": 2, "retriever": "dense"}
    )
    assert status == 200 and [r["request"] for r in batch["responses"]] == ["sad piano", "rock"]
    assert batch["responses"][0]["results"][0]["score_type"] == "cosine"

    status, reloaded = call(f"{server}/reload", {})
    assert status == 200 and reloaded["index"]["num_songs"] == 5

    with urllib.request.urlopen(f"{server}/", timeout=30) as reply:
        assert reply.status == 200 and "text/html" in reply.headers["Content-Type"]
        assert b'id="request"' in reply.read()


@pytest.mark.parametrize(
    "body, status",
    [({"request": ""}, 400), ({"request": "piano", "k": 5}, 400), ({"request": ["piano"]}, 422)],
)
def test_bad_request_gets_4xx(server, body, status):
    code, reply = call(f"{server}/recommend", body)
    assert code == status and reply["error"]
