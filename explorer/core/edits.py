"""Edits of a Config as the window (or a script) makes them: one key at a time, validated like a file.

Two kinds. *Live* edits change what the running Session trains without rebuilding it: a run's K, M, β,
α or learning rate, the shown observation (a data point's index, or any point ``problem.x_obs``), and what
the views show of the gradients (``LIVE_VIEW_KEYS``). They replace one run's config (``dataclasses.replace``),
and the Session applies the very same function, so the window's config and the session's agree.
*Structural* edits (problem, encoder, objective, batch size, seed, device, adding or removing a run)
give a new Config from which a new Session is built.

A run's generated name (``IWAE K=64``) follows its parameters; a name the user gave stays.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from .config import Config, RunConfig, check_x_obs, config_from_dict, config_to_dict, default_run_name
from .errors import ConfigError
from .objectives import OBJECTIVES
from .problems import PROBLEMS, make_problem

MAX_GUI_RUNS = 4
LIVE_RUN_KEYS = ("k", "m", "beta", "alpha")
#: view keys that change only what a snapshot shows
LIVE_VIEW_KEYS = ("view.gradients", "view.arrows", "view.q_star", "view.gradients_encoder", "view.gradients_decoder")
#: objectives a new run takes: the first one not in use yet
NEW_RUN_OBJECTIVES = ("iwae", "dreg", "rws", "miwae", "vae", "piwae", "stl", "ciwae", "vr")
_RUN_KEY = re.compile(r"runs\.(\d+)\.(\w+)")


def has_generated_name(config: Config, index: int) -> bool:
    """Whether run ``index`` carries the name the config gave it (not one the user chose)."""
    run = config.runs[index]
    default = default_run_name(run)
    return run.name == default or run.name == f"{default} #{index + 1}"


def is_live(key: str) -> bool:
    """Whether ``key`` (dotted, e.g. ``runs.1.k``) can change without a new Session."""
    match = _RUN_KEY.fullmatch(key)
    return key in ("train.lr", "problem.observation", "problem.x_obs", *LIVE_VIEW_KEYS) or \
        bool(match and match.group(2) in (*LIVE_RUN_KEYS, "lr"))


def _unique_names(runs: list[RunConfig]) -> tuple[RunConfig, ...]:
    seen: set[str] = set()
    for i, run in enumerate(runs):
        if run.name in seen:
            runs[i] = dataclasses.replace(run, name=f"{run.name} #{i + 1}")
        seen.add(runs[i].name)
    return tuple(runs)


def _check_run(config: Config, index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(config.runs):
        raise ConfigError(f"runs: index {index!r} is out of range (there are {len(config.runs)} runs)")
    return index


def replace_run(config: Config, index: int, **changes: Any) -> Config:
    """Run ``index`` with K / M / β / α changed, validated as a config file would be."""
    _check_run(config, index)
    unknown = set(changes) - set(LIVE_RUN_KEYS)
    if unknown:
        raise ConfigError(f"runs[{index}].{sorted(unknown)[0]}: cannot be changed live (only {', '.join(LIVE_RUN_KEYS)})")
    raw = config_to_dict(config)["runs"][index]
    raw.update(changes)
    if has_generated_name(config, index):
        raw.pop("name")
    checked = config_from_dict({"runs": [raw]}).runs[0]  # validates k, m, beta, alpha; names it
    runs = list(config.runs)
    runs[index] = dataclasses.replace(config.runs[index], **{k: getattr(checked, k) for k in (*changes, "name")})
    return dataclasses.replace(config, runs=_unique_names(runs))


def set_lr(config: Config, lr: Any, index: int | None = None) -> Config:
    """The learning rate of run ``index``, or of every run (``train.lr``, per-run overrides dropped)."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"{'train' if index is None else f'runs[{index}]'}.lr: must be a number > 0, got {lr!r}")
    if index is None:
        return dataclasses.replace(config, train=dataclasses.replace(config.train, lr=float(lr)),
                                   runs=tuple(dataclasses.replace(r, lr=None) for r in config.runs))
    _check_run(config, index)
    runs = list(config.runs)
    runs[index] = dataclasses.replace(runs[index], lr=float(lr))
    return dataclasses.replace(config, runs=tuple(runs))


