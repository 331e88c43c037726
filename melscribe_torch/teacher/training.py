"""Fine-tune the cross-encoder teacher on labelled pairs or on groups, and validate it.

A plain loop: AdamW, linear warmup then linear decay to 0, the loss the caller gives
(``losses``: pointwise BCE or listwise softmax), gradient clipping at 1.0, autocast from a
precision string, a GradScaler only for fp16. Validation reads the same held-out pairs and
groups whatever the loss, so the two losses' metrics compare.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from melscribe_torch.models.inference import autocast_context

from ..training.optimizer import build_adamw
from ..training.schedule import lr_at
from .checkpoint import (
    LoopState,
    TeacherCheckpoint,
    resume_teacher_checkpoint,
    save_teacher_checkpoint,
)
from .losses import TeacherLoss, listwise_softmax_loss
from .metrics import binary_metrics, constant_score_losses, group_ranking_metrics

log = logging.getLogger(__name__)

# A teacher whose held-out loss is not 5% below a constant score's learned next to nothing
# (the stalled mpnet run of docs/distillation.md sat at 99.96% of it; trained teachers at 60%).
LEARNED_LOSS_RATIO = 0.95

Example = tuple[str, str, float]
Group = tuple[str, list[str]]


def evaluate_cross_encoder(
    model, examples: Sequence[Example], batch_size: int = 64, precision: str = "fp32"
) -> dict[str, float]:
    """Accuracy at logit 0, ROC AUC and mean BCE loss of ``model`` on labelled pairs.

    Returns:
        ``{"accuracy", "auc", "loss"}``.
    """
    if not examples:
        raise ValueError(
            "no validation examples: raise the validation fraction or add training data"
        )
    logits = model.predict(
        [(q, d) for q, d, _ in examples], batch_size=batch_size, precision=precision
    )
    labels = torch.tensor([label for _, _, label in examples], dtype=torch.float32)
    accuracy, auc = binary_metrics(logits, labels)
    loss = F.binary_cross_entropy_with_logits(logits, labels).item()
    return {"accuracy": accuracy, "auc": auc, "loss": loss}


def evaluate_groups(
    model, groups: Sequence[Group], batch_size: int = 64, precision: str = "fp32"
) -> dict[str, float]:
    """How ``model`` ranks each group's positive (index 0) among its negatives.

    Returns:
        ``{"group_mrr", "group_accuracy@1", "group_loss"}`` (the listwise softmax loss), over
        groups of one size.
    """
    if not groups:
        raise ValueError("no validation groups: raise the validation fraction or add training data")
    group_size = len(groups[0][1])
    if any(len(documents) != group_size for _, documents in groups):
        raise ValueError("validation groups differ in size; build them with one group_size")
    logits = model.predict(
        [(query, doc) for query, documents in groups for doc in documents],
        batch_size=batch_size,
        precision=precision,
    ).view(len(groups), group_size)
    mrr, accuracy_at_1 = group_ranking_metrics(logits)
    return {
        "group_mrr": mrr,
        "group_accuracy@1": accuracy_at_1,
        "group_loss": listwise_softmax_loss(logits).item(),
    }


def train_cross_encoder(
    model,
    train_items: Sequence,
    valid_examples: Sequence[Example],
    *,
    loss_fn: TeacherLoss,
    valid_groups: Sequence[Group],
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    precision: str,
    seed: int,
    device: torch.device | str | None = None,
    checkpoint: TeacherCheckpoint | None = None,
) -> dict[str, float]:
    """Train ``model`` (a ``CrossEncoder``) in place for ``steps`` optimizer steps; validate at the end.

    Batches are drawn from a seeded shuffle of ``train_items``, reshuffled each pass.

    Args:
        model: The cross-encoder; left in eval mode on ``device``.
        train_items: What ``loss_fn`` trains on: (request, descriptor set, label) examples
            for ``PointwiseBCE``, (request, [positive, negatives...]) groups for ``ListwiseSoftmax``.
        valid_examples: Held-out (request, descriptor set, label) examples.
        loss_fn: The loss (``losses.build_teacher_loss``).
        valid_groups: Held-out groups, the positive first, all of one size.
        steps: Optimizer steps.
        batch_size: Pairs per step (``loss_fn`` turns it into items).
        lr: Peak learning rate.
        warmup_steps: Linear warmup length (capped at ``steps``).
        precision: "fp32", "bf16" or "fp16" (GPU only) autocast.
        seed: Seeds the shuffle and dropout.
        device: Where to train (default: where the model is).
        checkpoint: Where the loop saves itself as it goes and resumes from
            (``teacher.checkpoint``); resumed, it ends with the weights an unkilled run ends with.

    Returns:
        Validation ``accuracy``, ``auc``, ``loss`` (BCE) on the examples, ``group_mrr``,
        ``group_accuracy@1``, ``group_loss`` on the groups; ``train_loss`` (mean of the last 10 steps),
        ``steps`` and training ``examples_per_s``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not train_items:
        raise ValueError("no training examples for the teacher")
    items_per_step = loss_fn.items_per_step(batch_size)
    device = torch.device(device) if device is not None else model.device
    model.to(device).train()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    warmup_steps = min(warmup_steps, steps)
    optimizer = build_adamw(model.parameters(), lr, 0.01, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    resumed = checkpoint and resume_teacher_checkpoint(checkpoint, model, optimizer, scaler)
    loop = resumed or LoopState(0, rng, [], [])
    start, first_step = time.perf_counter(), loop.steps_done
    losses, order = loop.losses, loop.order
    bar = tqdm(
        range(first_step, steps), desc="teacher", disable=steps < 20, initial=first_step, total=steps
    )
    for step in bar:
        while len(order) < items_per_step:  # a new pass over the data, reshuffled
            order += loop.shuffle.sample(range(len(train_items)), len(train_items))
        batch = [train_items[i] for i in order[:items_per_step]]
        del order[:items_per_step]
        features = {k: v.to(device) for k, v in model.tokenize_pairs(*loss_fn.pairs(batch)).items()}
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, warmup_steps, steps)
        loss, grad_norm = optimizer_step(model, features, batch, loss_fn, optimizer, scaler, precision)
        losses.append(loss.item())
        log.debug(
            "teacher step %s",
            {
                "step": step,
                "loss": losses[-1],
                "lr": optimizer.param_groups[0]["lr"],
                "grad_norm": float(grad_norm),
            },
        )
        bar.set_postfix(loss=f"{losses[-1]:.4f}", grad_norm=f"{float(grad_norm):.2f}")
        loop.steps_done = step + 1
        if checkpoint and checkpoint.due(loop.steps_done, steps):
            save_teacher_checkpoint(checkpoint, model, optimizer, scaler, loop)
    elapsed = time.perf_counter() - start
    model.eval()
    eval_batch = max(batch_size, 64)
    metrics = evaluate_cross_encoder(model, valid_examples, batch_size=eval_batch, precision=precision)
    metrics.update(evaluate_groups(model, valid_groups, batch_size=eval_batch, precision=precision))
    metrics.update(
        constant_score_losses([label for _, _, label in valid_examples], len(valid_groups[0][1])),
        train_loss=sum(losses[-10:]) / len(losses[-10:]),
        steps=steps,
        # over the steps this process ran (all of them unless it resumed)
        examples_per_s=(steps - first_step) * batch_size / elapsed if elapsed > 0 else math.inf,
    )
    log.info("teacher: %s", metrics)
    warn_if_unlearned(metrics, loss_fn.held_out_loss, lr)
    return metrics


def optimizer_step(
    model, features: dict, batch: Sequence, loss_fn: TeacherLoss, optimizer, scaler, precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on one batch of tokenized pairs: autocast forward, ``loss_fn``, backward through
    the scaler (fp16 only), clipping at 1.0, AdamW. Returns (loss, gradient norm)."""
    with autocast_context(model.device, precision):
        logits = model(**features)
    loss = loss_fn(logits, batch)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss, grad_norm


def warn_if_unlearned(metrics: dict[str, float], held_out_loss: str, lr: float) -> None:
    """Warn, in one line, when the teacher's held-out loss is no better than a constant score's:
    its margins would be noise, and a student distilled from them learns nothing from it."""
    loss, constant = metrics[held_out_loss], metrics[f"constant_{held_out_loss}"]
    if loss <= LEARNED_LOSS_RATIO * constant:
        return
    log.warning(
        "teacher: held-out %s %.4f is not %d%% below the %.4f of scoring every pair alike: it "
        "learned next to nothing and its labels would teach nothing (a teacher.lr below %g, or "
        "more teacher.steps than %d, may help)",
        held_out_loss, loss, round(100 * (1 - LEARNED_LOSS_RATIO)), constant, lr,
        int(metrics["steps"]),
    )
