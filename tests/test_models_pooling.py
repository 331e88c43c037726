"""Pooling: masked mean/max and first-token, checked against a naive per-text loop."""

import pytest
import torch

from melscribe_torch.models import POOLING_MODES, pool


def naive_pool(token_embeddings, attention_mask, mode):
    """One text at a time, real tokens only: the obvious definition."""
    rows = []
    for emb, mask in zip(token_embeddings, attention_mask):
        real = emb[mask.bool()]  # (T_real, H)
        rows.append({"mean": real.mean(0), "max": real.max(0).values, "cls": emb[0]}[mode])
    return torch.stack(rows)


@pytest.fixture
def batch():
    torch.manual_seed(0)
    token_embeddings = torch.randn(3, 5, 4)
    # padding positions hold large values: a pooling that ignores the mask would show it
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    token_embeddings[attention_mask == 0] = 100.0
    return token_embeddings, attention_mask


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_pool_matches_naive_loop(batch, mode):
    token_embeddings, attention_mask = batch
    expected = naive_pool(token_embeddings, attention_mask, mode)
    torch.testing.assert_close(pool(token_embeddings, attention_mask, mode), expected)


def test_mean_is_the_default(batch):
    torch.testing.assert_close(pool(*batch), pool(*batch, mode="mean"))


def test_cls_takes_the_first_token(batch):
    token_embeddings, attention_mask = batch
    assert torch.equal(pool(token_embeddings, attention_mask, "cls"), token_embeddings[:, 0])


def test_max_ignores_padding_even_when_all_real_tokens_are_negative():
    token_embeddings = torch.tensor([[[-5.0], [-3.0], [0.0]]])  # the padding 0.0 would win
    attention_mask = torch.tensor([[1, 1, 0]])
    assert pool(token_embeddings, attention_mask, "max").item() == -3.0


def test_all_padding_row_stays_finite_under_mean():
    pooled = pool(torch.randn(1, 3, 4), torch.zeros(1, 3, dtype=torch.long))
    assert torch.isfinite(pooled).all()


def test_unknown_mode_lists_the_valid_ones(batch):
    with pytest.raises(ValueError, match="mean, cls, max"):
        pool(*batch, mode="weightedmean")


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_low_precision_input_is_pooled_in_float32(batch, mode):
    token_embeddings, attention_mask = batch
    pooled = pool(token_embeddings.bfloat16(), attention_mask, mode)
    assert pooled.dtype == torch.float32
    expected = naive_pool(token_embeddings.bfloat16().float(), attention_mask, mode)
    torch.testing.assert_close(pooled, expected)


def test_under_autocast_the_output_is_float32(batch):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert pool(*batch).dtype == torch.float32
