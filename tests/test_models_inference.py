"""Inference plumbing: precision contexts, length-sorted batching, atomic directory writes."""

import contextlib

import pytest
import torch

from melscribe_torch.models.inference import (
    atomic_directory,
    autocast_context,
    check_texts,
    run_length_sorted,
)

CPU = torch.device("cpu")


def test_fp32_is_a_null_context():
    assert isinstance(autocast_context(CPU, "fp32"), contextlib.nullcontext)


def test_bf16_autocasts_matmuls():
    with autocast_context(CPU, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_fp16_on_cpu_says_what_to_use_instead():
    with pytest.raises(ValueError, match="bf16"):
        autocast_context(CPU, "fp16")


def test_unknown_precision():
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        autocast_context(CPU, "int8")


def test_batches_run_longest_first_and_rows_come_back_in_input_order():
    items = ["bb", "a", "dddd", "ccc"]
    seen = []

    def batch_fn(batch):
        seen.append(batch)
        return torch.tensor([[float(len(item))] for item in batch])

    rows = run_length_sorted(
        items, [len(i) for i in items], batch_fn, batch_size=3, show_progress=False, desc="t"
    )
    assert seen == [["dddd", "ccc", "bb"], ["a"]]
    assert rows.squeeze(1).tolist() == [2.0, 1.0, 4.0, 3.0]


def test_atomic_directory_replaces_the_old_one(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .tmp / .old left


def test_atomic_directory_keeps_the_old_one_when_writing_fails(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("good")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "weights").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_check_texts_names_the_bad_index():
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        check_texts(["ok", 3])
    with pytest.raises(TypeError, match="single string"):
        check_texts("not a list")
