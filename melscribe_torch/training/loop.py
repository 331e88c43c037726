"""The bi-encoder training loop (GPL stage 5), plain PyTorch, readable top to bottom.

Per optimizer step: ``grad_accum`` micro-batches of (request, positive, negative, margin),
each embedded by the one shared encoder and scored by dot product (or cosine); the loss
is MarginMSE on (q·p − q·n) against the teacher margin, in-batch negatives (MNRL), or a
weighted sum of both. Then: unscale → clip → step → ``zero_grad(set_to_none=True)``.
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
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.descriptors import describes
from ..io import atomic_write_text
from ..losses import MarginMSELoss, MultipleNegativesRankingLoss
from ..models.inference import autocast_context, training_attention
from .batches import TrainingExample, batch_indices
from .checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from .distributed import average_gradients, barrier, broadcast_parameters
from .optimizer import build_adamw, decay_groups
from .schedule import lr_at
from .weight_average import WeightAverage

log = logging.getLogger(__name__)

LOSSES = ("margin_mse", "mnrl", "margin_mse+mnrl")


class StudentLoss(nn.Module):
    """Weighted sum of MarginMSE and in-batch negatives on the student's embeddings.

    Args:
        margin_mse_weight: Weight of MarginMSE on (q·p − q·n) vs the teacher margin (the paper: 1).
        mnrl_weight: Weight of MNRL with groups (positive, hard negative), G = 2.
        mnrl_hard_negatives: False: MNRL sees only the batch's positives (G = 1); the mined
            negatives, some of which are unlabelled positives, then only feed MarginMSE.
        similarity: "dot" (the paper) or "cos" scores for MarginMSE.
        mnrl_scale: Inverse temperature of MNRL.
        mnrl_similarity: "cos" or "dot" for MNRL.
        mnrl_symmetric: MNRL also ranks the batch's requests for each positive.
        mnrl_exclude_known_positives: Another request's positive that is also a positive of
            this request is not one of its in-batch negatives (the training loop then needs
            the relevance judgements, ``known_positives``).
        mnrl_exclude_described: Another request's positive whose every descriptor this request
            names (``data.descriptors.describes``: the sampling would have made it a positive) is not one
            of its in-batch negatives: about 6 of the 992 negatives of a batch of 32.

    Shapes:
        q_emb, p_emb, n_emb: (B, H) (n_emb may be None when ``uses_negatives`` is False);
        margins: (B,); exclude: optional (B, B) bool, True where positive j is also a
        positive of request i, or described by it (masked out of MNRL's negatives) -> loss ()
        and a dict of float parts (``in_batch_exclusions`` builds ``exclude``).
    """

    def __init__(
        self,
        margin_mse_weight: float = 1.0,
        mnrl_weight: float = 0.0,
        similarity: str = "dot",
        mnrl_scale: float = 20.0,
        mnrl_similarity: str = "cos",
        mnrl_hard_negatives: bool = True,
        mnrl_symmetric: bool = False,
        mnrl_exclude_known_positives: bool = False,
        mnrl_exclude_described: bool = False,
    ) -> None:
        super().__init__()
        if similarity not in ("dot", "cos"):
            raise ValueError(f"unknown similarity {similarity!r}; valid: dot, cos")
        if margin_mse_weight <= 0 and mnrl_weight <= 0:
            raise ValueError("at least one loss weight must be > 0")
        self.margin_mse_weight, self.mnrl_weight, self.similarity = (
            margin_mse_weight,
            mnrl_weight,
            similarity,
        )
        self.mnrl_hard_negatives = mnrl_hard_negatives
        self.exclude_known_positives = mnrl_weight > 0 and mnrl_exclude_known_positives
        self.exclude_described = mnrl_weight > 0 and mnrl_exclude_described
        self.margin_mse = MarginMSELoss()
        self.mnrl = MultipleNegativesRankingLoss(
            scale=mnrl_scale, similarity=mnrl_similarity, symmetric=mnrl_symmetric
        )

    @property
    def uses_negatives(self) -> bool:
        return self.margin_mse_weight > 0 or (self.mnrl_weight > 0 and self.mnrl_hard_negatives)

    def forward(
        self,
        q_emb: Tensor,
        p_emb: Tensor,
        n_emb: Tensor | None,
        margins: Tensor,
        exclude: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        if n_emb is None and self.uses_negatives:
            raise ValueError("this loss needs the hard negatives' embeddings")
        q_emb, p_emb = q_emb.float(), p_emb.float()
        n_emb = n_emb.float() if n_emb is not None else None
        loss = q_emb.new_zeros(())
        parts = {}
        if self.margin_mse_weight > 0:
            q, p, n = (
                (F.normalize(e, dim=-1) for e in (q_emb, p_emb, n_emb))
                if self.similarity == "cos"
                else (q_emb, p_emb, n_emb)
            )
            part = self.margin_mse((q * p).sum(-1), (q * n).sum(-1), margins)
            loss = loss + self.margin_mse_weight * part
            parts["margin_mse"] = part.item()
        if self.mnrl_weight > 0:
            documents, columns = p_emb, exclude
            if self.mnrl_hard_negatives:
                documents = torch.stack([p_emb, n_emb], dim=1).flatten(0, 1)  # (2B, H): p0, n0, p1, n1, ...
                if exclude is not None:  # a mined negative is never masked
                    columns = torch.stack([exclude, torch.zeros_like(exclude)], dim=2).flatten(1, 2)
            part = self.mnrl(q_emb, documents, columns)
            loss = loss + self.mnrl_weight * part
            parts["mnrl"] = part.item()
        return loss, parts


def in_batch_exclusions(
    loss_fn: StudentLoss,
    requests: Sequence[str],
    positives: Sequence[str],
    known_positives: Mapping[str, Collection[str]] | None,
    device: torch.device | str = "cpu",
) -> Tensor | None:
    """(B, B) bool: True where positive j must not be a negative of request i; None: no mask.

    Positive j is masked for request i when it is a known positive of i
    (``loss_fn.exclude_known_positives``) or when i names every descriptor of it
    (``loss_fn.exclude_described``). The diagonal is the loss's target and never masked there.
    """
    if not (loss_fn.exclude_known_positives or loss_fn.exclude_described):
        return None
    rows = []
    for request in requests:
        known = known_positives.get(request, ()) if loss_fn.exclude_known_positives else ()
        rows.append(
            [p in known or (loss_fn.exclude_described and describes(p, request)) for p in positives]
        )
    return torch.tensor(rows, dtype=torch.bool, device=device)


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
    *,
    steps: int,
    batch_size: int,
    loss_fn: StudentLoss,
    grad_accum: int = 1,
    lr: float = 2e-5,
    weight_decay: float = 0.01,
    decay_bias_and_norm: bool = True,
    warmup_steps: int = 1000,
    max_grad_norm: float = 1.0,
    precision: str = "fp32",
    dropout: float | None = None,
    max_query_len: int = 64,
    max_doc_len: int = 256,
    seed: int = 0,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    resume_from: str | Path | None = None,
    validate: Callable[[Any], float | Mapping[str, float]] | None = None,
    select_metric: str = "valid_recall@10",
    eval_every: int = 0,
    best_dir: str | Path | None = None,
    metrics_path: str | Path | None = None,
    log_every: int = 10,
    stop_after: int | None = None,
    config: dict | None = None,
    rank: int = 0,
    world_size: int = 1,
    known_positives: Mapping[str, Collection[str]] | None = None,
    ema_decay: float | None = None,
) -> dict[str, Any]:
    """Train ``model`` (a ``BiEncoder``) in place.

    Args:
        model: The student, on its training device.
        examples: (request, positive, negative, margin) tuples.
        steps: Total optimizer steps of the run (the schedule decays to 0 there).
        batch_size: Examples per micro-batch and rank.
        loss_fn: The objective.
        grad_accum: Micro-batches per optimizer step.
        lr, weight_decay: AdamW settings.
        decay_bias_and_norm: False exempts biases and norm weights from weight decay
            (``optimizer.decay_groups``).
        warmup_steps: Linear warmup length (already clamped for short runs, see ``warmup_for``).
        max_grad_norm: Gradient clipping threshold.
        precision: "fp32", "bf16" or "fp16" (GPU; with a GradScaler) autocast.
        dropout: Probability of every dropout in the student (hidden states and attention
            weights); None keeps the backbone's own (0.1 for BERT-like models).
        max_query_len, max_doc_len: Truncation of requests / descriptor sets, in tokens.
        seed: Seeds the data order and dropout; a resumed run keeps the checkpoint's seed.
        checkpoint_path: Where to save (and look for) the checkpoint; None: no checkpoints.
        checkpoint_every: Save every N steps (and at the end); 0: only at the end.
        resume_from: An explicit checkpoint to resume from (else ``checkpoint_path`` if it exists).
        validate: model -> validation metric (higher is better), or a dict of named metrics,
            run every ``eval_every`` steps and at the end; every metric goes to ``metrics_path``.
        select_metric: The metric ``best_dir`` follows (a plain float is ``valid_recall@10``);
            ``ema_<metric>`` follows the weight average's score and saves the averaged weights.
        eval_every: 0: only at the end.
        best_dir: ``model.save`` target when the validation metric improves.
        metrics_path: ``metrics.jsonl``: one flat dict per logged step and per validation.
        log_every: Steps between log rows.
        stop_after: End this process after this step (checkpointed), e.g. to fit a time slot; rerun to resume.
        config: Stored in the checkpoint; a resume warns when it differs.
        rank, world_size: This process under DDP (gradients averaged over ranks).
        known_positives: Request text -> its positive texts (``known_positive_texts``);
            needed when ``loss_fn.exclude_known_positives``.
        ema_decay: Keep an exponential moving average of the weights (``WeightAverage``):
            every validation also scores it (its metrics prefixed ``ema_``) and it is
            checkpointed. When ``select_metric`` is an ``ema_`` metric, ``model`` ends holding
            the average. None: no average.

    Returns:
        ``{"step", "best_metric", "last_metric", "last_metrics", "select_metric", "train_loss",
        "examples_per_s", "truncated_requests", "resumed_from"}``.
    """
    if not examples:
        raise ValueError("no training examples: the training data is empty")
    if steps < 1 or grad_accum < 1 or batch_size < 1:
        raise ValueError(
            f"steps, grad_accum and batch_size must be >= 1, got {steps}, {grad_accum}, {batch_size}"
        )
    if loss_fn.exclude_known_positives and known_positives is None:
        raise ValueError("the loss excludes known positives from in-batch negatives: pass known_positives")
    device = model.device
    if dropout is not None:
        set_dropout(model, dropout)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
    metrics_path = Path(metrics_path) if metrics_path and rank == 0 else None
    optimizer = build_adamw(
        decay_groups(model, weight_decay, decay_bias_and_norm), lr, weight_decay, device
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    selects_average = select_metric.startswith("ema_")
    if selects_average and ema_decay is None:
        raise ValueError(f"train.select_metric {select_metric!r} needs a weight average: set train.ema_decay")

    step, best_metric, resumed_from = 0, None, None
    resume = (
        Path(resume_from)
        if resume_from
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
    weight_average = WeightAverage(model, ema_decay) if ema_decay is not None else None
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
    end = steps if stop_after is None else min(steps, stop_after)
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
                    if loss_fn.uses_negatives
                    else None  # a third of the step's compute saved
                )
            exclude = in_batch_exclusions(loss_fn, requests, positives, known_positives, device)
            loss, _ = loss_fn(
                q_emb,
                p_emb,
                n_emb,
                torch.tensor(margins, dtype=torch.float32, device=device),
                exclude,
            )
            loss = loss / grad_accum  # the step's gradient is the mean over its micro-batches
            scaler.scale(loss).backward()
            step_loss += loss.item()
        average_gradients(model)
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))
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
        if checkpoint_every and step % checkpoint_every == 0:
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
