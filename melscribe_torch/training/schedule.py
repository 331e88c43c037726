"""The learning-rate schedule: linear warmup, then linear decay to 0 at the last step."""

from __future__ import annotations


def warmup_for(warmup_steps: int, total_steps: int, max_fraction: float) -> int:
    """Warmup length actually used: ``warmup_steps``, clamped to ``max_fraction`` of a short run.

    A 1000-step warmup in a 100-step run would never reach the peak learning rate.
    """
    return max(1, min(warmup_steps, int(max_fraction * total_steps)))


def lr_at(step: int, lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    Args:
        step: The step about to be taken.
        lr: Peak learning rate.
        warmup_steps: Steps of linear warmup from lr/warmup_steps up to lr.
        total_steps: The rate reaches 0 at this step.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    return lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
