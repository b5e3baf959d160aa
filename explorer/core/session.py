"""Session: trains every [[runs]] entry of a config in lockstep from one seed, and yields Snapshots.

Determinism and common random numbers: all noise is drawn from generators re-seeded from
(seed, step, purpose, run shape), so runs whose shapes match see the *same* noise at each step, the
same config and seed give bit-identical metrics on the same machine, and the SNR probes or a snapshot
never shift the training noise. Runs whose architectures match start from the same weights.

Threading: a GUI drives ``iterate()`` on a worker thread and talks to it only through ``send()``
(a thread-safe queue of commands applied between steps). Headless code calls the methods directly.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import queue
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from .config import Config, ConfigError, RunConfig, TrainConfig, config_from_dict, config_to_dict, default_run_name
from .diagnostics import gradient_snr, snr_floor
from .models import Encoder, make_encoder
from .objectives import OBJECTIVES, compute_losses, draw
from .problems import Decoder, Problem, make_problem
from .snapshot import METRICS, RunView, Snapshot
from .views import Viewer, box_centres

# purposes of the derived seeds
_BATCH, _TRAIN, _PROBE, _VIEW = 1, 2, 3, 4


class RunFailure(RuntimeError):
    """An exception inside one run's training step, naming the run and the step (the cause is chained)."""

    def __init__(self, run: str, step: int, error: BaseException):
        super().__init__(f"run {run!r} failed at step {step}: {error.__class__.__name__}: {error}")
        self.run, self.step, self.error = run, step, error


def resolve_device(name: str) -> torch.device:
    """auto → cuda, then mps, then cpu. Asking for a device that is not there is a ConfigError."""
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for, but torch sees no CUDA GPU here (use auto or cpu)")
    if name == "mps" and not has_mps:
        raise ConfigError("device: 'mps' was asked for, but this machine has no Apple GPU (use auto or cpu)")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device: unknown device {name!r} (choose from auto, cpu, cuda, mps)")
    return torch.device(name)


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _derive(*parts: Any) -> int:
    """A 63-bit seed from any hashable parts (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _all_finite(tensors: list[Tensor], scratch: Tensor) -> bool:
    """Whether every entry of ``tensors`` (none requiring grad) is finite. ``scratch`` is [found, 1.0], a
    float tensor on their device. One fused kernel (the gradient scaler's check, "unscaling" by 1, which
    changes no value) instead of a norm per tensor: that check took ten small ops, a tenth of a step here."""
    found, one = scratch[0:1], scratch[1]
    found.zero_()
    # the kernel writes in place: give it no tensor whose elements share memory (an expanded gradient)
    tensors = [t if t.is_contiguous() else t.contiguous() for t in tensors]
    try:
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, one)
    except (RuntimeError, NotImplementedError):  # a backend without the kernel: one reduction per tensor
        return all(bool(torch.isfinite(t).all()) for t in tensors)
    return not bool(found)


class _Series:
    """One metric's (step, value) rows in a numpy buffer that doubles when full. A snapshot takes a view of
    the filled rows, which later appends never touch (a full buffer is replaced, not grown in place), so
    a snapshot costs O(1) per series however long the session has run (building the arrays from lists of
    tuples took 4 ms per snapshot after 5000 steps of the mode-seeking scene, and grew with the steps)."""

    __slots__ = ("_rows", "n")

    def __init__(self, rows: Any = ()):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        self.n = len(rows)
        self._rows = np.empty((max(64, 2 * self.n), 2))
        self._rows[: self.n] = rows

    def append(self, step: int, value: float) -> None:
        if self.n == len(self._rows):
            grown = np.empty((2 * len(self._rows), 2))
            grown[: self.n] = self._rows[: self.n]
            self._rows = grown
        self._rows[self.n] = (step, value)
        self.n += 1

    def array(self) -> np.ndarray:
        """The rows so far, [n, 2], read-only."""
        view = self._rows[: self.n]
        view.flags.writeable = False
        return view

    def to_list(self) -> list[tuple[int, float]]:
        return [(int(step), value) for step, value in self._rows[: self.n].tolist()]


class _MetricRows:
    """The rows of metrics.csv, one per logged step and run, in numpy columns (NaN where a metric is
    unknown): ~110 bytes a row where a dict of floats took ~700, and a live session logs tens of rows a
    second (with dicts, the mode-seeking scene grew by 0.5 MB every 1000 steps)."""

    def __init__(self) -> None:
        self._names: list[str] = []  # run names as they were when a row was logged
        self._name_index: dict[str, int] = {}
        self._keys = np.empty((256, 2), dtype=np.int64)  # [name index, step]
        self._values = np.empty((256, len(METRICS)))
        self.n = 0

    def append(self, run: str, step: int, values: list[float | None]) -> None:
        if self.n == len(self._keys):
            self._keys = np.concatenate([self._keys, np.empty_like(self._keys)])
            self._values = np.concatenate([self._values, np.empty_like(self._values)])
        if run not in self._name_index:
            self._name_index[run] = len(self._names)
            self._names.append(run)
        self._keys[self.n] = (self._name_index[run], step)
        self._values[self.n] = [math.nan if v is None else v for v in values]
        self.n += 1

    def to_dicts(self) -> list[dict[str, Any]]:
        """``metric_rows()``: run, step and METRICS, None where unknown (values are finite or absent)."""
        names = self._names
        return [{"run": names[key[0]], "step": key[1],
                 **{m: (None if v != v else v) for m, v in zip(METRICS, values)}}
                for key, values in zip(self._keys[: self.n].tolist(), self._values[: self.n].tolist())]

    @classmethod
    def from_dicts(cls, rows: list[dict[str, Any]]) -> "_MetricRows":
        out = cls()
        for row in rows:
            out.append(row["run"], int(row["step"]), [row.get(m) for m in METRICS])
        return out


@dataclass
class _Run:
    """A run's mutable training state (private to the Session)."""

    index: int
    cfg: RunConfig
    train: TrainConfig
    decoder: Decoder
    encoder: Encoder
    optimizer: torch.optim.Optimizer
    theta: list[Tensor]
    phi: list[Tensor]
    finite_scratch: Tensor  # [found, 1.0] for _all_finite
    diverged_step: int | None = None
    diverged_reason: str = ""
    snr: dict[str, float] = field(default_factory=dict)
    last_view: RunView | None = None

    @property
    def m(self) -> int:
        return self.cfg.m if OBJECTIVES[self.cfg.objective].uses_m() else 1


