"""Short model names: one resolution, from the model/ config group, for every entry point."""

import yaml

from melscribe_torch.models.aliases import MODEL_CONF_DIR, load_bi_encoder, load_model_aliases, model_spec


def test_a_short_name_stands_for_its_model_yaml_and_any_other_name_for_itself():
    assert {"minilm-l6", "bert-base"} <= set(load_model_aliases())
    assert model_spec("minilm-l6") == yaml.safe_load((MODEL_CONF_DIR / "minilm-l6.yaml").read_text())
    assert model_spec("outputs/train/run/best") == {"name_or_path": "outputs/train/run/best"}
    assert model_spec("mine", {"mine": {"name_or_path": "elsewhere"}}) == {"name_or_path": "elsewhere"}
    assert model_spec("minilm-l6", {}) == {"name_or_path": "minilm-l6"}  # the aliases given are the only ones


def test_a_short_name_loads_with_its_pooling_length_and_normalisation(tiny_model_dir):
    aliases = {"tiny": {"name_or_path": str(tiny_model_dir), "pooling": "cls", "max_length": 12, "normalize": False}}
    encoder = load_bi_encoder("tiny", aliases, device="cpu")
    assert (encoder.pooling, encoder.max_length, encoder.normalize) == ("cls", 12, False)
    plain = load_bi_encoder(str(tiny_model_dir), aliases, device="cpu")  # a directory: its own settings
    assert (plain.pooling, plain.max_length) != ("cls", 12)
