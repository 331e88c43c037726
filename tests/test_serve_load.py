"""benchmarks/serve_load.py: the catalog it builds and the load loop's counting."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_benchmarks import load_script

serve_load = load_script("serve_load")


def test_catalog_is_real_sets_then_distinct_sub_sets(data_root):
    records = serve_load.load_training_records(data_root, serve_load.CATALOG_SOURCES)
    real = list(dict.fromkeys(r.descriptors for r in records if r.descriptors))
    sets = serve_load.catalog_descriptor_sets(data_root, len(real) + 500, seed=0)
    assert set(sets[: len(real)]) == set(real) and len(set(sets)) == len(sets) == len(real) + 500
    for subset in sets[len(real) :]:
        assert len(subset) >= 2 and any(set(subset) < set(s) for s in real)
    few = serve_load.catalog_descriptor_sets(data_root, 10, seed=0)
    assert len(set(few)) == 10 and set(few) <= set(real)
    assert serve_load.catalog_descriptor_sets(data_root, 10, seed=0) == few  # seeded


def test_the_serving_catalog_and_the_search_catalog_share_one_sampler(data_root):
    # The same sets, as descriptor tuples (serve_load) or as the index's texts (real_catalog).
    records = serve_load.load_training_records(data_root, serve_load.CATALOG_SOURCES)
    texts = load_script("real_catalog").catalog_texts([r.descriptors for r in records], 9000, seed=3)
    assert [", ".join(s) for s in serve_load.catalog_descriptor_sets(data_root, 9000, seed=3)] == texts


class FlakyHandler(BaseHTTPRequestHandler):
    """Answers k results, except that every request mentioning "fail" gets a 500."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 500 if "fail" in body["request"] else 200
        reply = json.dumps({"results": [{}] * body["k"]}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_run_load_counts_answers_and_errors(flaky_url):
    texts = ["calm piano", "please fail", "rock", "jazz"]  # every 4th request fails
    result = serve_load.run_load(flaky_url, texts, clients=3, requests=40, k=2, retriever=None)
    assert result["ok"] == 30 and result["errors"] == 10
    assert result["errors_by_kind"] == {"HTTP 500": 10}
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_run_load_refuses_other_hosts():
    with pytest.raises(ValueError, match="loopback only"):
        serve_load.run_load("http://example.org:80", ["x"], 1, 1, 1, None)


def test_percentile():
    assert serve_load.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert serve_load.percentile([1.0, 2.0, 3.0], 100) == 3.0
