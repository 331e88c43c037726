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
