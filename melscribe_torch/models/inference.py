"""Shared inference plumbing for the encoders: precision, length-sorted batching, atomic saving."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..integrity import write_directory_sums
from ..io import umask_mode
from .device import native_bf16, resolve_precision

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Below this many inputs a progress bar is noise (a test, a single query).
PROGRESS_THRESHOLD = 1000
# Texts tokenized at once to count tokens: bounds the memory of the id lists on big corpora.
TOKEN_COUNT_CHUNK = 8192

T = TypeVar("T")


def autocast_context(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[Any]:
    """Autocast for `precision` on `device`; a null context for fp32.

    Args:
        device: where the forward pass runs.
        precision: "fp32", "bf16", "fp16" or "auto" (bf16 where `device` runs it natively,
            else fp32). bf16 asked of a device that only emulates it runs, with one warning.

    Raises:
        ValueError: unknown precision, or fp16 on CPU (CPU fp16 kernels are slow and
            less accurate than bf16 there; use "bf16" or "fp32").
    """
    if precision not in (*PRECISIONS, "auto"):
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}, auto")
    precision = resolve_precision(precision, device)
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if dtype is torch.float16 and device.type == "cpu":
        raise ValueError("precision='fp16' needs a GPU; on CPU use precision='bf16' or 'fp32'")
    if dtype is torch.bfloat16 and not native_bf16(device):
        warn_emulated_bf16(device)
    return torch.autocast(device_type=device.type, dtype=dtype)


_warned_emulated: set[str] = set()


def warn_emulated_bf16(device: torch.device) -> None:
    """One warning per device type and process: bf16 runs, but emulated, many times slower."""
    if device.type in _warned_emulated:
        return
    _warned_emulated.add(device.type)
    log.warning(
        "precision bf16 on this %s is emulated (no native bf16 kernels) and runs several times "
        "slower than fp32; precision=auto or fp32 is faster here", device.type
    )


def training_attention(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Scaled-dot-product attention kernels for a training forward pass on `device`.

    On CPU, PyTorch picks its flash-attention kernel whenever attention dropout is off, and
    that kernel's backward pass is slow: with dropout 0 a bf16 MiniLM step took 1.31 s with
    it and 0.76 s with the math kernel (``torch.profiler``: 46% of the step in its
    backward). The math kernel is what runs anyway while dropout is on. GPUs keep
    PyTorch's choice.
    """
    if device.type != "cpu":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def token_counts(
    tokenizer: Any, first: Sequence[str], second: Sequence[str] | None = None, *, max_length: int
) -> list[int]:
    """Tokens per text (or per text pair), special tokens included, after truncation.

    Args:
        tokenizer: A Hugging Face tokenizer.
        first: Texts (or the first sides of pairs).
        second: The second sides of pairs; None for single texts.
        max_length: Truncation length, as the encoder tokenizes.
    """
    counts: list[int] = []
    for start in range(0, len(first), TOKEN_COUNT_CHUNK):
        end = start + TOKEN_COUNT_CHUNK
        pair = {} if second is None else {"text_pair": list(second[start:end])}
        counts += tokenizer(
            list(first[start:end]),
            **pair,
            truncation="longest_first",
            max_length=max_length,
            return_length=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["length"]
    return counts


def run_length_sorted(
    items: Sequence[T],
    lengths: Sequence[int],
    batch_fn: Callable[[list[T]], Tensor],
    *,
    batch_size: int,
    show_progress: bool | None,
    desc: str,
) -> Tensor:
    """Apply `batch_fn` to batches of `items` taken longest first, results in input order.

    Sorting by length (descending) keeps padding per batch small, and the longest batch runs
    first so an out-of-memory error shows up at once.

    Args:
        items: the inputs, at least one.
        lengths: tokens per item (``token_counts``). Characters are a poor proxy: on the MC
            test texts, batches of 64 sorted by characters (as sentence-transformers sorts)
            hold 1.25x the tokens they need, sorted by tokens 1.03x.
        batch_fn: maps a list of items to a tensor with one row per item.
        batch_size: items per batch.
        show_progress: a tqdm bar; None shows one above `PROGRESS_THRESHOLD` items.
        desc: the bar's label.

    Returns:
        The rows of all batches, row i for items[i].

    Shapes:
        (N, ...) for N items.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if show_progress is None:
        show_progress = len(items) > PROGRESS_THRESHOLD
    order = sorted(range(len(items)), key=lambda i: -lengths[i])
    outputs = []
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not show_progress):
        outputs.append(batch_fn([items[i] for i in order[start : start + batch_size]]))
    sorted_rows = torch.cat(outputs)
    rows = torch.empty_like(sorted_rows)
    rows[torch.tensor(order, device=rows.device)] = sorted_rows
    return rows


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write into; on success it replaces `path`.

    A crash while writing leaves the previous directory intact (and the temporary one,
    named `<path>.tmp-<pid>`, removed when the error propagates through here, or by the next
    run in the folder after a kill). Before it is moved into place the directory gets a
    ``SHA256SUMS`` of its files (checked when a model is loaded) and every file the umask's
    permissions (safetensors writes 0600 files, unreadable to a server running as another user).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for written in tmp.rglob("*"):
            if written.is_file():
                written.chmod(umask_mode())
        write_directory_sums(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # directories cannot be os.replace'd over a non-empty one: move the old one aside first
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def check_texts(texts: Sequence[str], what: str = "texts") -> None:
    """Raise a TypeError naming the first non-string entry (or a bare string for a list)."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got a single string; wrap it: [text]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] is {type(text).__name__}, expected str")
