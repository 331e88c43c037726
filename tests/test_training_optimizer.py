"""The training loops' optimizer: AdamW, fused where the device has the kernel."""

import torch

from melscribe_torch.training.optimizer import build_adamw


def test_fused_adamw_on_cpu_takes_the_same_step_as_the_plain_one():
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    plain = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    fused = build_adamw(weights, lr=1e-2, weight_decay=0.01, device=torch.device("cpu"))
    reference = torch.optim.AdamW(plain, lr=1e-2, weight_decay=0.01)
    assert fused.param_groups[0]["fused"] is True
    for _ in range(3):
        for a, b in zip(weights, plain):
            grad = torch.randn_like(a)
            a.grad, b.grad = grad.clone(), grad.clone()
        fused.step()
        reference.step()
    for a, b in zip(weights, plain):
        torch.testing.assert_close(a, b)
