"""Exact search over the stored matrix equals a naive float32 search, whatever the dtype or batch."""

import numpy as np
import pytest
import torch

from melscribe_torch.recommend import dense_search
from melscribe_torch.recommend.dense_search import SearchMatrix


def unit_rows(n, dim, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)


def naive_topk(q, rows, k):
    scores = q.float() @ rows.float().T
    return torch.topk(scores, min(k, rows.shape[0]), dim=1)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(dense_search, "CORPUS_CHUNK", 700)  # several chunks per search
    monkeypatch.setattr(dense_search, "HALF_CHUNK", 700)
    monkeypatch.setattr(dense_search, "UPCAST_ROWS", 300)  # several pieces per score block,
    monkeypatch.setattr(dense_search, "SCORE_ROWS", 1000)  # several score blocks, a short last one
    monkeypatch.setattr(dense_search, "SCORE_BLOCK", 64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("num_requests", [1, 2, 9])  # 1-2: matrix-vector kernel; 9: up-cast chunks
def test_topk_equals_naive_search_of_the_stored_rows(dtype, num_requests):
    rows = unit_rows(3000, 24, seed=0).to(dtype)
    q = unit_rows(num_requests, 24, seed=1)
    scores, found = SearchMatrix(rows, max_norm=1.0).topk(q, 10)
    expected_scores, expected = naive_topk(q, rows, 10)
    assert found.tolist() == expected.tolist()
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=0)


def test_numpy_memory_map_is_searched_without_a_copy(tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, unit_rows(500, 8, seed=2).half().numpy())
    emb = np.load(path, mmap_mode="c")
    matrix = SearchMatrix(emb)
    assert matrix.rows.data_ptr() == emb.ctypes.data and matrix.max_norm == pytest.approx(
        1, abs=1e-3
    )
    assert matrix.topk(unit_rows(1, 8, seed=3), 600)[1].shape == (1, 500)  # k capped at N


def test_rows_tied_in_16_bits_are_searched_again_in_float32(monkeypatch):
    # 200 rows whose 16-bit scores round to one value but whose float32 scores differ:
    # the 2k + 32 candidates cannot hold the true top-5, so the request is redone.
    q = torch.zeros(1, 8)
    q[0, 0], q[0, 1] = 1.0, 1e-3
    rows = torch.zeros(200, 8)
    rows[:, 0] = 0.5
    rows[:, 1] = torch.linspace(0, 0.1, 200)
    rows = rows.half()
    calls = []
    real = dense_search.exact_topk
    monkeypatch.setattr(
        dense_search, "exact_topk", lambda *a, **kw: calls.append(1) or real(*a, **kw)
    )
    _, found = SearchMatrix(rows).topk(q, 5)
    assert calls and found[0].tolist() == naive_topk(q, rows, 5)[1][0].tolist() == [
        199,
        198,
        197,
        196,
        195,
    ]


def test_dot_score_rows_use_their_norm_in_the_bound():
    rows = (unit_rows(1000, 16, seed=4) * torch.linspace(1, 5, 1000)[:, None]).half()
    matrix = SearchMatrix(rows)
    assert matrix.max_norm == pytest.approx(5, rel=1e-2)
    q = unit_rows(1, 16, seed=5)
    assert matrix.topk(q, 7)[1].tolist() == naive_topk(q, rows, 7)[1].tolist()


@pytest.mark.parametrize("n", [50, 640, 3000, 3007])  # fewer blocks than k; whole blocks; a tail
def test_top_of_scores_equals_a_full_top_k(n):
    scores = torch.randn(n, generator=torch.Generator().manual_seed(n))
    best, rows = dense_search.top_of_scores(scores, 10)
    expected = torch.topk(scores, 10)
    assert rows.tolist() == expected.indices.tolist() and torch.equal(best, expected.values)


def test_top_of_scores_finds_a_top_k_packed_in_one_block():
    scores = torch.zeros(64 * 20)
    scores[64 * 7 : 64 * 7 + 10] = torch.arange(1, 11, dtype=torch.float32)
    assert dense_search.top_of_scores(scores, 10)[1].tolist() == list(range(64 * 7 + 9, 64 * 7 - 1, -1))


@pytest.mark.parametrize("num_requests", [1, 2])
def test_large_matrices_use_the_compiled_kernel_and_equal_naive_search(monkeypatch, num_requests):
    monkeypatch.setattr(dense_search, "FUSED_MIN_ROWS", 2000)
    calls = []
    real = dense_search.fused_dots
    monkeypatch.setattr(dense_search, "fused_dots", lambda *a: calls.append(1) or real(*a))
    rows = unit_rows(3000, 24, seed=6).half()
    q = unit_rows(num_requests, 24, seed=7)
    scores, found = SearchMatrix(rows, max_norm=1.0).topk(q, 10)
    expected_scores, expected = naive_topk(q, rows, 10)
    assert len(calls) == num_requests and found.tolist() == expected.tolist()
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=0)
    assert dense_search._compiled not in (None, False)  # compiled here, not the eager fallback


def test_without_a_compiler_single_requests_fall_back_to_the_16_bit_kernel(monkeypatch, caplog):
    monkeypatch.setattr(dense_search, "FUSED_MIN_ROWS", 2000)
    monkeypatch.setattr(dense_search, "_compiled", None)

    def no_compiler(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return compiled

    monkeypatch.setattr(dense_search.torch, "compile", no_compiler)
    rows = unit_rows(3000, 24, seed=8).half()
    q = unit_rows(1, 24, seed=9)
    with caplog.at_level("WARNING"):
        found = SearchMatrix(rows, max_norm=1.0).topk(q, 10)[1]
        again = SearchMatrix(rows, max_norm=1.0).topk(q, 10)[1]
    assert found.tolist() == again.tolist() == naive_topk(q, rows, 10)[1].tolist()
    assert dense_search._compiled is False
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # warned once
    assert "No working C++ compiler" in caplog.records[0].message
