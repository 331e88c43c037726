"""CrossEncoder: one relevance logit per (request, descriptor set) pair."""

import copy
import json
import shutil

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

from melscribe_torch.models import CrossEncoder
from melscribe_torch.models.backbone import load_backbone

# conftest's tiny vocabulary maps "want" and "with" past its embedding table: avoid them.
PAIRS = [
    ("upbeat tropical music", "steeldrum, joyful"),
    ("calm piano for the evening", "soft piano, slow tempo, amateur recording, low quality"),
    ("something like jazz", "jazz, bass, drums"),
    ("upbeat tropical music", "sad vocal, slow"),
]


@pytest.fixture(scope="module")
def _loaded(tiny_model_dir):
    torch.manual_seed(0)
    return CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture
def model(_loaded):
    return copy.deepcopy(_loaded)


@pytest.fixture(scope="module")
def sequence_classification_dir(tiny_model_dir, tmp_path_factory):
    """A Hugging Face BertForSequenceClassification (num_labels=1), as sentence-transformers saves."""
    path = tmp_path_factory.mktemp("seq-cls")
    torch.manual_seed(1)
    config = BertConfig.from_pretrained(tiny_model_dir, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return path


def test_forward_gives_one_logit_per_pair(model):
    queries, documents = zip(*PAIRS)
    assert model(**model.tokenize_pairs(queries, documents)).shape == (4,)


def test_predict_keeps_the_input_order(model):
    scores = model.predict(PAIRS, batch_size=2)
    assert scores.shape == (4,) and scores.dtype == torch.float32
    one_by_one = torch.cat([model.predict([pair]) for pair in PAIRS])
    torch.testing.assert_close(scores, one_by_one, atol=1e-5, rtol=1e-5)


def test_bf16_predict_is_close(model):
    fp32 = model.predict(PAIRS)
    torch.testing.assert_close(model.predict(PAIRS, precision="bf16"), fp32, atol=0.05, rtol=0.05)


def test_predict_validates_its_input(model):
    assert model.predict([]).shape == (0,)
    with pytest.raises(TypeError, match=r"pairs\[1\]"):
        model.predict([PAIRS[0], "just a string"])
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        model.predict([("query", 3)])
    with pytest.raises(ValueError, match="one per pair"):
        model.tokenize_pairs(["a", "b"], ["c"])


def test_pairs_are_truncated_to_max_length(model):
    model.max_length = 16
    features = model.tokenize_pairs(["calm piano"], ["soft piano, slow tempo, " * 10])
    assert features["input_ids"].shape == (1, 16)


def test_a_new_head_follows_the_callers_seed(tiny_model_dir):
    heads = []
    for _ in range(2):
        torch.manual_seed(123)
        model = CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
        heads.append(model.backbone.classifier.weight)
    assert torch.equal(*heads)


def test_a_new_head_keeps_the_encoders_weights(tiny_model_dir):
    encoder = BertModel.from_pretrained(tiny_model_dir)
    model = CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    assert type(model.backbone).__name__ == "BertForSequenceClassification"
    for name, weight in encoder.state_dict().items():
        assert torch.equal(model.backbone.bert.state_dict()[name], weight), name


def test_save_then_load_gives_identical_scores(model, tmp_path):
    model.max_length = 48
    model.save(tmp_path / "ce")
    config = json.loads((tmp_path / "ce" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert len(config["id2label"]) == 1  # num_labels=1: one relevance logit
    assert not (tmp_path / "ce" / "cross_encoder_head.safetensors").exists()
    loaded = CrossEncoder.from_pretrained(str(tmp_path / "ce"), device="cpu")
    assert loaded.max_length == 48
    assert torch.equal(loaded.predict(PAIRS), model.predict(PAIRS))


def test_the_earlier_first_token_layout_still_loads_and_saves(tiny_model_dir, tmp_path):
    backbone, tokenizer = load_backbone(str(tiny_model_dir))
    torch.manual_seed(0)
    earlier = CrossEncoder(backbone, tokenizer, max_length=48, first_token_head=True)
    earlier.save(tmp_path / "ce")
    assert (tmp_path / "ce" / "cross_encoder_head.safetensors").is_file()
    loaded = CrossEncoder.from_pretrained(str(tmp_path / "ce"), device="cpu")
    assert loaded.head is not None
    assert torch.equal(loaded.predict(PAIRS), earlier.predict(PAIRS))


def test_sequence_classification_checkpoint_gives_the_raw_hf_logits(sequence_classification_dir):
    model = CrossEncoder.from_pretrained(str(sequence_classification_dir), device="cpu")
    assert model.head is None  # the checkpoint's own classifier is used

    hf_model = BertForSequenceClassification.from_pretrained(sequence_classification_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(sequence_classification_dir)
    queries, documents = zip(*PAIRS)
    with torch.no_grad():
        features = tokenizer(list(queries), list(documents), padding=True, return_tensors="pt")
        expected = hf_model(**features).logits.squeeze(-1)
    torch.testing.assert_close(model.predict(PAIRS), expected, atol=1e-5, rtol=1e-5)


def test_sequence_classification_round_trip(sequence_classification_dir, tmp_path):
    model = CrossEncoder.from_pretrained(str(sequence_classification_dir), device="cpu")
    model.save(tmp_path / "ce")
    loaded = CrossEncoder.from_pretrained(str(tmp_path / "ce"), device="cpu")
    assert loaded.head is None
    assert torch.equal(loaded.predict(PAIRS), model.predict(PAIRS))


def test_more_than_one_label_is_refused(tiny_model_dir, tmp_path):
    config = BertConfig.from_pretrained(tiny_model_dir, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, tmp_path)
    with pytest.raises(ValueError, match="num_labels=1"):
        CrossEncoder.from_pretrained(str(tmp_path), device="cpu")


# A pair longer than the model's max_length, so that both libraries must truncate alike.
LONG_PAIR = ("calm piano for the evening " * 6, "soft piano, slow tempo, amateur recording, " * 8)


def test_sentence_transformers_reads_our_teacher_with_our_scores(model, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    model.max_length = 40
    with torch.no_grad():  # a head that is not near zero, so the activation would show
        model.backbone.classifier.bias.fill_(1.5)
    model.save(tmp_path / "ce")
    theirs = st.CrossEncoder(str(tmp_path / "ce"), device="cpu")
    pairs = [*PAIRS, LONG_PAIR]
    ours = model.predict(pairs)
    assert (ours.abs() > 1).any()  # a sigmoid would map these into (0, 1)
    their_scores = torch.as_tensor(theirs.predict(pairs, convert_to_numpy=True))
    assert (their_scores - ours).abs().max() <= 1e-4


def test_a_sentence_transformers_cross_encoder_loads_with_its_head(tiny_model_dir, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    torch.manual_seed(5)
    theirs = st.CrossEncoder(
        str(tiny_model_dir), num_labels=1, activation_fn=torch.nn.Identity(), device="cpu"
    )
    theirs.save(str(tmp_path / "theirs"))
    ours = CrossEncoder.from_pretrained(str(tmp_path / "theirs"), device="cpu")
    their_scores = torch.as_tensor(theirs.predict(PAIRS, convert_to_numpy=True))
    assert (ours.predict(PAIRS) - their_scores).abs().max() <= 1e-4
