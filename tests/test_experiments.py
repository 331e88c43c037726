"""The `+experiment=` presets: the paper's recipe runs offline, zero-shot keeps MusicCaps out,
zero-shot-gpl is the measured distillation recipe and needs its teacher given."""

from __future__ import annotations

import csv
import re
from dataclasses import asdict

import pytest
from training_fixtures import compose_train, smoke_overrides, write_tiny_data

from melscribe_torch.cli import train
from melscribe_torch.models import ModelNotFoundError
from melscribe_torch.models.backbone import check_model_available
from melscribe_torch.pipeline import prepare_data
from melscribe_torch.pipeline.stages import check_teacher_models
from melscribe_torch.run_folder import read_training_pairs
from melscribe_torch.settings import settings_from_config
from melscribe_torch.training.run_guard import flatten


def test_the_paper_recipe_mines_and_labels_with_what_exists_offline():
    cfg = compose_train(["+experiment=paper"])
    aliases = train.model_aliases()
    for name in cfg.mining.retrievers:
        if name not in ("tfidf", "bm25"):
            check_model_available(aliases.get(name, {"name_or_path": name})["name_or_path"], name)
    assert cfg.train.label_precision == "fp32"  # bf16 rounds margins to coarse steps
    assert list(cfg.loss) == ["margin_mse"]  # the paper's loss alone


def test_a_missing_mining_model_names_the_mining_setting(tmp_path, tiny_model_dir):
    root = write_tiny_data(tmp_path / "data")
    missing = tmp_path / "no-such-model"
    cfg = compose_train(
        smoke_overrides(tiny_model_dir, root, f"mining.retrievers=[tfidf,{missing}]")
    )
    with pytest.raises(ModelNotFoundError, match=r"^mining\.retrievers .*does not exist"):
        train.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "hard-negatives.jsonl").exists()


def test_a_missing_teacher_model_names_the_teacher_setting(tmp_path, tiny_model_dir):
    root = write_tiny_data(tmp_path / "data")
    cfg = compose_train(
        smoke_overrides(tiny_model_dir, root, f"teacher.model={tmp_path / 'no-such-teacher'}")
    )
    with pytest.raises(ModelNotFoundError, match=r"^teacher\.model .*does not exist"):
        train.run(cfg, tmp_path / "run")


def musiccaps_clip_ids(data_root) -> set[str]:
    with open(data_root / "MusicCaps" / "musiccaps-public.csv", newline="") as f:
        return {row["ytid"] for row in csv.DictReader(f)}


def training_clip_ids(data_root, tmp_path, overrides: list[str]) -> set[str]:
    cfg = compose_train([*overrides, f"data.root={data_root}"])
    prepare_data(tmp_path, settings_from_config(cfg).data)
    # request ids are "<clip id>_<n>"
    return {qid.rsplit("_", 1)[0] for qid in read_training_pairs(tmp_path).queries}


def test_zero_shot_keeps_every_musiccaps_clip_out_of_the_students_data(data_root, tmp_path):
    musiccaps = musiccaps_clip_ids(data_root)
    zero_shot = training_clip_ids(data_root, tmp_path / "zero-shot", ["+experiment=zero-shot"])
    assert len(zero_shot) > 1000 and not zero_shot & musiccaps
    default = training_clip_ids(data_root, tmp_path / "default", [])
    assert default & musiccaps  # the default trains on MusicCaps clips: the check can fail


# The zero-shot distillation run of docs/distillation.md (rule 18), as its command line gave it.
RULE_18 = [
    "+experiment=zero-shot",
    "train.steps=800",
    "loss=margin_kl+mnrl",
    "loss.margin_kl.temperature=3",
    "ensemble.dense_weight=40",
    "ensemble.tfidf_weight=40",
    "ensemble.max_ngram=3",
]
GIVEN_MEMBERS = ["teacher.path=teacher-run/cross-encoder", "ensemble.dense=default-run/best"]


def flat_settings(overrides: list[str]) -> dict:
    return flatten(asdict(settings_from_config(compose_train(["data.root=unused", *overrides]))))


def test_the_zero_shot_gpl_preset_is_the_measured_recipe():
    preset = flat_settings(["+experiment=zero-shot-gpl", *GIVEN_MEMBERS])
    measured = flat_settings([*RULE_18, *GIVEN_MEMBERS])
    assert preset.pop("teacher.require_path") and not measured.pop("teacher.require_path")
    assert preset == measured
    assert preset["data.train_sources"] == ["conceptcaps"]


@pytest.mark.parametrize(
    "teacher_given, setting", [(False, "teacher.path"), (True, "ensemble.dense_weight")]
)
def test_the_zero_shot_gpl_preset_names_the_member_it_was_not_given(
    teacher_given, setting, tiny_model_dir
):
    given = [f"teacher.path={tiny_model_dir}"] if teacher_given else []
    settings = settings_from_config(
        compose_train(["data.root=unused", "+experiment=zero-shot-gpl", *given])
    )
    with pytest.raises(ValueError, match=rf"^{re.escape(setting)}\b"):
        check_teacher_models(settings.teacher, settings.ensemble, train.model_aliases())
