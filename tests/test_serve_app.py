"""The HTTP API in-process (FastAPI's test client) over a keyword-encoder index."""

import threading
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv
from test_recommend_recommender import PianoScorer

from melscribe_torch.recommend import Recommender, build_index, load_catalog
from melscribe_torch.serve.app import Limits, create_app
from melscribe_torch.serve.service import RecommendService

LIMITS = Limits(max_request_chars=200, max_requests=4, max_k=5, max_exclude=3, max_body_bytes=4000)
LINK = "https://www.youtube.com/watch?v={id}&t={start}s"


class CountingEncoder(KeywordEncoder):
    """Records each encoder call's texts, to see which requests shared a batch."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.delay_s = delay_s

    def encode(self, texts, **kwargs):
        self.calls.append(list(texts))
        time.sleep(self.delay_s)
        return super().encode(texts, **kwargs)


def _catalog(tmp_path, rows):
    rows = [{**r, "start": 30 + i} for i, r in enumerate(rows)]
    return load_catalog(write_csv(tmp_path / "songs.csv", rows), link_template=LINK)


def _service(tmp_path, encoder, max_wait_s=0.0, **options):
    index = build_index(
        _catalog(tmp_path, SONGS), encoder, tmp_path / "idx", FAKE_MODEL, dim=encoder.dim
    )
    return RecommendService(
        Recommender(index, encoder, device="cpu", **options),
        tmp_path / "idx",
        default_retriever="dense",
        max_batch=8,
        max_wait_s=max_wait_s,
        verify=True,
        settings={},
    )


def _append(tmp_path, encoder, rows):
    """`melscribe-recommend index --append` of ``rows`` into the served index."""
    songs = load_catalog(write_csv(tmp_path / "more.csv", rows))
    build_index(songs, encoder, tmp_path / "idx", FAKE_MODEL, dim=encoder.dim, append=True)


@pytest.fixture
def encoder():
    return CountingEncoder()


@pytest.fixture
def service(tmp_path, encoder):
    service = _service(tmp_path, encoder)
    yield service
    service.close()


@pytest.fixture
def client(service):
    with TestClient(create_app(service, LIMITS)) as client:
        yield client


def test_health_version_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok", "songs": 5}
    version = client.get("/version").json()
    assert version["model"] == FAKE_MODEL
    assert version["index"]["num_songs"] == 5 and version["index"]["num_descriptor_sets"] == 4
    assert version["limits"]["max_k"] == 5
    page = client.get("/")
    assert page.status_code == 200 and '<form id="search">' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_one_request(client):
    body = client.post("/recommend", json={"request": "tropical steel drums", "k": 3}).json()
    assert body["request"] == "tropical steel drums" and body["retriever"] == "dense"
    top = body["results"][0]
    # s1 and s4 share a descriptor set: same score, catalog order
    assert [r["id"] for r in body["results"][:2]] == ["s1", "s4"]
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    assert top["score"] == body["results"][1]["score"] and top["score_type"] == "cosine"
    assert top["descriptors"] == ["tropical", "steel drums", "upbeat"]
    assert top["title"] == "Island" and top["artist"] == "Band A"
    assert top["link"] == "https://www.youtube.com/watch?v=s1&t=30s"
    assert [m["descriptor"] for m in top["matching"]][:2] == ["steel drums", "tropical"]


def test_batch_exclude_and_score_types(client):
    body = client.post(
        "/recommend",
        json={
            "requests": ["sad piano", "rock guitar"],
            "k": 2,
            "retriever": "hybrid",
            "exclude_ids": ["s2"],
        },
    ).json()
    first, second = body["responses"]
    assert first["request"] == "sad piano" and first["results"][0]["id"] == "s5"  # s2 excluded
    assert len(first["results"]) == 2 and "s2" not in {r["id"] for r in first["results"]}
    assert second["results"][0]["id"] == "s3"
    assert first["results"][0]["score_type"] == "fused z-score"
    lexical = client.post(
        "/recommend", json={"request": "jazz", "k": 1, "retriever": "lexical"}
    ).json()
    assert (
        lexical["results"][0]["id"] == "s5"
        and lexical["results"][0]["score_type"] == "tf-idf cosine"
    )


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"request": "  "}, 400, "request is empty"),
        ({"requests": ["piano", ""]}, 400, "requests[1] is empty"),
        ({"request": "piano", "requests": ["rock"]}, 400, "either"),
        ({}, 400, "either"),
        ({"requests": []}, 400, "at least one"),
        ({"request": "piano", "k": 0}, 400, "k must be between 1 and 5"),
        ({"request": "piano", "k": 6}, 400, "k must be between 1 and 5"),
        ({"request": "piano", "k": 1, "retriever": "bm25"}, 400, "unknown retriever 'bm25'"),
        ({"request": "x" * 201}, 413, "201 characters, the limit is 200"),
        ({"requests": ["piano"] * 5}, 413, "5 requests in one call, the limit is 4"),
        ({"request": "piano", "k": 1, "exclude_ids": ["a", "b", "c", "d"]}, 413, "4 exclude_ids"),
        ({"request": "piano", "k": "ten"}, 422, "body.k: Input should be a valid integer"),
        ({"request": "piano", "colour": "red"}, 422, "body.colour: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_get_one_line_errors(client, body, status, message):
    response = client.post("/recommend", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_malformed_json_oversized_body_and_unknown_path(client):
    response = client.post(
        "/recommend", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "not valid JSON" in response.json()["error"]
    response = client.post(
        "/recommend", content=b"x" * 4001, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and "4001 bytes" in response.json()["error"]
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_concurrent_requests_share_one_encoder_call(tmp_path):
    # The first batch's encoding is slow, so the requests sent meanwhile queue up together.
    encoder = CountingEncoder(delay_s=0.3)
    service = _service(tmp_path, encoder, max_wait_s=0.05)
    encoder.calls.clear()  # the warm-up's call
    texts = [f"{w} piano" for w in ("sad", "calm", "jazz", "rock", "upbeat", "steel")]
    with TestClient(create_app(service, LIMITS)) as client:
        replies = {}

        def ask(text):
            replies[text] = client.post("/recommend", json={"request": text, "k": 1}).json()

        threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    service.close()
    assert sorted(t for call in encoder.calls for t in call) == sorted(texts)
    assert len(encoder.calls) < len(texts)  # at least one call encoded several requests
    assert max(service.batcher.batch_sizes) > 1
    assert replies["jazz piano"]["results"][0]["id"] == "s5"  # each gets its own answer
    assert replies["rock piano"]["results"][0]["id"] in {"s2", "s3", "s5"}


def test_reload_swaps_in_an_appended_index_without_failed_requests(
    tmp_path, service, client, encoder
):
    more = [
        {
            "id": "s6",
            "title": "Calypso",
            "artist": "",
            "descriptors": "['steel drums', 'tropical', 'calm']",
        }
    ]
    errors, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            r = client.post("/recommend", json={"request": "tropical steel drums calm", "k": 1})
            if r.status_code != 200:
                errors.append(r.text)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    _append(tmp_path, encoder, more)
    reply = client.post("/reload").json()
    stop.set()
    asker.join()
    assert reply["status"] == "reloaded" and reply["index"]["num_songs"] == 6
    assert errors == []
    top = client.post("/recommend", json={"request": "tropical steel drums calm", "k": 1}).json()
    assert top["results"][0]["id"] == "s6"
    assert client.get("/healthz").json()["songs"] == 6


def test_failed_reload_keeps_serving_the_old_index(tmp_path, service, client):
    manifest = tmp_path / "idx" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"num_songs": 5', '"num_songs": 7'))
    response = client.post("/reload")
    assert response.status_code == 500
    assert response.json()["error"].startswith("reload failed, the previous index is still served:")
    assert client.post("/recommend", json={"request": "jazz", "k": 1}).status_code == 200
    assert client.get("/healthz").json()["songs"] == 5


def test_watch_reloads_after_append(tmp_path, service, encoder):
    service.watch(0.05)
    more = [{"id": "s6", "descriptors": "jazz, guitar"}]
    _append(tmp_path, encoder, more)
    deadline = time.monotonic() + 10
    while service.reloads == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.generation.manifest["num_songs"] == 6 and service.reloads == 1


def test_an_ensemble_reranker_says_its_score_is_not_a_logit(tmp_path, encoder):
    from melscribe_torch.teacher.ensemble import EnsembleTeacher

    ensemble = EnsembleTeacher(PianoScorer(), dense_weight=0.0, tfidf_weight=1.0, max_ngram=1)
    service = _service(tmp_path, encoder, rerank=ensemble, rerank_depth=4)
    assert service.generation.score_type("dense") == "rerank ensemble score"
    service.close()


def test_a_reranker_orders_the_results_and_survives_a_reload(tmp_path, encoder):
    service = _service(tmp_path, encoder, rerank=PianoScorer(), rerank_depth=4)
    with TestClient(create_app(service, LIMITS)) as client:
        for _ in range(2):  # before and after a reload
            body = client.post("/recommend", json={"request": "tropical steel drums", "k": 3})
            top = body.json()["results"][0]
            assert top["id"] in {"s2", "s5"} and top["score"] == 1.0  # the piano songs
            assert top["score_type"] == "rerank logit"
            assert client.post("/reload").status_code == 200
    service.close()
