"""The bi-encoder training loop (GPL stage 5), plain PyTorch, readable top to bottom.

Per optimizer step: ``grad_accum`` micro-batches of (request, positive, negative, margin),
each embedded by the one shared encoder; the loss (``losses.WeightedSum``, built from the
``loss`` config group) scores them, and says whether it reads the negatives and the
teacher's margins. Then: unscale → clip → step → ``zero_grad(set_to_none=True)``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..io import atomic_write_text
from ..losses import StudentBatch, WeightedSum
from ..models.inference import autocast_context, training_attention
from ..settings import OptimSettings, TrainSettings
from .batches import TrainingExample, batch_indices
from .checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from .distributed import average_gradients, barrier, broadcast_parameters
from .optimizer import build_adamw, decay_groups
from .schedule import lr_at, warmup_for
from .weight_average import WeightAverage

log = logging.getLogger(__name__)


@dataclass
class TrainingFiles:
    """Where the loop writes; None: not written (a test, a benchmark).

    Attributes:
        checkpoint: Saved every ``train.checkpoint_every`` steps and at the end; resumed from
            when it exists (unless ``train.resume_from`` names another).
        metrics: ``metrics.jsonl``: one flat dict per logged step and per validation.
        best: ``model.save`` target when the selected validation metric improves.
    """

    checkpoint: Path | None = None
    metrics: Path | None = None
    best: Path | None = None


def _tokenize(
    model, texts: Sequence[str], max_length: int, device: torch.device
) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in model.tokenize(texts, max_length).items()}


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the probability of every ``nn.Dropout`` in ``model``.

    Transformers' attention reads its dropout probability from the module at each forward
    (SDPA and eager alike), so this covers attention weights as well as hidden states. On
    CPU the dropout masks cost about 30% of a MiniLM training step (``torch.profiler``:
    ``aten::bernoulli_``), so ``0.0`` is also a speed setting.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def count_truncated(model, texts: Sequence[str], max_length: int) -> int:
    """How many distinct texts have more than ``max_length`` tokens (they get truncated)."""
    distinct = list(dict.fromkeys(texts))
    lengths = [len(ids) for ids in model.tokenizer(distinct, add_special_tokens=True)["input_ids"]]
    return sum(length > max_length for length in lengths)


def _append_jsonl(path: Path | None, row: dict) -> None:
    if path is not None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def _drop_rows_after(path: Path | None, step: int) -> None:
    """Forget log rows written after the step training starts from (they are about to be redone)."""
    if path is None or not path.is_file():
        return
    rows = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line).get("step", 0) <= step
    ]
    atomic_write_text(path, "".join(line + "\n" for line in rows))


def _as_metrics(value: float | Mapping[str, float]) -> dict[str, float]:
    return dict(value) if isinstance(value, Mapping) else {"valid_recall@10": value}


def train_bi_encoder(
    model,
    examples: Sequence[TrainingExample],
    loss_fn: WeightedSum,
    train: TrainSettings,
    optim: OptimSettings,
    *,
    seed: int,
    files: TrainingFiles | None = None,
    validate: Callable[[Any], float | Mapping[str, float]] | None = None,
    config: dict | None = None,
    known_positives: Mapping[str, Collection[str]] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, Any]:
    """Train ``model`` (a ``BiEncoder``) in place.

    Args:
        model: The student, on its training device.
        examples: (request, positive, negative, margin) tuples; margin None without a teacher.
        loss_fn: The objective (``losses.build_loss``).
        train: Steps, batches, precision, dropout, truncation, warmup, checkpoint, validation
            and log cadence, ``stop_after``, ``select_metric`` and the weight average (the
            ``train`` config group; ``conf/train/default.yaml`` says what each does).
            ``select_metric`` ``ema_<metric>`` follows the weight average's score and saves the
            averaged weights; the model then ends holding the average.
        optim: AdamW's learning rate, weight decay (on biases and norm weights too, or not:
            ``optimizer.decay_groups``) and gradient clipping (the ``optim`` config group).
        seed: Seeds the data order and dropout; a resumed run keeps the checkpoint's seed.
        files: Checkpoint, metrics log and best model paths.
        validate: model -> validation metric (higher is better), or a dict of named metrics,
            run every ``train.eval_every`` steps (0: only at the end) and at the end.
        config: Stored in the checkpoint; a resume warns when it differs.
        known_positives: Request text -> its positive texts (``known_positive_texts``);
            needed when ``loss_fn.needs_known_positives``.
        rank, world_size: This process under DDP (gradients averaged over ranks).

    Returns:
        ``{"step", "best_metric", "last_metric", "last_metrics", "select_metric", "train_loss",
        "examples_per_s", "truncated_requests", "resumed_from"}``.
    """
    steps, batch_size, grad_accum = train.steps, train.batch_size, train.grad_accum
    precision, max_query_len, max_doc_len = train.precision, train.max_query_len, train.max_doc_len
    select_metric, eval_every, log_every = train.select_metric, train.eval_every, train.log_every
    lr, warmup_steps = optim.lr, warmup_for(train.warmup, steps, train.warmup_max_fraction)
    files = files or TrainingFiles()
    best_dir = files.best
    if not examples:
        raise ValueError("no training examples: the training data is empty")
    if steps < 1 or grad_accum < 1 or batch_size < 1:
        raise ValueError(
            f"steps, grad_accum and batch_size must be >= 1, got {steps}, {grad_accum}, {batch_size}"
        )
    if loss_fn.needs_known_positives and known_positives is None:
        raise ValueError("the loss excludes known positives from in-batch negatives: pass known_positives")
    if loss_fn.needs_margins and any(e[3] is None for e in examples):
        raise ValueError("the loss needs the teacher's margins, and the training tuples have none")
    device = model.device
    if train.dropout is not None:
        set_dropout(model, train.dropout)
    checkpoint_path = Path(files.checkpoint) if files.checkpoint else None
    metrics_path = Path(files.metrics) if files.metrics and rank == 0 else None
    optimizer = build_adamw(
        decay_groups(model, optim.weight_decay, optim.decay_bias_and_norm), lr, optim.weight_decay, device
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    selects_average = select_metric.startswith("ema_")
    if selects_average and train.ema_decay is None:
        raise ValueError(f"train.select_metric {select_metric!r} needs a weight average: set train.ema_decay")

    step, best_metric, resumed_from = 0, None, None
    resume = (
        Path(train.resume_from)
        if train.resume_from
        else checkpoint_path
        if checkpoint_path and checkpoint_path.is_file()
        else None
    )
    if resume is not None:
        state = load_checkpoint(resume, model)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, best_metric, seed = state["step"], state["best_metric"], state["seed"]
        set_rng_states(state["rng"])
        if config is not None and state.get("config") != config:
            warnings.warn(
                f"config differs from the one in checkpoint {resume}; continuing with the new one",
                stacklevel=2,
            )
        resumed_from = str(resume)
        log.info("resumed from %s at step %d", resume, step)
    else:
        torch.manual_seed(seed)
        broadcast_parameters(model)
    if rank == 0:  # rows a killed process logged after its last checkpoint (or before any) go
        _drop_rows_after(metrics_path, step)
    weight_average = WeightAverage(model, train.ema_decay) if train.ema_decay is not None else None
    if weight_average is not None and resume is not None:
        if "ema" in state:
            weight_average.load_state_dict(state["ema"])
        else:
            warnings.warn(
                f"checkpoint {resume} holds no weight average; it restarts from the resumed weights",
                stacklevel=2,
            )

    truncated = count_truncated(model, [e[0] for e in examples], max_query_len)
    if rank == 0:
        log.info(
            "%d distinct request(s) are longer than %d tokens and get truncated",
            truncated,
            max_query_len,
        )

    def checkpoint() -> None:
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "micro_batch": step * grad_accum,
                    "best_metric": best_metric,
                    "seed": seed,
                    "config": config,
                    "rng": rng_states(),
                    **({"ema": weight_average.state_dict()} if weight_average else {}),
                },
            )
        barrier()

    last_metrics: dict[str, float] = {}

    def run_validation() -> None:
        nonlocal best_metric
        if validate is None:
            return
        metrics = _as_metrics(validate(model))  # every rank computes it: they must agree on `best`
        if weight_average is not None:
            with weight_average.swapped_in(model):
                metrics.update({f"ema_{name}": value for name, value in _as_metrics(validate(model)).items()})
        if select_metric not in metrics:
            raise ValueError(
                f"train.select_metric {select_metric!r} is not a validation metric; "
                f"valid: {', '.join(metrics)}"
            )
        metric = metrics[select_metric]
        last_metrics.clear()
        last_metrics.update(metrics)
        improved = best_metric is None or metric > best_metric
        if improved:
            best_metric = metric
            if best_dir is not None and rank == 0:
                with weight_average.swapped_in(model) if selects_average else nullcontext():
                    model.save(best_dir)
        _append_jsonl(metrics_path, {"step": step, **metrics, "best": best_metric})
        log.info(
            "step %d: validation %s (best %s %.4f)",
            step,
            ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
            select_metric,
            best_metric,
        )

    model.train()
    losses, seen, tic = [], 0, time.perf_counter()
    end = steps if train.stop_after is None else min(steps, train.stop_after)
    bar = tqdm(total=steps, initial=step, desc="train", disable=rank != 0 or steps - step < 20)
    while step < end:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, warmup_steps, steps)
        step_loss = 0.0
        for micro in range(grad_accum):
            batch = [
                examples[i]
                for i in batch_indices(
                    step * grad_accum + micro, len(examples), batch_size, seed, rank, world_size
                )
            ]
            requests, positives, negatives, margins = zip(*batch)
            with autocast_context(device, precision), training_attention(device):
                q_emb = model(**_tokenize(model, requests, max_query_len, device))
                p_emb = model(**_tokenize(model, positives, max_doc_len, device))
                n_emb = (
                    model(**_tokenize(model, negatives, max_doc_len, device))
                    if loss_fn.needs_negatives
                    else None  # a third of the step's compute saved
                )
            loss, _ = loss_fn(
                StudentBatch(
                    requests,
                    positives,
                    q_emb.float(),
                    p_emb.float(),
                    n_emb.float() if n_emb is not None else None,
                    torch.tensor(margins, dtype=torch.float32, device=device)
                    if loss_fn.needs_margins
                    else None,
                    known_positives if loss_fn.needs_known_positives else None,
                )
            )
            loss = loss / grad_accum  # the step's gradient is the mean over its micro-batches
            scaler.scale(loss).backward()
            step_loss += loss.item()
        average_gradients(model)
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if weight_average is not None:
            weight_average.update(model)
        step += 1
        losses.append(step_loss)
        seen += batch_size * grad_accum * world_size
        if not math.isfinite(step_loss):
            raise FloatingPointError(
                f"loss is {step_loss} at step {step}: lower the learning rate or use fp32"
            )
        bar.update(1)
        if step % log_every == 0 or step == end:
            elapsed = time.perf_counter() - tic
            row = {
                "step": step,
                "loss": step_loss,
                "lr": optimizer.param_groups[0]["lr"],
                "grad_norm": grad_norm,
                "examples_per_s": seen / elapsed,
            }
            _append_jsonl(metrics_path, row)
            bar.set_postfix(
                loss=f"{step_loss:.4f}", lr=f"{row['lr']:.2e}", ex_s=f"{row['examples_per_s']:.1f}"
            )
        if eval_every and step % eval_every == 0 and step < steps:
            run_validation()
            model.train()
        if train.checkpoint_every and step % train.checkpoint_every == 0:
            checkpoint()
    bar.close()
    elapsed = time.perf_counter() - tic
    if step == steps:
        run_validation()
    checkpoint()
    if step == steps and selects_average:
        weight_average.copy_to(model)
    model.eval()
    return {
        "step": step,
        "best_metric": best_metric,
        "last_metric": last_metrics.get(select_metric),
        "last_metrics": dict(last_metrics),
        "select_metric": select_metric,
        "train_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None,
        "examples_per_s": seen / elapsed if elapsed > 0 else None,
        "truncated_requests": truncated,
        "resumed_from": resumed_from,
    }
