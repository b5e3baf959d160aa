"""The config schema of design.md as frozen dataclasses, TOML loading with defaults, ``--set`` overrides
and validation. Every problem raises ``ConfigError`` with a message naming the key and the bad value.
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from .bounded import CONFIG_MAX_BYTES, read_regular
from .errors import ConfigError, show
from .models import ENCODERS
from .objectives import OBJECTIVES
from .problems import LOCATION, PROBLEMS, make_problem

PRESET_PACKAGE = "explorer.assets"  # assets/ in the source tree, mapped into the package by pyproject.toml
DEVICES = ("auto", "cpu", "cuda", "mps")
DECODERS = ("param", "mlp")
MAX_RUNS = 8
# validated ranges of the integer keys (the budget and the window's controls read them too)
LIMITS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**63 - 1), "steps": (0, 10**9),
    "problem.n_data": (1, 1_000_000),
    "train.batch_size": (1, 100_000), "train.hidden": (1, 4096),
    "runs.k": (1, 1_000_000), "runs.m": (1, 100_000),
    "view.grid": (16, 1000), "view.samples": (0, 100_000), "view.snr_every": (0, 10**9),
    "view.snr_replicates": (2, 100_000), "view.log_every": (1, 10**9),
}
MAX_DEPTH = 32  # hidden layers
MAX_LR = 1e6
MAX_ALPHA = 1e3  # |α| of the Rényi bound
MAX_CHARS = {"title": 300, "description": 20_000, "name": 100}


@dataclass(frozen=True)
class ProblemConfig:
    name: str = "bimodal"
    learn_decoder: bool = False
    n_data: int = 512
    observation: int = 0  # index of the x shown in the posterior view
    x_obs: tuple[float, ...] | None = None  # a free point of x-space shown instead of data[observation]
    decoder: str = "param"  # param: the problem's own family (θ* inside) | mlp
    options: Mapping[str, Any] = field(default_factory=dict)  # problem options, e.g. gaussian: mu


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    lr: float = 0.003
    encoder: str = "gaussian"
    hidden: tuple[int, ...] = (64, 64)


@dataclass(frozen=True)
class ViewConfig:
    grid: int = 200  # n for the n×n grid of exact quantities
    samples: int = 500  # q samples drawn in the posterior panel
    snr_every: int | str = "auto"  # steps between SNR probes; 0: off; "auto": as often as ~15 % of the
    #                                training time allows (core/cadence.py), at least every 25 steps
    snr_replicates: int = 64  # R for the live probe
    log_every: int = 10  # steps between metric rows (exact grid metrics)
    gradients: bool = False  # show the gradient histograms panel (the probe's replicates of two parameters)
    arrows: bool = False  # show each particle's share of the encoder's gradient on the posterior panels
    q_star: bool = True  # fit the per-x optimum q* and split the gap (core/amortisation.py); off: neither
    gradients_encoder: str = ""  # NAME[i] of the encoder parameter the histograms show ("": q's mean bias, z₁)
    gradients_decoder: str = ""  # NAME[i] of the decoder parameter ("": the first trainable one)


@dataclass(frozen=True)
class RunConfig:
    objective: str = "vae"
    k: int = 1
    m: int = 1
    beta: float = 0.5
    alpha: float = 0.5
    name: str = ""
    # per-run overrides of [train] keys; None inherits
    lr: float | None = None
    batch_size: int | None = None
    encoder: str | None = None
    hidden: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Config:
    title: str = "VAE Explorer"
    description: str = ""
    seed: int = 0
    steps: int = 3000
    device: str = "auto"
    problem: ProblemConfig = ProblemConfig()
    train: TrainConfig = TrainConfig()
    view: ViewConfig = ViewConfig()
    runs: tuple[RunConfig, ...] = (RunConfig(),)

    def run_train(self, i: int) -> TrainConfig:
        """The [train] settings of run i, with its overrides applied."""
        run = self.runs[i]
        over = {f.name: getattr(run, f.name) for f in dataclasses.fields(TrainConfig) if getattr(run, f.name) is not None}
        return dataclasses.replace(self.train, **over)


# --------------------------------------------------------------------------- validation helpers
def _int(v: Any, key: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key}: expected an integer, got {show(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ConfigError(f"{key}: must be {rng}, got {show(v)}")
    return v


def _limited(v: Any, key: str, limit: str | None = None) -> int:
    """An integer key checked against its range in LIMITS (``limit`` names the entry when ``key`` is a run's)."""
    lo, hi = LIMITS[limit or key]
    return _int(v, key, lo, hi)


def _snr_every(v: Any) -> int | str:
    """view.snr_every: "auto", or an integer number of steps (0: no probe)."""
    return "auto" if v == "auto" else _limited(v, "view.snr_every")


def _float(v: Any, key: str, lo: float | None = None, hi: float | None = None) -> float:
    """A finite number (an integer too, however large, if it fits a float), optionally in [lo, hi]."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {show(v)}")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond the float range
        f = math.inf
    if not math.isfinite(f):
        raise ConfigError(f"{key}: expected a finite number, got {show(v)}")
    if (lo is not None and f < lo) or (hi is not None and f > hi):
        raise ConfigError(f"{key}: must be in [{lo:g}, {hi:g}], got {show(v)}")
    return f


def _str(v: Any, key: str, choices: tuple[str, ...] | None = None, max_chars: int | None = None) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key}: expected a string, got {show(v)}")
    if choices is not None and v not in choices:
        raise ConfigError(f"{key}: unknown value {show(v)} (choose from {', '.join(choices)})")
    if max_chars is not None and len(v) > max_chars:
        raise ConfigError(f"{key}: at most {max_chars:,} characters, got {len(v):,}")
    return v


def _bool(v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: expected true or false, got {show(v)}")
    return v


def _hidden(v: Any, key: str) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(f"{key}: expected a non-empty list of layer widths, got {show(v)}")
    if len(v) > MAX_DEPTH:
        raise ConfigError(f"{key}: at most {MAX_DEPTH} hidden layers, got {len(v)}")
    return tuple(_limited(h, key, "train.hidden") for h in v)


def _table(v: Any, key: str) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        raise ConfigError(f"{key}: expected a table, got {show(v)}")
    return dict(v)


def _reject_unknown(table: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for k in table:
        if k not in allowed:
            raise ConfigError(f"{prefix}{show(k)[1:-1]}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def default_run_name(run: RunConfig) -> str:
    parts = [run.objective.upper() if run.objective != "ciwae" else "CIWAE"]
    params = OBJECTIVES[run.objective].params
    if "m" in params:
        parts.append(f"M={run.m}")
    parts.append(f"K={run.k}")
    if "beta" in params:
        parts.append(f"β={run.beta:g}")
    if "alpha" in params:
        parts.append(f"α={run.alpha:g}")
    if run.encoder:
        parts.append(f"[{run.encoder}]")
    return " ".join(parts)


def _train(t: Mapping[str, Any], prefix: str, partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "batch_size" in t:
        out["batch_size"] = _limited(t["batch_size"], f"{prefix}batch_size", "train.batch_size")
    if "lr" in t:
        lr = _float(t["lr"], f"{prefix}lr", 0.0, MAX_LR)
        if lr <= 0:
            raise ConfigError(f"{prefix}lr: must be > 0, got {show(t['lr'])}")
        out["lr"] = lr
    if "encoder" in t:
        out["encoder"] = _str(t["encoder"], f"{prefix}encoder", tuple(ENCODERS))
    if "hidden" in t:
        out["hidden"] = _hidden(t["hidden"], f"{prefix}hidden")
    return out


def _run(r: Any, i: int) -> RunConfig:
    prefix = f"runs[{i}]."
    r = _table(r, f"runs[{i}]")
    _reject_unknown(r, _fields(RunConfig), prefix)
    objective = _str(r.get("objective", "vae"), prefix + "objective", tuple(OBJECTIVES))
    kw: dict[str, Any] = {"objective": objective}
    kw["k"] = _limited(r.get("k", 1), prefix + "k", "runs.k")
    kw["m"] = _limited(r.get("m", 1), prefix + "m", "runs.m")
    kw["beta"] = _float(r.get("beta", 0.5), prefix + "beta", 0.0, 1.0)
    alpha = _float(r.get("alpha", 0.5), prefix + "alpha", -MAX_ALPHA, MAX_ALPHA)
    if alpha == 1.0:
        raise ConfigError(f"{prefix}alpha: must not be 1 (the Rényi bound is the ELBO's limit there; use vae)")
    kw["alpha"] = alpha
    kw.update(_train(r, prefix, partial=True))
    run = RunConfig(**kw)
    name = r.get("name", "")
    name = _str(name, prefix + "name", max_chars=MAX_CHARS["name"]).strip()
    return dataclasses.replace(run, name=name or default_run_name(run))


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Validate a raw (TOML-shaped) dict and fill in defaults."""
    d = _table(d, "config")
    _reject_unknown(d, _fields(Config), "")
    top: dict[str, Any] = {}
    if "title" in d:
        top["title"] = _str(d["title"], "title", max_chars=MAX_CHARS["title"])
    if "description" in d:
        top["description"] = _str(d["description"], "description", max_chars=MAX_CHARS["description"])
    if "seed" in d:
        top["seed"] = _limited(d["seed"], "seed")
    if "steps" in d:
        top["steps"] = _limited(d["steps"], "steps")
    if "device" in d:
        top["device"] = _str(d["device"], "device", DEVICES)

    p = _table(d.get("problem", {}), "problem")
    name = _str(p.get("name", ProblemConfig.name), "problem.name", tuple(PROBLEMS))
    fixed = _fields(ProblemConfig) - {"options"}
    options = {k: v for k, v in p.items() if k not in fixed}
    problem = make_problem(name, options)  # validates the options, naming the bad one
    n_data = _limited(p.get("n_data", ProblemConfig.n_data), "problem.n_data")
    observation = _int(p.get("observation", 0), "problem.observation", 0)
    if observation >= n_data:
        raise ConfigError(f"problem.observation: index {show(observation)} is outside the data (n_data = {n_data})")
    learn_decoder = _bool(p.get("learn_decoder", problem.learned_decoder_only), "problem.learn_decoder")
    problem.check_shared(learn_decoder, n_data)  # e.g. digits: a learned decoder, at most its training images
    x_obs = p.get("x_obs")
    pc = ProblemConfig(
        name=name,
        learn_decoder=learn_decoder,
        n_data=n_data,
        observation=observation,
        x_obs=None if x_obs is None else check_x_obs(x_obs, problem.x_dim),
        decoder=_str(p.get("decoder", "param"), "problem.decoder", DECODERS),
        options=options,
    )

    t = _table(d.get("train", {}), "train")
    _reject_unknown(t, _fields(TrainConfig), "train.")
    train = TrainConfig(**_train(t, "train.", partial=False))

    v = _table(d.get("view", {}), "view")
    _reject_unknown(v, _fields(ViewConfig), "view.")
    view = ViewConfig(
        grid=_limited(v.get("grid", ViewConfig.grid), "view.grid"),
        samples=_limited(v.get("samples", ViewConfig.samples), "view.samples"),
        snr_every=_snr_every(v.get("snr_every", ViewConfig.snr_every)),
        snr_replicates=_limited(v.get("snr_replicates", ViewConfig.snr_replicates), "view.snr_replicates"),
        log_every=_limited(v.get("log_every", ViewConfig.log_every), "view.log_every"),
        gradients=_bool(v.get("gradients", False), "view.gradients"),
        arrows=_bool(v.get("arrows", False), "view.arrows"),
        q_star=_bool(v.get("q_star", True), "view.q_star"),
        gradients_encoder=_str(v.get("gradients_encoder", ""), "view.gradients_encoder", max_chars=MAX_CHARS["name"]),
        gradients_decoder=_str(v.get("gradients_decoder", ""), "view.gradients_decoder", max_chars=MAX_CHARS["name"]),
    )

    raw_runs = d.get("runs", [{}])
    if not isinstance(raw_runs, list) or not raw_runs:
        raise ConfigError(f"runs: expected a non-empty list of [[runs]] tables, got {show(raw_runs)}")
    if len(raw_runs) > MAX_RUNS:
        raise ConfigError(f"runs: at most {MAX_RUNS} runs, got {len(raw_runs)}")
    runs = [_run(r, i) for i, r in enumerate(raw_runs)]
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):  # unique names: the metrics and the legend key on them
        if run.name in seen:
            runs[i] = dataclasses.replace(run, name=f"{run.name} #{i + 1}")
        seen[runs[i].name] = i
    cfg = Config(problem=pc, train=train, view=view, runs=tuple(runs), **top)
    for i in range(len(cfg.runs)):
        enc = cfg.run_train(i).encoder
        if enc == "flow" and problem.z_dim < 2:
            raise ConfigError(f"runs[{i}].encoder: the flow needs a latent of dimension ≥ 2")
    return cfg