def set_observation(config: Config, index: Any) -> Config:
    """Show data point ``index`` (a free point set before is dropped)."""
    n_data = config.problem.n_data
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_data:
        raise ConfigError(f"problem.observation: index {index!r} is outside the data (n_data = {n_data})")
    return dataclasses.replace(config, problem=dataclasses.replace(config.problem, observation=index, x_obs=None))


def set_x_obs(config: Config, point: Any, x_dim: int) -> Config:
    """Show the point ``point`` of x-space (``x_dim`` numbers), or the data point again (None)."""
    x_obs = None if point is None else check_x_obs(point, x_dim)
    return dataclasses.replace(config, problem=dataclasses.replace(config.problem, x_obs=x_obs))


def edit(config: Config, key: str, value: Any) -> Config:
    """``config`` with one dotted key set to ``value``, validated. Live keys are applied as above;
    the others go through the raw dict, as in a config file:

    - ``problem.name``: the new problem starts from its own defaults (options and observation reset);
    - ``train.batch_size`` / ``train.lr``: per-run overrides are dropped, so every run takes the value;
    - ``runs.N.objective`` / ``runs.N.encoder``: a generated run name is generated again.
    """
    match = _RUN_KEY.fullmatch(key)
    if key == "train.lr":
        return set_lr(config, value)
    if key == "problem.observation":
        return set_observation(config, value)
    if key == "problem.x_obs":
        return set_x_obs(config, value, x_dim(config))
    if match and match.group(2) == "lr":
        return set_lr(config, value, int(match.group(1)))
    if match and match.group(2) in LIVE_RUN_KEYS:
        return replace_run(config, int(match.group(1)), **{match.group(2): value})
    raw = config_to_dict(config)
    generated = [has_generated_name(config, i) for i in range(len(config.runs))]
    for run, gen in zip(raw["runs"], generated):
        if gen:
            run.pop("name")
    if key == "problem.name":
        old = raw["problem"]
        raw["problem"] = {"name": value, "n_data": old["n_data"], "observation": 0, "decoder": old["decoder"]}
        if not (value in PROBLEMS and make_problem(value).learned_decoder_only):  # digits: learned by default
            raw["problem"]["learn_decoder"] = old["learn_decoder"]
    elif key == "train.batch_size":
        raw["train"]["batch_size"] = value
        for run in raw["runs"]:
            run.pop("batch_size", None)
    elif match:
        index = _check_run(config, int(match.group(1)))
        raw["runs"][index][match.group(2)] = value
    elif key in ("seed", "device", "steps", "title", "description"):
        raw[key] = value
    elif key.count(".") == 1 and key.split(".")[0] in ("problem", "train", "view"):
        table, name = key.split(".")
        raw[table][name] = value
    else:
        raise ConfigError(f"{key}: not a key that can be edited")
    return config_from_dict(raw)


def x_dim(config: Config) -> int:
    """The dimension of the config's x-space."""
    return make_problem(config.problem.name, dict(config.problem.options)).x_dim


def add_run(config: Config) -> Config:
    """A new run beside the others: the first objective not in use yet, K ≥ 16 (VAE: K = 1)."""
    if len(config.runs) >= MAX_GUI_RUNS:
        raise ConfigError(f"runs: the window trains at most {MAX_GUI_RUNS} runs")
    used = {run.objective for run in config.runs}
    objective = next((o for o in NEW_RUN_OBJECTIVES if o not in used), "iwae")
    last = config.runs[-1]
    run: dict[str, Any] = {"objective": objective, "k": 1 if objective == "vae" else max(last.k, 16)}
    if OBJECTIVES[objective].uses_m():
        run["m"] = 4
    if last.encoder is not None:
        run["encoder"] = last.encoder
    raw = config_to_dict(config)
    raw["runs"].append(run)
    return config_from_dict(raw)


def remove_run(config: Config, index: int) -> Config:
    _check_run(config, index)
    if len(config.runs) <= 1:
        raise ConfigError("runs: a scene needs at least one run")
    raw = config_to_dict(config)
    raw["runs"].pop(index)
    for run in raw["runs"]:  # "#n" suffixes of duplicate names follow the index
        if "#" in run.get("name", ""):
            run.pop("name")
    return config_from_dict(raw)