class Session:
    """Lockstep training of a config's runs, with exact views of the shown observation."""

    def __init__(self, config: Config, device: str | None = None):
        self.device = resolve_device(device or config.device)
        self._commands: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.paused = True
        self.speed: float | None = None  # steps per second, None = as fast as possible
        self._build(config)

    # ------------------------------------------------------------------ construction / reset
    def _build(self, config: Config) -> None:
        self.config = config
        self.problem: Problem = make_problem(config.problem.name, dict(config.problem.options))
        if self.problem.z_dim != 2:
            raise ConfigError(
                f"problem.dim: the explorer's views need a 2-D latent, got {self.problem.z_dim} "
                "(dimensions other than 2 are for the snr command)"
            )
        data_gen = torch.Generator().manual_seed(_derive(config.seed, "data"))
        self.data = self.problem.sample_data(config.problem.n_data, data_gen).to(self.device)
        self.observation = config.problem.observation
        self._viewer = Viewer(self.problem, config.view.grid, config.view.samples, self.device, config.problem.decoder)
        self.runs = [self._make_run(i) for i in range(len(config.runs))]
        self.step_count = 0
        self._history: dict[str, dict[str, _Series]] = {r.cfg.name: {} for r in self.runs}
        self._rows = _MetricRows()
        self._train_seconds = 0.0
        self._rate = 0.0
        self._view_cache: tuple[int, int, Snapshot] | None = None
        self._views_cache: tuple[tuple[int, int], tuple[RunView, ...]] | None = None
        self._version = 0  # bumped by anything that changes the view without a step
        self._gen = torch.Generator(device=self.device)
        if config.view.snr_every:
            self._probe_snr(self._batch())
        self._record_metrics()

    def _make_run(self, i: int) -> _Run:
        cfg, train, pcfg = self.config.runs[i], self.config.run_train(i), self.config.problem
        arch = (train.encoder, train.hidden, pcfg.decoder, pcfg.learn_decoder, self.config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derive("init", *arch))  # same architecture → same initial weights
            decoder = self.problem.decoder(pcfg.decoder, pcfg.learn_decoder, list(train.hidden))
            encoder = make_encoder(train.encoder, self.problem.x_dim, self.problem.z_dim, list(train.hidden))
        decoder.to(self.device)
        encoder.to(self.device)
        theta = [p for p in decoder.parameters() if p.requires_grad]
        phi = list(encoder.parameters())
        groups = [{"params": phi}] + ([{"params": theta}] if theta else [])
        # fused Adam: one kernel per step instead of a dozen small ones (the step is dispatch-bound)
        optimizer = torch.optim.Adam(groups, lr=train.lr, fused=self.device.type in ("cpu", "cuda"))
        return _Run(i, cfg, train, decoder, encoder, optimizer, theta, phi,
                    torch.tensor([0.0, 1.0], device=self.device))

    def reset(self) -> None:
        """Back to the seed's initial state (same data, same initial weights, step 0)."""
        self._build(self.config)

    def reseed(self, seed: int | None = None) -> None:
        """A new seed (random if None): new data, new initial weights."""
        seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
        self._build(dataclasses.replace(self.config, seed=seed))

    # ------------------------------------------------------------------ commands
    def set_lr(self, run: int, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"runs[{run}].lr: must be > 0, got {lr!r}")
        r = self._run(run)
        for group in r.optimizer.param_groups:
            group["lr"] = float(lr)
        r.train = dataclasses.replace(r.train, lr=float(lr))
        self._replace_run_config(run, lr=float(lr))

    def set_run(self, run: int, **params: Any) -> None:
        """Change K / M / β / α of a run; applies at the next step. Validated like the config."""
        self._run(run)
        params = {k: v for k, v in params.items() if v is not None}
        unknown = set(params) - {"k", "m", "beta", "alpha"}
        if unknown:
            raise ConfigError(f"runs[{run}].{sorted(unknown)[0]}: cannot be changed live (only k, m, beta, alpha)")
        self._replace_run_config(run, **params)

    def _replace_run_config(self, run: int, **params: Any) -> None:
        raw = config_to_dict(self.config)
        old = self.config.runs[run]
        auto_name = old.name == default_run_name(old)
        raw["runs"][run].update(params)
        if auto_name:
            raw["runs"][run]["name"] = ""
        new_cfg = config_from_dict(raw)  # validates, raising ConfigError naming the key
        new_run = new_cfg.runs[run]
        r = self.runs[run]
        if new_run.name != old.name:  # keep the history under the new name
            self._history[new_run.name] = self._history.pop(old.name, {})
        self.config, r.cfg = new_cfg, new_run
        self._version += 1

    def set_observation(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.data.shape[0]:
            raise ConfigError(f"problem.observation: index {index!r} is outside the data (n_data = {self.data.shape[0]})")
        self.observation = index
        self.config = dataclasses.replace(self.config, problem=dataclasses.replace(self.config.problem, observation=index))
        self._version += 1

    def send(self, name: str, **kwargs: Any) -> None:
        """Queue a command (thread-safe); ``iterate()`` applies it before the next step."""
        self._commands.put((name, kwargs))

    def apply(self, name: str, **kwargs: Any) -> bool:
        """Apply one command now. Returns True when it changed what a snapshot would show.

        Bad arguments raise ConfigError naming the command, whatever went wrong inside."""
        try:
            return self._apply(name, dict(kwargs))
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"command {name}: bad arguments {kwargs!r} ({e.__class__.__name__}: {e})") from None

    def _apply(self, name: str, kwargs: dict[str, Any]) -> bool:
        if name == "pause":
            self.paused = True
        elif name == "resume":
            self.paused = False
        elif name == "step":
            self.step(int(kwargs.get("n", 1)))
        elif name == "set_lr":
            self.set_lr(kwargs["run"], kwargs["lr"])
        elif name == "set_run":
            self.set_run(kwargs.pop("run"), **kwargs)
        elif name == "set_observation":
            self.set_observation(kwargs["index"])
        elif name == "set_speed":
            speed = kwargs.get("steps_per_s")
            self.speed = None if speed is None else max(float(speed), 0.01)
            return False
        elif name == "reset":
            self.reset()
        elif name == "reseed":
            self.reseed(kwargs.get("seed"))
        elif name == "stop":
            return False
        else:
            raise ConfigError(f"command: unknown command {name!r}")
        return True

    def _run(self, run: Any) -> _Run:
        if isinstance(run, bool) or not isinstance(run, int) or not 0 <= run < len(self.runs):
            raise ConfigError(f"runs: index {run!r} is out of range (there are {len(self.runs)} runs)")
        return self.runs[run]

    # ------------------------------------------------------------------ training
    def _seeded(self, *parts: Any) -> torch.Generator:
        return self._gen.manual_seed(_derive(self.config.seed, *parts))

    def _batch(self) -> Tensor:
        n = self.data.shape[0]
        size = min(max(r.train.batch_size for r in self.runs), n)  # each run takes its first batch_size rows
        if size == n:
            return self.data
        idx = torch.randperm(n, generator=self._seeded(self.step_count, _BATCH), device=self.device)[:size]
        return self.data[idx]

    def step(self, n: int = 1) -> None:
        """Train every run n steps in lockstep. Logs metrics every ``view.log_every`` steps."""
        for _ in range(int(n)):
            t0 = time.perf_counter()
            batch = self._batch()
            for run in self.runs:
                if run.diverged_step is None:
                    try:
                        self._train_step(run, batch)
                    except Exception as e:  # name the run: the GUI and the CLI show which one failed
                        raise RunFailure(run.cfg.name, self.step_count, e) from e
            self.step_count += 1
            self._train_seconds += time.perf_counter() - t0
            every = self.config.view.snr_every
            if every and self.step_count % every == 0:
                self._probe_snr(batch)
            if self.step_count % self.config.view.log_every == 0:
                self._record_metrics()

    def _batch_for(self, run: _Run, batch: Tensor) -> Tensor:
        size = run.train.batch_size
        return batch if size >= batch.shape[0] else batch[:size]

    def _train_step(self, run: _Run, batch: Tensor) -> None:
        x = self._batch_for(run, batch)
        shape = (run.m, run.cfg.k, x.shape[0], self.problem.z_dim)
        eps = torch.randn(shape, generator=self._seeded(self.step_count, _TRAIN, shape), device=self.device)
        losses = compute_losses(run.cfg.objective, draw(run.decoder, run.encoder, x, eps), run.cfg.beta, run.cfg.alpha)
        if losses.theta_loss is losses.phi_loss:  # one loss for both groups: one backward pass
            grads = torch.autograd.grad(losses.phi_loss, run.phi + run.theta, allow_unused=True)
        else:  # each loss reaches its own parameter group only
            g_theta = torch.autograd.grad(losses.theta_loss, run.theta, retain_graph=True, allow_unused=True) if run.theta else ()
            grads = torch.autograd.grad(losses.phi_loss, run.phi, allow_unused=True) + tuple(g_theta)
        params = run.phi + run.theta
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
        if not _all_finite([*grads, losses.phi_loss.detach(), losses.theta_loss.detach()], run.finite_scratch):
            # keep the last finite state and stop updating this run
            run.diverged_step = self.step_count
            run.diverged_reason = "non-finite loss or gradient"
            return
        for p, g in zip(params, grads):
            p.grad = g
        run.optimizer.step()

    def _probe_snr(self, batch: Tensor) -> None:
        view = self.config.view
        for run in self.runs:
            if run.diverged_step is not None:
                continue
            gen = self._seeded(self.step_count, _PROBE, run.m, run.cfg.k)
            try:
                res = gradient_snr(run.decoder, run.encoder, run.cfg.objective, self._batch_for(run, batch),
                                   run.cfg.k, run.m, view.snr_replicates, gen, run.cfg.beta, run.cfg.alpha)
            except RuntimeError as e:  # e.g. out of memory on a huge K·R: skip this probe, say why
                run.snr = {"error": str(e).splitlines()[0]}  # type: ignore[dict-item]
                continue
            run.snr = {"snr_encoder": res.encoder_mean, "snr_decoder": res.decoder_mean,
                       "snr_encoder_median": res.encoder_median, "snr_decoder_median": res.decoder_median}

    # ------------------------------------------------------------------ views and metrics
    def _view_run(self, run: _Run) -> RunView:
        x_obs = self.data[self.observation : self.observation + 1]
        gen = self._seeded(self.step_count, _VIEW, run.m, run.cfg.k, self.observation)
        return self._viewer.run_view(run, x_obs, gen)

    def _views(self) -> tuple[RunView, ...]:
        """Every run's view of the current state, evaluated once per (step, version)."""
        key = (self.step_count, self._version)
        if self._views_cache is None or self._views_cache[0] != key:
            self._views_cache = (key, tuple(self._view_run(r) for r in self.runs))
        return self._views_cache[1]

    def _record_metrics(self, views: tuple[RunView, ...] | None = None) -> None:
        views = views or self._views()
        for view in views:
            hist = self._history.setdefault(view.name, {})
            values = [view.metrics.get(name) for name in METRICS]
            for name, value in zip(METRICS, values):
                if value is not None:
                    if name not in hist:
                        hist[name] = _Series()
                    hist[name].append(self.step_count, value)
            self._rows.append(view.name, self.step_count, values)

    def snapshot(self) -> Snapshot:
        """The frozen numpy picture of the current state (cached until a step or a command)."""
        key = (self.step_count, self._version)
        if self._view_cache is not None and self._view_cache[:2] == key:
            snap = self._view_cache[2]
            return dataclasses.replace(snap, paused=self.paused, steps_per_s=self._rate)
        runs = self._views()
        z1, z2 = box_centres(self.problem.box, self.config.view.grid)
        warnings = []
        for v in runs:
            warnings += [f"{v.name}: {w}" for w in v.warnings]
        history = {
            name: {metric: series.array() for metric, series in hist.items()}
            for name, hist in self._history.items() if name in {v.name for v in runs}
        }
        snap = Snapshot(
            step=self.step_count, title=self.config.title, description=self.config.description,
            problem=self.problem.name, device=str(self.device), box=self.problem.box,
            z1=z1.astype(np.float32), z2=z2.astype(np.float32),
            data=self.data.cpu().numpy().astype(np.float32), observation=self.observation, runs=runs,
            history=history, snr_replicates=self.config.view.snr_replicates,
            snr_floor=snr_floor(self.config.view.snr_replicates), steps_per_s=self._rate, paused=self.paused,
            warnings=tuple(warnings),
        )
        self._view_cache = (key[0], key[1], snap)
        return snap

    # ------------------------------------------------------------------ driving
    def _drain(self, block: float | None = None) -> tuple[bool, bool]:
        """Apply queued commands. Returns (view changed, stop asked)."""
        changed = stop = False
        while True:
            try:
                name, kwargs = self._commands.get(timeout=block) if block else self._commands.get_nowait()
            except queue.Empty:
                return changed, stop
            block = None
            if name == "stop":
                stop = True
                continue
            try:
                changed |= self.apply(name, **kwargs)
            except ConfigError as e:  # a bad live command must not kill the session
                self.last_error = str(e)
                changed = True

    last_error: str = ""

    def iterate(self, hz: float = 30.0, every_steps: int | None = None, max_steps: int | None = None,
                start: bool = False) -> Iterator[Snapshot]:
        """Train and yield Snapshots: by wall clock (~hz) when live, or every N steps headless.

        Commands from ``send()`` apply between steps. While paused it trains nothing, waits for
        commands and yields after one changes the view. A "stop" command (or max_steps) ends it.
        """
        if start:
            self.paused = False
        yield self.snapshot()
        period = 1.0 / hz if hz else 0.0
        last_yield = time.perf_counter()
        rate_t0, rate_steps = last_yield, self.step_count
        while True:
            changed, stop = self._drain(block=0.05 if self.paused else None)
            if stop or (max_steps is not None and self.step_count >= max_steps):
                return
            if self.paused:
                if changed:
                    yield self.snapshot()
                    last_yield = time.perf_counter()
                rate_t0, rate_steps = time.perf_counter(), self.step_count
                continue
            t_step = time.perf_counter()
            self.step(1)
            if self.speed is not None:  # slow motion: hold each step to 1/speed seconds
                delay = 1.0 / self.speed - (time.perf_counter() - t_step)
                if delay > 0:
                    changed, stop = self._drain(block=delay)
                    if stop:
                        return
            now = time.perf_counter()
            if every_steps is not None:
                due = self.step_count % every_steps == 0
            else:
                due = now - last_yield >= period
                if due and not changed:
                    # a snapshot evaluates the views (grids, samples) unless this step logged metrics and
                    # so evaluated them already: when the next logged step is less than a period away, wait
                    # for it (at most one period late), and the views are evaluated once for both
                    wait = (-self.step_count) % self.config.view.log_every
                    due = wait == 0 or wait * (now - t_step) > period or now - last_yield >= 2 * period
            if due or changed:
                if now > rate_t0:
                    self._rate = (self.step_count - rate_steps) / (now - rate_t0)
                if now - rate_t0 > 2.0:
                    rate_t0, rate_steps = now, self.step_count
                yield self.snapshot()
                last_yield = time.perf_counter()

    # ------------------------------------------------------------------ results
    def metric_rows(self) -> list[dict[str, Any]]:
        """One row per logged step and run: run, step and METRICS (None where unknown)."""
        return self._rows.to_dicts()

    def final_metrics(self, run: int) -> dict[str, Any]:
        view = self.snapshot().runs[run]
        out: dict[str, Any] = {name: view.metrics.get(name) for name in
                               ("log_px", "elbo", "bound", "kl_qp", "kl_pq", "ess_frac", "snr_encoder", "snr_decoder")}
        out["approximate"] = view.approximate
        out["diverged"] = self.runs[run].diverged_step is not None
        out["diverged_step"] = self.runs[run].diverged_step
        out.update({name: view.metrics.get(name) for name in METRICS if name not in out})
        out["modes"] = [{"center": list(md.center), "p_mass": md.p_mass, "q_mass": md.q_mass} for md in view.modes]
        return out

    def summary(self, wall_s: float | None = None) -> dict[str, Any]:
        """The summary.json contract of design.md."""
        wall = self._train_seconds if wall_s is None else wall_s
        x_obs = self.data[self.observation].cpu().tolist()
        return {
            "config": config_to_dict(self.config),
            "seed": self.config.seed,
            "device": str(self.device),
            "steps": self.step_count,
            "wall_s": wall,
            "steps_per_s": self.step_count / wall if wall > 0 else 0.0,
            "runs": [
                {"name": r.cfg.name, "objective": r.cfg.objective, "k": r.cfg.k, "m": r.m, "beta": r.cfg.beta,
                 "alpha": r.cfg.alpha, "encoder": r.train.encoder, "x_obs": x_obs, "final": self.final_metrics(r.index)}
                for r in self.runs
            ],
        }

    # state for session files (save/open)
    def state_dict(self) -> dict[str, Any]:
        """A deep copy of everything a session file holds (no tensor is shared with the live session)."""
        return copy.deepcopy({
            "config": config_to_dict(self.config), "step": self.step_count, "observation": self.observation,
            "runs": [{"decoder": r.decoder.state_dict(), "encoder": r.encoder.state_dict(),
                      "optimizer": r.optimizer.state_dict(), "diverged_step": r.diverged_step, "snr": dict(r.snr)}
                     for r in self.runs],
            "history": {name: {metric: series.to_list() for metric, series in hist.items()}
                        for name, hist in self._history.items()},
            "rows": self._rows.to_dicts(),
        })

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | None = None) -> "Session":
        state = copy.deepcopy(state)
        session = cls(config_from_dict(state["config"]), device=device)
        session.step_count = int(state["step"])
        session.observation = int(state["observation"])
        for run, saved in zip(session.runs, state["runs"]):
            run.decoder.load_state_dict(saved["decoder"])
            run.encoder.load_state_dict(saved["encoder"])
            run.optimizer.load_state_dict(saved["optimizer"])
            run.diverged_step = saved["diverged_step"]
            run.snr = dict(saved["snr"])
        session._history = {name: {metric: _Series(rows) for metric, rows in hist.items()}
                            for name, hist in state["history"].items()}
        session._rows = _MetricRows.from_dicts(state["rows"])
        session._view_cache = session._views_cache = None
        return session