def check_x_obs(value: Any, x_dim: int) -> tuple[float, ...]:
    """A free observation: ``x_dim`` finite numbers within ±LOCATION (a bare number for 1-D x)."""
    if x_dim == 1 and not isinstance(value, (list, tuple)):
        value = [value]
    if not isinstance(value, (list, tuple)) or len(value) != x_dim:
        raise ConfigError(f"problem.x_obs: expected a list of {x_dim} numbers (a point of x-space), got {show(value)}")
    return tuple(_float(v, "problem.x_obs", -LOCATION, LOCATION) for v in value)


# --------------------------------------------------------------------------- files, presets, overrides
def _read_toml(path: Path | Traversable) -> dict[str, Any]:
    """A config file: a regular file of at most CONFIG_MAX_BYTES (bounded.py), parsed as TOML. A preset
    (package data, possibly inside a wheel's zip) is read through importlib.resources instead."""
    data = read_regular(path, CONFIG_MAX_BYTES, "config file") if isinstance(path, (str, Path)) else path.read_bytes()
    try:
        return _parse_toml(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read it (not UTF-8 text: {e.reason} at byte {e.start})") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _parse_toml(text: str) -> dict[str, Any]:
    """tomllib, with its non-TOML failures (an integer over Python's 4300-digit limit, arrays nested deeper
    than the interpreter's recursion limit) turned into ConfigError too."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"malformed TOML ({e})") from None
    except ValueError as e:  # int(...) of a huge integer
        raise ConfigError(f"a value is too large ({str(e).split(';')[0]})") from None
    except RecursionError:
        raise ConfigError("a value is nested too deeply") from None


def preset_dir() -> Traversable:
    """The presets folder as package data (``explorer.assets/presets``): found alike in a wheel and in an
    editable install, never through a path relative to the source tree (a wheel has none)."""
    try:
        return resources.files(PRESET_PACKAGE) / "presets"
    except ModuleNotFoundError:
        raise ConfigError(f"presets: the package data {PRESET_PACKAGE} is not installed "
                          "(install the package: pip install -e . in a source tree)") from None


def list_presets() -> list[dict[str, str]]:
    """[{name, title, description}] for assets/presets/*.toml, sorted by name."""
    out = []
    for path in sorted(preset_dir().iterdir(), key=lambda p: p.name):
        name = path.name.removesuffix(".toml")
        if name == path.name or not path.is_file():
            continue
        try:
            raw = _read_toml(path)
        except ConfigError:
            continue
        out.append({"name": name, "title": str(raw.get("title", name)),
                    "description": str(raw.get("description", ""))})
    return out


def preset_path(name: str) -> Traversable:
    path = preset_dir() / f"{name}.toml"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not path.is_file():
        names = ", ".join(p["name"] for p in list_presets()) or "none"
        raise ConfigError(f"--preset: unknown preset {name!r} (available: {names})")
    return path


def parse_value(text: str) -> Any:
    """A --set value: TOML syntax (numbers, true/false, [lists], "strings"), else a bare string."""
    try:
        return _parse_toml(f"v = {text}")["v"]
    except ConfigError as e:
        if str(e).startswith("malformed TOML"):
            return text
        raise


def apply_overrides(raw: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides to a raw dict. Keys: ``seed``, ``train.lr``, ``runs.1.k`` (or ``runs[1].k``)."""
    raw = _deep_copy(raw)
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set: expected KEY=VALUE, got {show(item)}")
        key, value = item.split("=", 1)
        key = re.sub(r"\[(\d+)\]", r".\1", key.strip())
        parts = [p for p in key.split(".") if p]
        if not parts:
            raise ConfigError(f"--set: empty key in {show(item)}")
        node: Any = raw
        for j, part in enumerate(parts[:-1]):
            path = ".".join(parts[: j + 1])
            if isinstance(node, list):
                node = _list_item(node, part, path)
            else:
                if part not in node:
                    if part == "runs":
                        node[part] = [{}]
                    elif part in ("problem", "train", "view"):
                        node[part] = {}
                    else:
                        raise ConfigError(f"--set {key}: unknown key {show(path)}")
                node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node = _list_item(node, last, key)
            raise ConfigError(f"--set {key}: name a key inside the run, e.g. runs.0.k=8")
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])!r} is not a table")
        try:
            node[last] = parse_value(value.strip())
        except ConfigError as e:
            raise ConfigError(f"--set {key}: {e}") from None
    return raw


def _list_item(node: list, part: str, path: str) -> Any:
    if not part.isdigit():
        raise ConfigError(f"--set {path}: expected a run index, got {show(part)}")
    i = int(part)
    if i == len(node) and i < MAX_RUNS:  # naming the next index adds a run
        node.append({})
    if i >= len(node):
        raise ConfigError(f"--set {path}: run index {i} is out of range (there are {len(node)} runs)")
    return node[i]


def _deep_copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _deep_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_deep_copy(x) for x in v]
    return v


def load_raw(path: str | Path | None = None, preset: str | None = None) -> dict[str, Any]:
    if path is not None and preset is not None:
        raise ConfigError("--config and --preset: give one, not both")
    if preset is not None:
        return _read_toml(preset_path(preset))
    if path is not None:
        return _read_toml(Path(path))
    return {}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a TOML config file (or the defaults when path is None) and apply ``--set`` overrides."""
    return config_from_dict(apply_overrides(load_raw(path=path), overrides or []))


def load_preset(name: str, overrides: list[str] | None = None) -> Config:
    """Load assets/presets/NAME.toml and apply ``--set`` overrides."""
    return config_from_dict(apply_overrides(load_raw(preset=name), overrides or []))


# --------------------------------------------------------------------------- back to dict / TOML
def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The fully resolved config (defaults filled in) as a TOML-shaped dict."""
    problem = {k: v for k, v in dataclasses.asdict(cfg.problem).items() if k != "options"}
    if cfg.problem.x_obs is None:  # TOML has no null: an absent key is the data point
        del problem["x_obs"]
    else:
        problem["x_obs"] = list(cfg.problem.x_obs)
    problem.update(dict(cfg.problem.options))
    runs = []
    for run in cfg.runs:
        r = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(run).items() if v is not None}
        runs.append(r)
    train = dataclasses.asdict(cfg.train)
    train["hidden"] = list(cfg.train.hidden)
    return {
        "title": cfg.title, "description": cfg.description, "seed": cfg.seed, "steps": cfg.steps,
        "device": cfg.device, "problem": problem, "train": train, "view": dataclasses.asdict(cfg.view),
        "runs": runs,
    }


def config_to_toml(cfg: Config) -> str:
    """The fully resolved config as a TOML document (written by tomli-w); reading it back with
    ``config_from_dict(tomllib.loads(text))`` gives an equal Config (strings with control characters and
    unicode included)."""
    return tomli_w.dumps(config_to_dict(cfg))
