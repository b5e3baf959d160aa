"""A saved session's state checked against the model its config describes, before any of it is used.

A session file is untrusted input: every parameter's and optimizer moment's shape and dtype, the
optimizer's settings, the step, the observation and the histories must match (``check_session_state``).
``Session.from_state`` calls it; it takes the freshly built session and imports nothing from session.py
(so core/files.py → core/session.py stays the only direction).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from .config import LIMITS, MAX_CHARS
from .errors import ConfigError, show
from .history import ROW_COLUMNS

MAX_HISTORY_VALUES = 20_000_000  # (step, value) pairs and metric rows together


def check_session_state(state: Mapping[str, Any], session: Any) -> None:
    """Check a saved state against ``session``, freshly built from the state's own config, before any of it
    is used: raises ConfigError naming the first part that does not match."""
    step = _int_in(state["step"], "step", 0, LIMITS["steps"][1])
    _int_in(state["observation"], "observation", 0, session.data.shape[0] - 1)
    runs = state["runs"]
    if not isinstance(runs, list) or len(runs) != len(session.runs):
        raise ConfigError(f"runs: {len(session.runs)} saved runs expected (one per [[runs]] of its config), "
                          f"got {show(runs) if not isinstance(runs, list) else len(runs)}")
    for i, (run, saved) in enumerate(zip(session.runs, runs)):
        where = f"runs[{i}]"
        if not isinstance(saved, dict) or set(saved) != {"decoder", "encoder", "optimizer", "diverged_step", "snr"}:
            raise ConfigError(f"{where}: damaged (keys {show(sorted(saved) if isinstance(saved, dict) else saved)})")
        _check_tensors(saved["decoder"], run.decoder.state_dict(), f"{where}.decoder")
        _check_tensors(saved["encoder"], run.encoder.state_dict(), f"{where}.encoder")
        _check_optimizer(saved["optimizer"], run.optimizer, f"{where}.optimizer")
        if saved["diverged_step"] is not None:
            _int_in(saved["diverged_step"], f"{where}.diverged_step", 0, step)
        snr = saved["snr"]
        if not isinstance(snr, dict) or not all(
                isinstance(k, str) and len(k) <= 40 and (isinstance(v, float) or (k == "error" and isinstance(v, str)
                                                                                  and len(v) <= 1000))
                for k, v in snr.items()) or len(snr) > 16:
            raise ConfigError(f"{where}.snr: damaged ({show(snr)})")
    _check_histories(state["history"], state["rows"], step)


def _int_in(v: Any, key: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{key}: expected an integer in {lo}..{hi}, got {show(v)}")
    return v


def _check_tensor(t: Any, ref: torch.Tensor, key: str) -> None:
    if type(t) is not torch.Tensor or t.layout != torch.strided or t.is_quantized:
        raise ConfigError(f"{key}: expected a dense tensor, got {t.__class__.__name__}")
    if t.shape != ref.shape or t.dtype != ref.dtype:
        raise ConfigError(f"{key}: expected shape {list(ref.shape)} {str(ref.dtype).replace('torch.', '')}, got "
                          f"{list(t.shape)} {str(t.dtype).replace('torch.', '')}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{key}: has non-finite values")


def _check_tensors(saved: Any, ref: Mapping[str, torch.Tensor], where: str) -> None:
    if not isinstance(saved, Mapping) or set(saved) != set(ref):
        got = sorted(map(str, saved)) if isinstance(saved, Mapping) else saved
        raise ConfigError(f"{where}: expected the tensors {show(sorted(ref))}, got {show(got)}")
    for name, t in ref.items():
        _check_tensor(saved[name], t, f"{where}.{name}")


def _check_optimizer(saved: Any, optimizer: torch.optim.Optimizer, where: str) -> None:
    """Adam's state dict against the fresh optimizer: the same groups of the same parameters, the same
    flags (fused, amsgrad, ...), finite settings, and moments of each parameter's shape and dtype (a wrong
    shape crashed the fused kernel on the first step)."""
    ref = optimizer.state_dict()
    if not isinstance(saved, Mapping) or set(saved) != {"state", "param_groups"}:
        raise ConfigError(f"{where}: damaged (expected state and param_groups)")
    groups, ref_groups = saved["param_groups"], ref["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(ref_groups):
        raise ConfigError(f"{where}: expected {len(ref_groups)} parameter groups, got {show(groups)}")
    for g, (group, ref_group) in enumerate(zip(groups, ref_groups)):
        key = f"{where}.param_groups[{g}]"
        if not isinstance(group, Mapping) or set(group) != set(ref_group):
            raise ConfigError(f"{key}: expected the settings {show(sorted(ref_group))}")
        for name, want in ref_group.items():
            got = group[name]
            if name in ("lr", "eps", "weight_decay"):
                ok = isinstance(got, (int, float)) and not isinstance(got, bool) and math.isfinite(got) and got >= 0
                ok = ok and (got > 0 or name == "weight_decay")
            elif name == "betas":
                ok = (isinstance(got, (tuple, list)) and len(got) == 2
                      and all(isinstance(b, float) and 0.0 <= b < 1.0 for b in got))
            else:  # params (indices) and flags: exactly the fresh optimizer's
                ok = type(got) is type(want) and got == want
            if not ok:
                raise ConfigError(f"{key}.{name}: expected {show(want)}, got {show(got)}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = saved["state"]
    if not isinstance(state, Mapping):
        raise ConfigError(f"{where}.state: damaged")
    for index, entry in state.items():
        key = f"{where}.state[{show(index)}]"
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(params):
            raise ConfigError(f"{key}: no such parameter (there are {len(params)})")
        if not isinstance(entry, Mapping) or set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise ConfigError(f"{key}: expected step, exp_avg and exp_avg_sq")
        step = entry["step"]
        if type(step) is not torch.Tensor or step.numel() != 1 or not step.is_floating_point():
            raise ConfigError(f"{key}.step: expected a scalar tensor")
        if not (math.isfinite(float(step)) and 0 <= float(step) <= LIMITS["steps"][1]):
            raise ConfigError(f"{key}.step: expected a step count, got {float(step)!r}")
        _check_tensor(entry["exp_avg"], params[index], f"{key}.exp_avg")
        _check_tensor(entry["exp_avg_sq"], params[index], f"{key}.exp_avg_sq")
        if bool((entry["exp_avg_sq"] < 0).any()):
            raise ConfigError(f"{key}.exp_avg_sq: has negative values")


def _check_histories(history: Any, rows: Any, step: int) -> None:
    """The metric history ({run: {metric: [(step, value), ...]}}) and the metrics.csv rows: known metric
    names, steps in 0..step, finite values, and no more than MAX_HISTORY_VALUES entries."""
    if not isinstance(history, dict) or not isinstance(rows, list):
        raise ConfigError("history: damaged")
    total = len(rows)
    for name, series in history.items():
        if not isinstance(name, str) or len(name) > 2 * MAX_CHARS["name"] or not isinstance(series, dict):
            raise ConfigError(f"history: damaged entry {show(name)}")
        for metric, pairs in series.items():
            if metric not in ROW_COLUMNS or not isinstance(pairs, list):
                raise ConfigError(f"history[{show(name)}]: unknown metric {show(metric)}")
            total += len(pairs)
            if total > MAX_HISTORY_VALUES:
                raise ConfigError(f"history: more than {MAX_HISTORY_VALUES:,} entries")
            try:
                arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2) if pairs else np.zeros((0, 2))
            except (TypeError, ValueError):
                raise ConfigError(f"history[{show(name)}][{metric}]: expected (step, value) pairs") from None
            if len(arr) != len(pairs) or not np.isfinite(arr).all() or (arr[:, 0] != np.round(arr[:, 0])).any() \
                    or (arr[:, 0] < 0).any() or (arr[:, 0] > step).any():
                raise ConfigError(f"history[{show(name)}][{metric}]: expected (step, value) pairs with steps in "
                                  f"0..{step} and finite values")
    if total > MAX_HISTORY_VALUES:
        raise ConfigError(f"rows: more than {MAX_HISTORY_VALUES:,} entries")
    for row in rows:
        if not (isinstance(row, dict) and isinstance(row.get("run"), str) and len(row["run"]) <= 2 * MAX_CHARS["name"]
                and isinstance(row.get("step"), int) and not isinstance(row["step"], bool) and 0 <= row["step"] <= step
                and all(k in ROW_COLUMNS and (v is None or (isinstance(v, float) and math.isfinite(v)))
                        for k, v in row.items() if k not in ("run", "step"))):
            raise ConfigError(f"rows: damaged row {show(row)}")
