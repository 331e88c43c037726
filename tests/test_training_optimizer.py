"""The training loops' optimizer: AdamW, fused where the device has the kernel."""

import torch

from melscribe_torch.training.optimizer import build_adamw, decay_groups


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


class TinyBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = torch.nn.Linear(3, 3)
        self.LayerNorm = torch.nn.LayerNorm(3)
        self.frozen = torch.nn.Linear(3, 1)
        self.frozen.requires_grad_(False)


def test_every_parameter_is_decayed_unless_told_otherwise():
    block = TinyBlock()
    (group,) = decay_groups(block, 0.01, decay_bias_and_norm=True)
    assert group["weight_decay"] == 0.01
    assert {id(p) for p in group["params"]} == {id(p) for p in block.parameters() if p.requires_grad}


def test_biases_and_norm_weights_can_be_left_undecayed():
    block = TinyBlock()
    decayed, exempt = decay_groups(block, 0.01, decay_bias_and_norm=False)
    assert decayed["weight_decay"] == 0.01 and exempt["weight_decay"] == 0.0
    assert [id(p) for p in decayed["params"]] == [id(block.dense.weight)]
    assert {id(p) for p in exempt["params"]} == {
        id(block.dense.bias),
        id(block.LayerNorm.weight),
        id(block.LayerNorm.bias),
    }


def test_an_exempt_weight_is_not_pulled_toward_zero():
    # no gradient at all: only weight decay can move a weight
    block = TinyBlock()
    before = block.LayerNorm.weight.detach().clone()
    optimizer = build_adamw(
        decay_groups(block, 0.5, decay_bias_and_norm=False), 0.1, 0.5, torch.device("cpu")
    )
    for p in block.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    dense_before = block.dense.weight.detach().clone()
    optimizer.step()
    torch.testing.assert_close(block.LayerNorm.weight, before)
    assert (block.dense.weight.abs() < dense_before.abs()).all()
