"""Inference plumbing: precision contexts, length-sorted batching, atomic directory writes."""

import contextlib
import logging

import pytest
import torch

from melscribe_torch.models import device, inference
from melscribe_torch.models.inference import (
    atomic_directory,
    autocast_context,
    check_texts,
    run_length_sorted,
    token_counts,
    training_attention,
)

CPU = torch.device("cpu")


def test_fp32_is_a_null_context():
    assert isinstance(autocast_context(CPU, "fp32"), contextlib.nullcontext)


def test_bf16_autocasts_matmuls():
    with autocast_context(CPU, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_auto_autocasts_only_where_bf16_is_native(monkeypatch):
    monkeypatch.setattr(device, "native_bf16", lambda d: False)
    assert isinstance(autocast_context(CPU, "auto"), contextlib.nullcontext)
    monkeypatch.setattr(device, "native_bf16", lambda d: True)
    with autocast_context(CPU, "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_bf16_asked_of_a_cpu_that_emulates_it_runs_and_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(inference, "native_bf16", lambda d: False)
    monkeypatch.setattr(inference, "_warned_emulated", set())
    with caplog.at_level(logging.WARNING, logger=inference.__name__):
        for _ in range(2):
            with autocast_context(CPU, "bf16"):
                assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    [warning] = caplog.records
    assert "emulated" in warning.getMessage() and "auto" in warning.getMessage()


def test_fp16_on_cpu_says_what_to_use_instead():
    with pytest.raises(ValueError, match="bf16"):
        autocast_context(CPU, "fp16")


def test_unknown_precision():
    with pytest.raises(ValueError, match="fp32, bf16, fp16, auto"):
        autocast_context(CPU, "int8")


def test_training_attention_on_cpu_runs_the_math_kernel_only():
    # the CPU flash-attention kernel's backward is the slow one (see training_attention)
    assert torch.backends.cuda.flash_sdp_enabled()
    with training_attention(CPU):
        assert not torch.backends.cuda.flash_sdp_enabled()
        assert torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()


def test_training_attention_leaves_other_devices_to_pytorch():
    assert isinstance(training_attention(torch.device("cuda")), contextlib.nullcontext)


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


def test_token_counts_count_what_the_encoder_sees(tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer

    from melscribe_torch.models import inference

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["calm piano", "upbeat electronic dance track with heavy bass", "x"]
    expected = [len(tokenizer(t)["input_ids"]) for t in texts]
    monkeypatch.setattr(inference, "TOKEN_COUNT_CHUNK", 2)  # chunks join up
    assert token_counts(tokenizer, texts, max_length=64) == expected
    assert token_counts(tokenizer, texts, max_length=4) == [min(n, 4) for n in expected]
    pairs = token_counts(tokenizer, texts, ["guitar", "drums", "bass"], max_length=64)
    assert pairs == [len(tokenizer(t, d)["input_ids"]) for t, d in zip(texts, ["guitar", "drums", "bass"])]


def test_encode_batches_by_tokens_not_characters(tiny_model_dir, monkeypatch):
    """A long unknown word is one token; six short words are six: the words go first."""
    from melscribe_torch.models import BiEncoder, bi_encoder

    seen = []

    def spy(items, lengths, batch_fn, **kwargs):
        seen.append(dict(zip(items, lengths)))
        return run_length_sorted(items, lengths, batch_fn, **kwargs)

    monkeypatch.setattr(bi_encoder, "run_length_sorted", spy)
    encoder = BiEncoder.from_pretrained(tiny_model_dir)
    long_word, words = "ж" * 40, "calm piano jazz drums bass guitar"  # ж: not in the vocabulary
    encoder.encode([long_word, words], batch_size=1)
    assert len(long_word) > len(words) and seen[0][words] > seen[0][long_word]


def test_atomic_directory_replaces_the_old_one(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    # with the checksums of what was written (integrity.py)
    assert sorted(p.name for p in target.iterdir()) == ["SHA256SUMS", "new.txt"]
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
