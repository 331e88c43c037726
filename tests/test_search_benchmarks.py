"""Helpers of the search benchmarks (real_catalog, search_limit, ann_sweep, quantize_encoder) at tiny sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_benchmarks import load_script


def unit_rows(n: int, dim: int) -> np.ndarray:
    """(n, dim) random float32 rows of unit length (seed 0)."""
    rows = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_catalog_texts_are_distinct_sets_topped_up_with_sub_sets():
    real_catalog = load_script("real_catalog")
    sets = [("a", "b", "c", "d"), ("a", "b", "c", "d"), ("e", "f"), ("g", "h", "i")]
    few = real_catalog.catalog_texts(sets, 2, seed=0)
    assert len(few) == 2 and set(few) <= {"a, b, c, d", "e, f", "g, h, i"}
    more = real_catalog.catalog_texts(sets, 6, seed=0)
    assert len(more) == len(set(more)) == 6
    assert set(more[:3]) == {"a, b, c, d", "e, f", "g, h, i"}  # every real set first
    for text in more[3:]:  # then sub-sets of two descriptors of a longer set
        parts = text.split(", ")
        assert len(parts) == 2 and any(set(parts) <= set(s) for s in sets)


def test_expand_keeps_real_rows_first_and_makes_unit_float16_rows():
    real_catalog = load_script("real_catalog")
    real = unit_rows(50, 16)
    out = real_catalog.expand(real, 300, seed=1, mix=0.5, noise=0.02)
    assert out.shape == (300, 16) and out.dtype == np.float16
    np.testing.assert_allclose(out[:50], real, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float32), axis=1), 1, atol=2e-3)
    # each synthetic row stays close to some real row (it is x_a moved at most halfway to x_b)
    nearest = (out[50:].astype(np.float32) @ real.T).max(axis=1)
    assert nearest.min() > 0.6 and len({r.tobytes() for r in out}) == 300
    np.testing.assert_array_equal(out, real_catalog.expand(real, 300, seed=1, mix=0.5, noise=0.02))


def test_against_scan_gives_ratios_to_the_scan_median():
    search_limit = load_script("search_limit")
    figures = search_limit.against_scan(
        {"scan": [0.1, 0.2, 0.3], "search": [0.3, 0.3, 0.3], "batch": [1.6, 1.6, 1.6]},
        per={"batch": 8},
    )
    assert figures["scan"]["ratio_to_scan"] == 1.0
    assert figures["search"]["ratio_to_scan"] == pytest.approx(1.5)
    assert figures["batch"]["per_request_ms"] == pytest.approx(200)
    assert figures["batch"]["per_request_ratio_to_scan"] == pytest.approx(1.0)
    assert figures["search"]["round_ratio_p50"] == pytest.approx(1.5)  # ratios 3, 1.5, 1


def test_interleaved_timings_run_every_call_each_round_in_order():
    search_limit = load_script("search_limit")
    calls = []
    seconds = search_limit.interleaved_timings(
        {"a": lambda r: calls.append(("a", r)), "b": lambda r: calls.append(("b", r))},
        rounds=2,
        warmup=1,
    )
    assert calls == [("a", 0), ("b", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert [len(v) for v in seconds.values()] == [2, 2]


def test_search_limit_runs_end_to_end_on_random_rows(tmp_path):
    search_limit = load_script("search_limit")
    out = tmp_path / "limit.json"
    search_limit.main(
        [
            "--catalog",
            "random",
            "--sizes",
            "3000",
            "--dim",
            "16",
            "--repeats",
            "2",
            "--batch",
            "4",
            "--out",
            str(out),
        ]
    )
    row = json.loads(out.read_text())["results"][0]
    assert row["same_top_k_as_float32_search"] is True and row["matrix_bytes"] == 3000 * 16 * 2
    assert {"scan", "search", "batch", "before"} <= row.keys()


def test_choose_takes_the_fastest_setting_that_reaches_the_target():
    ann_sweep = load_script("ann_sweep")
    rows = [
        {"value": 8, "recall": 0.95, "p50_ms": 1.0},
        {"value": 16, "recall": 0.985, "p50_ms": 2.0},
        {"value": 32, "recall": 0.999, "p50_ms": 3.5},
    ]
    assert ann_sweep.choose(rows, 0.98)["value"] == 16
    assert ann_sweep.choose(rows, 0.9999) is None


def test_time_single_requests_interleaves_encoders_one_request_per_call():
    quantize_encoder = load_script("quantize_encoder")
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def encode(self, texts, batch_size):
            calls.append((self.name, tuple(texts)))

    figures = quantize_encoder.time_single_requests(
        {"a": Fake("a"), "b": Fake("b")}, ["x", "y"], warmup=1
    )
    assert calls == [
        ("a", ("x",)),
        ("b", ("x",)),
        ("a", ("x",)),
        ("b", ("x",)),
        ("a", ("y",)),
        ("b", ("y",)),
    ]
    assert len(figures["a"]["runs_ms"]) == 2 and figures["a"]["p50_ms"] >= 0


def test_quantize_int8_replaces_every_linear_layer_and_keeps_embeddings_close(tiny_model_dir):
    from torch import nn

    from melscribe_torch.models import BiEncoder

    quantize_encoder = load_script("quantize_encoder")
    texts = ["an upbeat tropical track, steel drums", "calm piano", "steeldrum, joyful"]
    before = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu").encode(texts)
    int8 = quantize_encoder.quantize_int8(
        BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    )
    assert not any(type(m) is nn.Linear for m in int8.backbone.modules())
    after = int8.encode(texts)
    assert after.shape == before.shape and after.dtype == before.dtype
    cosine = (before * after).sum(-1) / (before.norm(dim=-1) * after.norm(dim=-1))
    assert cosine.min() > 0.9


def test_mixtures_replay_the_rows_expand_made():
    real_catalog = load_script("real_catalog")
    real = unit_rows(20, 8)
    out = real_catalog.expand(real, 100, seed=3, mix=0.5, noise=0.02)
    for start, a, b, w, g in real_catalog.mixtures(20, 100, seed=3, mix=0.5, dim=8):
        rows = real[a] + w * real[b] + 0.02 * g
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        np.testing.assert_array_equal(rows.astype(np.float16), out[start : start + len(a)])
        assert (w >= 0).all() and (w <= 0.5).all()


def test_mixture_descriptors_are_a_plus_a_share_of_b_and_never_taken():
    import random

    precomputed_index = load_script("precomputed_index")
    a, b = ["calm", "piano"], ["piano", "strings", "slow", "soft"]
    rng = random.Random(0)
    # half of b's three others, rounded: the first two, sorted with a's
    assert precomputed_index.mixture_descriptors(a, b, 0.5, set(), rng) == [
        "calm", "piano", "slow", "strings"
    ]
    taken = {"calm, piano, slow, strings"}
    other = precomputed_index.mixture_descriptors(a, b, 0.5, taken, rng)
    assert len(other) == 4 and set(a) < set(other) and ", ".join(other) not in taken
    # b adds nothing and a itself is taken: one of a's descriptors goes
    taken = {"calm, piano, strings"}
    assert precomputed_index.mixture_descriptors(["calm", "piano", "strings"], ["piano"], 1.0, taken, rng) in (
        ["calm", "piano"], ["calm", "strings"], ["piano", "strings"]
    )


def test_precomputed_rows_make_an_index_the_recommender_loads(tmp_path, tiny_model_dir):
    from melscribe_torch.recommend import Recommender
    from melscribe_torch.recommend.catalog import Song
    from melscribe_torch.recommend.index import load_index, model_fingerprint
    from melscribe_torch.recommend.index_write import build_index

    precomputed_index = load_script("precomputed_index")
    songs = [Song("s0", ("calm", "piano")), Song("s1", ("loud", "rock")), Song("s2", ("jazz", "sax"))]
    rows = np.eye(3, 32, dtype=np.float32)  # set i points along axis i
    table = {", ".join(s.descriptors): i for i, s in enumerate(songs)}
    encoder = precomputed_index.PrecomputedEncoder(table, rows, str(tiny_model_dir))
    build_index(songs, encoder, tmp_path / "ix", model_fingerprint(str(tiny_model_dir)), dim=32)
    index = load_index(tmp_path / "ix")  # checksums verified, as for any index
    np.testing.assert_array_equal(np.asarray(index.set_emb, dtype=np.float32), rows)
    assert index.descriptors == ["calm", "piano", "loud", "rock", "jazz", "sax"]
    model_emb = encoder._encoder.encode(["sax"], batch_size=1, precision="fp32")[0]  # encoded by the model
    np.testing.assert_allclose(
        index.descriptor_emb[5].astype(np.float32), (model_emb / model_emb.norm()).numpy(), atol=1e-3
    )
    rec = Recommender.load(tmp_path / "ix", device="cpu")
    assert len(rec.recommend("calm piano music", k=3)) == 3
