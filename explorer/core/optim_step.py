"""One fused Adam step without ``torch.optim.Adam.step``'s Python wrapper, bit for bit the same update.

At the sizes this app trains (a few thousand parameters, a step of ~1 ms on a CPU), the wrapper's Python
(hooks, profiler labels, the per-group lists, grouping the tensors by device) costs ~20 µs of the ~40 µs
an Adam step takes; the fused kernel itself ~13 µs. :func:`adam_step` calls the same kernel with the
same arguments the wrapper would pass, reading the learning rate and the moment buffers from the
optimizer every step (so ``param_groups`` edits, ``load_state_dict`` and a session file see no
difference), and falls back to ``optimizer.step()`` for anything it does not cover: another optimiser,
an option the kernel is not called with here, a parameter without a gradient or without state yet (the
first step, which creates the state), hooks, or a torch whose private kernel differs.
"""
from __future__ import annotations

import torch
from torch.optim import optimizer as _optimizer_module  # the global step hooks live there

_STATE_KEYS = ("exp_avg", "exp_avg_sq", "step")
_kernel_ok = hasattr(torch, "_fused_adam_")  # cleared for good if the kernel ever refuses a call


def _plain_fused(group: dict) -> bool:
    """Whether a param group is a fused Adam group whose step is exactly the kernel call below."""
    return (group.get("fused") is True and not group.get("amsgrad") and not group.get("maximize")
            and not group.get("capturable") and not group.get("differentiable")
            and not group.get("decoupled_weight_decay") and not torch.is_tensor(group.get("lr")))


def _has_hooks(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or _optimizer_module._global_optimizer_pre_hooks or _optimizer_module._global_optimizer_post_hooks)


def _group_buffers(optimizer: torch.optim.Optimizer, group: dict) -> tuple[list, ...] | None:
    params = group["params"]
    grads, exp_avgs, exp_avg_sqs, steps = [], [], [], []
    state = optimizer.state
    for p in params:
        st = state.get(p)
        if (p.grad is None or not st or any(k not in st for k in _STATE_KEYS) or p.grad.is_sparse
                or torch.is_complex(p)):
            return None
        grads.append(p.grad)
        exp_avgs.append(st["exp_avg"])
        exp_avg_sqs.append(st["exp_avg_sq"])
        steps.append(st["step"])
    return params, grads, exp_avgs, exp_avg_sqs, steps


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, through the fused kernel directly where that is the same update."""
    global _kernel_ok
    if not (_kernel_ok and type(optimizer) is torch.optim.Adam) or _has_hooks(optimizer):
        optimizer.step()
        return
    plan = []
    for group in optimizer.param_groups:
        buffers = _group_buffers(optimizer, group) if _plain_fused(group) else None
        if buffers is None:
            optimizer.step()
            return
        plan.append((group, buffers))
    with torch.no_grad():
        for group, (params, grads, exp_avgs, exp_avg_sqs, steps) in plan:
            if not params:
                continue
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            try:
                torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                                   lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                                   weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                                   maximize=False, grad_scale=None, found_inf=None)
            except (TypeError, RuntimeError):  # a torch whose kernel takes other arguments: the wrapper
                torch._foreach_sub_(steps, 1)
                if group is not plan[0][0]:  # earlier groups are stepped: cannot redo the whole step
                    raise
                _kernel_ok = False
                optimizer.step()
                return
