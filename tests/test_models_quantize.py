"""int8 dynamic quantisation of the encoder's linear layers (CPU serving option)."""

import pytest
import torch
from torch import nn

from melscribe_torch.models import BiEncoder
from melscribe_torch.models.quantize import quantize_encoder

TEXTS = ["an upbeat tropical track, steel drums", "calm piano", "steeldrum, joyful"]


def test_int8_replaces_every_linear_layer_and_keeps_the_embeddings_close(tiny_model_dir):
    fp32 = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    before = fp32.encode(TEXTS)
    int8 = quantize_encoder(BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu"), "int8")
    assert not any(type(m) is nn.Linear for m in int8.backbone.modules())
    after = int8.encode(TEXTS)
    assert after.shape == before.shape and after.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(before, after).min() > 0.9


def test_none_leaves_the_model_and_bad_schemes_are_refused(tiny_model_dir):
    model = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    assert quantize_encoder(model, "none") is model
    assert any(type(m) is nn.Linear for m in model.backbone.modules())
    with pytest.raises(ValueError, match="unknown quantization 'int4'; valid: none, int8"):
        quantize_encoder(model, "int4")
