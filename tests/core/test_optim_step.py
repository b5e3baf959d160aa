"""adam_step is optimizer.step() bit for bit, and sum_last is sum(-1) bit for bit.

Both exist only for speed (the Session ÷ bare-loop ratio in benchmarks/), so each test compares
against the plain torch call it replaces, and one test proves the fast path is really the one taken.
"""
from __future__ import annotations

import copy

import pytest
import torch

from explorer.core import optim_step
from explorer.core.optim_step import adam_step
from explorer.core.problems import sum_last


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _optimizer(model: torch.nn.Module, **kw) -> torch.optim.Adam:
    first, second = list(model[0].parameters()), list(model[2].parameters())
    return torch.optim.Adam([{"params": first}, {"params": second, "lr": 3e-3, "weight_decay": 0.1}],
                            lr=1e-2, fused=True, **kw)


def _train(step, steps: int = 20, *, drop_grad_at: int | None = None, **kw) -> list[torch.Tensor]:
    """Train a tiny net with ``step(optimizer)``; the lr of group 0 changes halfway."""
    model = _model(0)
    opt = _optimizer(model, **kw)
    gen = torch.Generator().manual_seed(1)
    for i in range(steps):
        x = torch.randn(16, 3, generator=gen)
        opt.zero_grad(set_to_none=True)
        (model(x) ** 2).mean().backward()
        if i == drop_grad_at:
            model[2].bias.grad = None
        if i == steps // 2:
            opt.param_groups[0]["lr"] = 5e-3
        step(opt)
    return [p.detach().clone() for p in model.parameters()] + [
        s[k].clone() for s in opt.state.values() for k in ("exp_avg", "exp_avg_sq", "step")]


def _same_bits(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_same_bits_as_the_wrapper_with_two_groups_weight_decay_and_an_lr_edit():
    _same_bits(_train(adam_step), _train(lambda o: o.step()))


def test_a_missing_grad_falls_back_to_the_wrapper():
    _same_bits(_train(adam_step, drop_grad_at=7), _train(lambda o: o.step(), drop_grad_at=7))


@pytest.mark.parametrize("option", [{"amsgrad": True}, {"maximize": True}])
def test_options_the_kernel_is_not_called_with_fall_back(option):
    _same_bits(_train(adam_step, **option), _train(lambda o: o.step(), **option))


def test_the_fast_path_is_taken_after_the_first_step(monkeypatch):
    """Fails if adam_step silently always fell back (then it would be correct and useless)."""
    model = _model(0)
    opt = _optimizer(model)
    calls = []
    real_step = opt.step

    def counted(*a, **kw):
        calls.append(1)
        return real_step(*a, **kw)

    monkeypatch.setattr(opt, "step", counted)
    for _ in range(5):
        opt.zero_grad(set_to_none=True)
        model(torch.ones(4, 3)).sum().backward()
        adam_step(opt)
    assert calls == [1]  # the first step creates the state; the four after it take the kernel
    assert all(int(s["step"]) == 5 for s in opt.state.values())
    assert optim_step._kernel_ok


def test_step_hooks_are_still_called():
    model = _model(0)
    opt = _optimizer(model)
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        model(torch.ones(4, 3)).sum().backward()
        adam_step(opt)
    assert seen == ["pre", "post"] * 3


def test_a_state_dict_loaded_midway_is_used():
    """A session file restores the moments: the next kernel step must read the loaded buffers."""
    a, b = _model(0), _model(0)
    opt_a, opt_b = _optimizer(a), _optimizer(b)
    for i in range(8):
        if i == 4:  # a takes over b's (different) trajectory: parameters and optimiser state
            a.load_state_dict(b.state_dict())
            # a copy, as a session file gives: torch aliases a loaded fused 'step' with its source
            opt_a.load_state_dict(copy.deepcopy(opt_b.state_dict()))
        for m, o, scale in ((a, opt_a, 1.0), (b, opt_b, 1.0 if i >= 4 else -2.0)):
            o.zero_grad(set_to_none=True)
            (m(torch.full((2, 3), scale * (i + 1))) ** 2).sum().backward()
            if o is opt_a:
                adam_step(o)
            else:
                o.step()
    _same_bits(list(a.parameters()), list(b.parameters()))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sum_last_is_sum_bit_for_bit_values_and_grads(n):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(7, 64, n, generator=gen, dtype=torch.float32) * 1e3
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    va, vb = sum_last(a ** 2), (b ** 2).sum(-1)
    assert torch.equal(va, vb)
    w = torch.randn(va.shape, generator=gen)
    (va * w).sum().backward()
    (vb * w).sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_global_step_hooks_are_still_called():
    from torch.optim.optimizer import register_optimizer_step_post_hook
    model = _model(0)
    opt = _optimizer(model)
    seen = []
    handle = register_optimizer_step_post_hook(lambda o, a, k: seen.append(o))
    try:
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            model(torch.ones(4, 3)).sum().backward()
            adam_step(opt)
    finally:
        handle.remove()
    assert seen == [opt] * 3
