"""Fine-tune the cross-encoder teacher on labelled (request, descriptor set) pairs.

A plain loop: AdamW, linear warmup then linear decay to 0, BCE-with-logits on one logit per
pair, gradient clipping at 1.0, autocast from a precision string, a GradScaler only for fp16.
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
from .metrics import binary_metrics

log = logging.getLogger(__name__)

Example = tuple[str, str, float]


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


def train_cross_encoder(
    model,
    train_examples: Sequence[Example],
    valid_examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    precision: str,
    seed: int,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Train ``model`` (a ``CrossEncoder``) in place for ``steps`` optimizer steps; validate at the end.

    Batches are drawn from a seeded shuffle of ``train_examples``, reshuffled each pass.

    Args:
        model: The cross-encoder; left in eval mode on ``device``.
        train_examples, valid_examples: (request, descriptor set, label) tuples.
        steps: Optimizer steps.
        batch_size: Pairs per step.
        lr: Peak learning rate.
        warmup_steps: Linear warmup length (capped at ``steps``).
        precision: "fp32", "bf16" or "fp16" (GPU only) autocast.
        seed: Seeds the shuffle and dropout.
        device: Where to train (default: where the model is).

    Returns:
        Validation ``accuracy``, ``auc``, ``loss``; ``train_loss`` (mean of the last 10 steps),
        ``steps`` and training ``examples_per_s``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not train_examples:
        raise ValueError("no training examples for the teacher")
    device = torch.device(device) if device is not None else model.device
    model.to(device).train()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    warmup_steps = min(warmup_steps, steps)
    optimizer = build_adamw(model.parameters(), lr, 0.01, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    order: list[int] = []
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="teacher", disable=steps < 20)
    for step in bar:
        while len(order) < batch_size:  # a new pass over the data, reshuffled
            order += rng.sample(range(len(train_examples)), len(train_examples))
        batch = [train_examples[i] for i in order[:batch_size]]
        del order[:batch_size]
        queries, documents, labels = zip(*batch)
        features = {k: v.to(device) for k, v in model.tokenize_pairs(queries, documents).items()}
        targets = torch.tensor(labels, dtype=torch.float32, device=device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, lr, warmup_steps, steps)
        with autocast_context(device, precision):
            logits = model(**features)
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
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
    elapsed = time.perf_counter() - start
    model.eval()
    metrics = evaluate_cross_encoder(
        model, valid_examples, batch_size=max(batch_size, 64), precision=precision
    )
    metrics.update(
        train_loss=sum(losses[-10:]) / len(losses[-10:]),
        steps=steps,
        examples_per_s=steps * batch_size / elapsed if elapsed > 0 else math.inf,
    )
    log.info("teacher: %s", metrics)
    return metrics
