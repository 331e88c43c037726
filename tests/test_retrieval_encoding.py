import torch
from recommend_fakes import KeywordEncoder

from melscribe_torch.retrieval import EmbeddingCache


def test_each_text_is_encoded_once_in_order_of_first_appearance():
    encoder = KeywordEncoder()
    cache = EmbeddingCache(encoder)
    first = cache.encode(["sad piano", "rock", "sad piano"])
    again = cache.encode(["jazz", "rock"])
    assert encoder.encoded == ["sad piano", "rock", "jazz"]
    torch.testing.assert_close(again[1], first[1])
    torch.testing.assert_close(first[0], first[2])


def test_normalize_gives_unit_rows_and_off_keeps_the_encoder_scale():
    texts = ["sad piano piano", "rock"]
    unit = EmbeddingCache(KeywordEncoder()).encode(texts)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(2))
    raw = EmbeddingCache(KeywordEncoder(), normalize=False).encode(texts)
    torch.testing.assert_close(raw, KeywordEncoder().encode(texts))


def test_no_texts_give_an_empty_matrix_without_calling_the_encoder():
    encoder = KeywordEncoder()
    assert EmbeddingCache(encoder).encode([]).shape == (0, 0)
    assert encoder.encoded == []
