"""Session: trains every [[runs]] entry of a config in lockstep from one seed, and gives Snapshots.

The Session is the synchronous model: build, ``step(n)``, views (``snapshot()``), results (summary,
metric rows) and state (session files). Playing it (pause, speed, a queue of commands, the snapshot
cadence) is :class:`explorer.core.player.Player`'s job; the metric history lives in
:mod:`explorer.core.history` and the derived seeds in :mod:`explorer.core.seeding`.

Determinism and common random numbers: all noise is drawn from generators re-seeded from
(seed, step, purpose, run shape), so runs whose shapes match see the *same* noise at each step, the
same config and seed give bit-identical metrics on the same machine, and the SNR probes or a snapshot
never shift the training noise. Runs whose architectures match start from the same weights.

A Session belongs to one thread at a time: the thread that serves it (a Player) or a script.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import anatomy, edits
from .amortisation import Amortiser
from .budget import check_session
from .cadence import probe_period
from .config import Config, ConfigError, RunConfig, TrainConfig, config_from_dict, config_to_dict
from .diagnostics import ParameterReplicates, choose_parameters, default_encoder_parameter, gradient_snr, snr_floor
from .heldout import HELDOUT_METRICS, HeldOutEvaluation
from .history import ROW_COLUMNS, MetricHistory
from .models import Encoder, make_encoder
from .objectives import OBJECTIVES, compute_losses, draw
from .optim_step import adam_step
from .problems import Decoder, Problem, make_problem
from .rendering import render as _render
from .sanity import assess_run
from .seeding import BATCH as _BATCH
from .seeding import PROBE as _PROBE
from .seeding import TRAIN as _TRAIN
from .seeding import VIEW as _VIEW
from .seeding import Seeder, derive
from .session_state import check_session_state
from .snapshot import METRICS, GradientSample, RunView, Snapshot
from .threads import ensure_default_threads
from .views import MANIFOLD_BOX, Viewer, box_centres


REPR_WIDTH = 1200  # pixels of the figure Jupyter shows inline
GRADIENT_KEEP = 4096  # replicate values of each chosen parameter a snapshot carries (the histograms)


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
    heldout: dict[str, float] = field(default_factory=dict)  # the last held-out evaluation's numbers (heldout.py)
    last_view: RunView | None = None
    chosen: dict[str, tuple[int, str]] = field(default_factory=dict)  # the histograms' parameters (probe indices)
    gradients: tuple[GradientSample, ...] = ()  # the last probe's replicates of them

    @property
    def m(self) -> int:
        return self.cfg.m if OBJECTIVES[self.cfg.objective].uses_m() else 1


class Session:
    """Lockstep training of a config's runs, with exact views of the shown observation."""

    _background_inline = True

    def __init__(self, config: Config, device: str | None = None):
        ensure_default_threads()
        self.device = resolve_device(device or config.device)
        self._build(config)

    # ------------------------------------------------------------------ construction / reset
    def _build(self, config: Config) -> None:
        check_session(config, str(self.device))  # refuse what would exhaust memory or hang, naming the key
        self.config = config
        self.problem: Problem = make_problem(config.problem.name, dict(config.problem.options))
        if self.problem.z_dim != 2:
            raise ConfigError(
                f"problem.dim: the explorer's views need a 2-D latent, got {self.problem.z_dim} "
                "(dimensions other than 2 are for the snr command)"
            )
        data_gen = torch.Generator().manual_seed(derive(config.seed, "data"))
        self.data = self.problem.sample_data(config.problem.n_data, data_gen).to(self.device)
        self._adopt_observation()
        self._viewer = Viewer(self.problem, config.view.grid, config.view.samples, self.device, config.problem.decoder)
        self.runs = [self._make_run(i) for i in range(len(config.runs))]
        self._choose_parameters(config)
        self.step_count = 0
        self.history = MetricHistory(r.cfg.name for r in self.runs)
        self._jobs: list[Any] = []  # background work beside training (see background_work)
        self._amortiser = Amortiser(self._jobs, self._viewer.n_q, config.seed, float(torch.finfo(self.data.dtype).eps))
        self._amortiser.inline = False  # the first views queue their fits: building stays quick
        self._job_warning = ""
        self._train_seconds = 0.0
        self._view_cache: tuple[int, int, Snapshot] | None = None
        self._views_cache: tuple[tuple[int, int], tuple[RunView, ...]] | None = None
        self._raw_views_cache: tuple[tuple[int, int], tuple[RunView, ...]] | None = None  # before q* (decorate)
        self._version = 0  # bumped by anything that changes the view without a step
        self._decorations = 0  # of those bumps, the ones only a q* fit made (the raw views stay as they are)
        self._seeder = Seeder(config.seed, self.device)
        heldout = self.problem.heldout()  # image problems: test images, evaluated every N steps in the background
        self._heldout_x = heldout[0].to(self.device) if heldout is not None else None
        self._heldout_every = heldout[1] if heldout is not None else 0
        self.probe_every = probe_period(config)  # steps between SNR probes (core/cadence.py; 0: none)
        if self.probe_every:
            self._probe_snr(self._batch())
        self._record_metrics()
        self._amortiser.inline = self._background_inline

    def _make_run(self, i: int) -> _Run:
        cfg, train, pcfg = self.config.runs[i], self.config.run_train(i), self.config.problem
        arch = (train.encoder, train.hidden, pcfg.decoder, pcfg.learn_decoder, self.config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive("init", *arch))  # same architecture → same initial weights
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
    def set_lr(self, run: int | None, lr: float) -> None:
        """The learning rate of run ``run``, or of every run (None); applies at the next step."""
        config = edits.set_lr(self.config, lr, run)  # validates, naming the key
        self._set_config(config)

    def set_run(self, run: int, **params: Any) -> None:
        """Change K / M / β / α of a run; applies at the next step. Validated like the config."""
        self._set_config(edits.replace_run(self.config, run, **{k: v for k, v in params.items() if v is not None}))

    @property
    def background_inline(self) -> bool:
        """Whether work a view asks for (q* fits, core/amortisation.py) runs at once, before the view is
        returned (True: scripts), or waits on the job list for ``background_work`` (a Player sets False)."""
        return self._background_inline

    @background_inline.setter
    def background_inline(self, inline: bool) -> None:
        self._background_inline = self._amortiser.inline = bool(inline)

    def set_observation(self, observation: int | Sequence[float]) -> None:
        """Show data point ``observation`` (an index), or any point of x-space (``x_dim`` numbers)."""
        if isinstance(observation, (int, np.integer)) and not isinstance(observation, bool):
            config = edits.set_observation(self.config, int(observation))
        else:
            point = observation.tolist() if isinstance(observation, (np.ndarray, Tensor)) else observation
            config = edits.set_x_obs(self.config, point, self.problem.x_dim)
        self._set_config(config)
        self._adopt_observation()

    def _adopt_observation(self) -> None:
        """The shown x from the config: ``observation`` is its index in the data, None for a free point."""
        problem = self.config.problem
        if problem.x_obs is None:
            self.observation: int | None = problem.observation
            self._x_obs = self.data[problem.observation : problem.observation + 1]
        else:
            self.observation = None
            self._x_obs = torch.tensor([problem.x_obs], dtype=self.data.dtype, device=self.device)

    @property
    def x_obs(self) -> Tensor:
        """The shown observation, [1, x_dim]."""
        return self._x_obs

    def set_view(self, key: str, value: Any) -> None:
        """One of the view keys that change only what a snapshot shows (``edits.LIVE_VIEW_KEYS``): the
        gradient histograms and arrows, q* and the gaps, and the parameters the histograms show (from the
        next probe on)."""
        if f"view.{key}" not in edits.LIVE_VIEW_KEYS:
            raise ConfigError(f"view.{key}: cannot be changed live (only {', '.join(edits.LIVE_VIEW_KEYS)})")
        config = edits.edit(self.config, f"view.{key}", value)
        self._choose_parameters(config)  # a parameter name that is not there is refused before anything changes
        self._set_config(config)
        if not config.view.q_star:
            self._amortiser.cancel()

    def _choose_parameters(self, config: Config) -> None:
        """Resolve the histograms' parameter names for every run (ConfigError naming the key, else)."""
        view = config.view
        chosen = [choose_parameters(r.decoder, r.encoder, view.gradients_encoder, view.gradients_decoder)
                  for r in self.runs]
        for run, c in zip(self.runs, chosen):
            run.chosen = c

    def _set_config(self, config: Config) -> None:
        """Adopt a config that differs from the current one only in live keys (see core/edits.py); one that
        would not fit the resource budget (a live K of 10⁶) is refused like a file would be."""
        check_session(config, str(self.device))
        for run, cfg in zip(self.runs, config.runs):
            self.history.rename(run.cfg.name, cfg.name)  # a generated name follows K: keep the curves
            run.cfg, run.train = cfg, config.run_train(run.index)
            for group in run.optimizer.param_groups:
                group["lr"] = run.train.lr
        self.config = config
        self.probe_every = probe_period(config)  # K or M changed: so does the probe's cost
        self._version += 1

    def apply(self, name: str, **kwargs: Any) -> bool:
        """Apply one command now (``step``, ``set_lr``, ``set_run``, ``set_observation``, ``set_view``,
        ``reset``, ``reseed``). Returns True when it changed what a snapshot would show.

        Bad arguments raise ConfigError naming the command, whatever went wrong inside."""
        try:
            return self._apply(name, dict(kwargs))
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"command {name}: bad arguments {kwargs!r} ({e.__class__.__name__}: {e})") from None

    def _apply(self, name: str, kwargs: dict[str, Any]) -> bool:
        if name == "step":
            self.step(int(kwargs.get("n", 1)))
        elif name == "set_lr":
            self.set_lr(kwargs.get("run"), kwargs["lr"])
        elif name == "set_run":
            self.set_run(kwargs.pop("run"), **kwargs)
        elif name == "set_observation":
            self.set_observation(kwargs["point"] if "point" in kwargs else kwargs["index"])
        elif name == "set_view":
            self.set_view(kwargs["key"], kwargs["value"])
        elif name == "reset":
            self.reset()
        elif name == "reseed":
            self.reseed(kwargs.get("seed"))
        else:
            raise ConfigError(f"command: unknown command {name!r}")
        return True

    def _run(self, run: Any) -> _Run:
        if isinstance(run, bool) or not isinstance(run, int) or not 0 <= run < len(self.runs):
            raise ConfigError(f"runs: index {run!r} is out of range (there are {len(self.runs)} runs)")
        return self.runs[run]

    # ------------------------------------------------------------------ training
    def _seeded(self, *parts: Any) -> torch.Generator:
        return self._seeder.generator(*parts)

    def _batch(self) -> Tensor:
        n = self.data.shape[0]
        size = min(max(r.train.batch_size for r in self.runs), n)  # each run takes its first batch_size rows
        if size == n:
            return self.data
        idx = torch.randperm(n, generator=self._seeded(self.step_count, _BATCH), device=self.device)[:size]
        return self.data[idx]

    def step(self, n: int = 1, progress: Callable[[int, int], Any] | None = None) -> None:
        """Train every run n steps in lockstep. Logs metrics every ``view.log_every`` steps.

        ``progress(done, n)``, when given, is called after each step (``done`` of the ``n`` steps of
        this call), e.g. ``lambda done, n: bar.update(1)`` for a tqdm bar."""
        n = int(n)
        for done in range(1, n + 1):
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
            every = self.probe_every
            if every and self.step_count % every == 0:
                self._probe_snr(batch)
            if self._heldout_every and self.step_count % self._heldout_every == 0:
                self._queue_heldout()
            if self.step_count % self.config.view.log_every == 0:
                self._record_metrics()
            if progress is not None:
                progress(done, n)

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
        adam_step(run.optimizer)

    def _probe_snr(self, batch: Tensor) -> None:
        view = self.config.view
        for run in self.runs:
            if run.diverged_step is not None:
                continue
            gen = self._seeded(self.step_count, _PROBE, run.m, run.cfg.k)
            try:
                res = gradient_snr(run.decoder, run.encoder, run.cfg.objective, self._batch_for(run, batch),
                                   run.cfg.k, run.m, view.snr_replicates, gen, run.cfg.beta, run.cfg.alpha,
                                   keep_parameters=run.chosen, keep=GRADIENT_KEEP)
            except RuntimeError as e:  # e.g. out of memory on a huge K·R: skip this probe, say why
                run.snr = {"error": str(e).splitlines()[0]}  # type: ignore[dict-item]
                run.gradients = ()
                continue
            run.snr = {"snr_encoder": res.encoder_mean, "snr_decoder": res.decoder_mean,
                       "snr_encoder_median": res.encoder_median, "snr_decoder_median": res.decoder_median,
                       "snr_step": float(self.step_count)}
            samples = []
            for group, kept in (("encoder", res.encoder_parameter), ("decoder", res.decoder_parameter)):
                if kept is not None:
                    run.snr[f"snr_{group}_param"] = kept.snr
                    samples.append(self._gradient_sample(run, group, kept, res.replicates))
            run.gradients = tuple(samples)

    def _gradient_sample(self, run: _Run, group: str, kept: ParameterReplicates, replicates: int) -> GradientSample:
        """A probe's kept replicates as the histograms show them: gradients of the objective (ascent)."""
        if group == "decoder":
            label = f"decoder θ: {kept.name}"
        elif kept.name == default_encoder_parameter(run.encoder):
            label = f"encoder φ: {kept.name}, the bias of {anatomy.location_name(run.encoder)} in z₁"
        else:
            label = f"encoder φ: {kept.name}"
        values = (-kept.values).astype(np.float32)
        values.flags.writeable = False
        return GradientSample(group, kept.name, label, values, -kept.mean, kept.sd, replicates, self.step_count)

    # ------------------------------------------------------------------ views and metrics
    def _raw_view(self, run: _Run) -> RunView:
        shown = self.observation if self.observation is not None else self.config.problem.x_obs
        gen = self._seeded(self.step_count, _VIEW, run.m, run.cfg.k, shown)
        view = self._viewer.run_view(run, self._x_obs, gen, arrows=self.config.view.arrows)
        return dataclasses.replace(view, gradients=run.gradients)  # the last probe's replicates (the histograms)

    def _decorated(self, run: _Run, view: RunView) -> RunView:
        if not self.config.view.q_star:  # no q* fits, no gaps (view.q_star = false)
            return view
        x_obs = self._x_obs
        return self._amortiser.decorate(run, x_obs, view, self.step_count, lambda: self._posterior(run, x_obs))

    def _posterior(self, run: _Run, x_obs: Tensor) -> Any:
        view = self._viewer.posterior(run, x_obs)
        return None if view is None else view.post

    def _views(self) -> tuple[RunView, ...]:
        """Every run's view of the current state, evaluated once per (step, version). Inline (a script),
        waiting background work is finished first, so what a view asked for is in it."""
        if self._background_inline and self._jobs and self._amortiser.inline:
            self.finish_background()
        key = (self.step_count, self._version)
        if self._views_cache is None or self._views_cache[0] != key:
            raw_key = (self.step_count, self._version - self._decorations)  # a finished q* fit keeps these
            if self._raw_views_cache is None or self._raw_views_cache[0] != raw_key:
                self._raw_views_cache = (raw_key, tuple(self._raw_view(r) for r in self.runs))
            raw = self._raw_views_cache[1]
            self._views_cache = (key, tuple(self._decorated(r, v) for r, v in zip(self.runs, raw)))
        return self._views_cache[1]

    def _record_metrics(self, views: tuple[RunView, ...] | None = None) -> None:
        for view in views or self._views():
            self.history.record(self.step_count, view.name, view.metrics)

    def snapshot(self) -> Snapshot:
        """The frozen numpy picture of the current state (cached until a step or a command)."""
        key = (self.step_count, self._version)
        if self._view_cache is not None and self._view_cache[:2] == key:
            return self._view_cache[2]
        runs = self._views()
        z1, z2 = box_centres(self.problem.box, self.config.view.grid)
        warnings = [self._job_warning] if self._job_warning else []
        for v in runs:
            warnings += [f"{v.name}: {w}" for w in v.warnings]
        history = self.history.arrays(v.name for v in runs)
        snap = Snapshot(
            step=self.step_count, title=self.config.title, description=self.config.description,
            problem=self.problem.name, device=str(self.device), box=self.problem.box,
            z1=z1.astype(np.float32), z2=z2.astype(np.float32),
            data=self.data.cpu().numpy().astype(np.float32), observation=self.observation, runs=runs,
            history=history, snr_replicates=self.config.view.snr_replicates,
            snr_floor=snr_floor(self.config.view.snr_replicates), snr_every=self.probe_every, warnings=tuple(warnings),
            show_gradients=self.config.view.gradients, show_arrows=self.config.view.arrows,
            x_obs=self._x_obs[0].cpu().numpy().astype(np.float32),
            image_shape=self.problem.image_shape,
            manifold_box=MANIFOLD_BOX if self.problem.image_shape is not None else None,
        )
        self._view_cache = (key[0], key[1], snap)
        return snap

    # ------------------------------------------------------------------ background work
    def background_pending(self) -> bool:
        """Whether work beside training is waiting (fits and evaluations a view asked for)."""
        return bool(self._jobs)

    def background_work(self, seconds: float) -> bool:
        """Work on the first waiting job for about ``seconds``; True when a job finished (the view changed).

        A job is an object with ``work(seconds) -> bool`` (True when done). Whoever serves the session
        calls this between training steps (core/player.py gives it a bounded share of the time); a script
        can call it until ``background_pending()`` is False."""
        if not self._jobs:
            return False
        if not self._jobs[0].work(seconds):
            return False
        job = self._jobs.pop(0)
        self._version += 1
        if getattr(job, "decorates_only", False):  # a q* fit: the views are decorated again, not evaluated
            self._decorations += 1
        return True

    def finish_background(self, max_seconds: float = 60.0) -> None:
        """Work through the waiting jobs (a failing one is dropped and named, as the Player does), for at most
        about ``max_seconds``: what a result (summary.json) needs before it is read."""
        deadline = time.perf_counter() + max_seconds
        while self.background_pending() and time.perf_counter() < deadline:
            try:
                self.background_work(min(1.0, max(deadline - time.perf_counter(), 0.01)))
            except Exception as e:  # noqa: BLE001 — reported in the warnings, as the Player reports it
                self.background_failed(e)

    def background_failed(self, error: BaseException) -> None:
        """The first job raised: drop it and say so in the next snapshot's warnings."""
        job = self._jobs.pop(0) if self._jobs else None
        self._job_warning = f"{getattr(job, 'name', 'a background job')} failed: {error.__class__.__name__}: {error}"
        self._version += 1

    def _queue_heldout(self) -> None:
        """Queue the held-out evaluation of this step, unless one is still on its way (then the curve gets
        its next point from that one, and the next is queued at the first due step after it)."""
        if self._heldout_x is None or any(isinstance(j, HeldOutEvaluation) for j in self._jobs):
            return
        self._jobs.append(HeldOutEvaluation(self.step_count, self.runs, self._heldout_x, self.problem.box,
                                            self.config.seed, self._heldout_done))

    def _heldout_done(self, step: int, results: list[dict[str, float]]) -> None:
        for run, numbers in zip(self.runs, results):
            run.heldout = numbers

    def settle(self) -> None:
        """Finish the background work now, with the held-out evaluation of the current step (an older one
        still waiting is dropped), and log its numbers on the current step's metrics row: what a headless
        run does before it reports (``summary`` calls it). Blocks for as long as that takes."""
        if self._heldout_x is not None:
            self._jobs[:] = [j for j in self._jobs if not isinstance(j, HeldOutEvaluation) or j.step == self.step_count]
            if not self.runs[0].heldout.get("test_step") == self.step_count:
                self._queue_heldout()
        while self._jobs:
            try:
                self.background_work(60.0)
            except Exception as e:  # noqa: BLE001 — named in the warnings, as when the Player runs it
                self.background_failed(e)
        if self._heldout_x is not None and self.runs[0].heldout.get("test_step") == self.step_count:
            self._record_metrics()  # the current step's row gains the held-out columns (history.record)

    # ------------------------------------------------------------------ pictures
    def render(self, path: str | os.PathLike | None = None, *, width: int | None = None, style: str = "normal",
               panel: str | None = None) -> bytes | None:
        """The window's figure of the current state, drawn offscreen: written to ``path`` (.png or .svg)
        and None returned, or with no path the PNG's bytes. ``width`` in pixels (default 1600), ``style``
        ``"normal"`` or ``"talk"`` (large fonts, thick lines), ``panel`` one panel's name. Needs PySide6:
        the GUI layer draws it (``explorer`` installs the drawing function; core never imports Qt)."""
        return _render(self.snapshot(), path, width=width, style=style, panel=panel)

    def _repr_png_(self) -> bytes | None:
        """Jupyter shows a session inline as its figure."""
        return self.render(width=REPR_WIDTH)

    # ------------------------------------------------------------------ results
    def metric_rows(self) -> list[dict[str, Any]]:
        """One row per logged step and run: run, step and history.ROW_COLUMNS (None where unknown)."""
        return self.history.rows.to_dicts()

    def metrics_frame(self) -> Any:
        """``metric_rows()`` as a pandas DataFrame (pandas is optional: ``pip install 'vae-explorer[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Session.metrics_frame() needs pandas, which is not installed: "
                              "pip install 'vae-explorer[pandas]' (or pandas)") from None
        return pd.DataFrame(self.metric_rows(), columns=["run", "step", *ROW_COLUMNS])

    def final_metrics(self, run: int) -> dict[str, Any]:
        view = self.snapshot().runs[run]
        # the held-out evaluation's numbers only where there are held-out data (image problems)
        held_out = self._heldout_x is not None
        out: dict[str, Any] = {name: view.metrics.get(name) for name in METRICS
                               if held_out or name not in HELDOUT_METRICS}
        out["approximate"] = view.approximate
        if held_out:
            for name in ("test_step", "test_images"):
                out[name] = int(view.metrics[name]) if name in view.metrics else None
        out["diverged"] = self.runs[run].diverged_step is not None
        out["diverged_step"] = self.runs[run].diverged_step
        out["modes"] = [{"center": list(md.center), "p_mass": md.p_mass, "q_mass": md.q_mass} for md in view.modes]
        out["suspect"] = assess_run(out, {m: s.array() for m, s in self.history.series.get(view.name, {}).items()})
        return out

    def summary(self, wall_s: float | None = None) -> dict[str, Any]:
        """The summary.json contract of design.md. ``observation`` says which x is shown: its index in the
        data, or null for a free point (``x_obs`` of each run is the point either way). Waiting background
        work (the q* fits of the gaps; an image problem's held-out evaluation, of the final step) is finished
        first (``settle``)."""
        self.settle()
        wall = self._train_seconds if wall_s is None else wall_s
        x_obs = self._x_obs[0].cpu().tolist()
        return {
            "config": config_to_dict(self.config),
            "seed": self.config.seed,
            "device": str(self.device),
            "steps": self.step_count,
            "wall_s": wall,
            "steps_per_s": self.step_count / wall if wall > 0 else 0.0,
            "observation": self.observation,
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
            "config": config_to_dict(self.config), "step": self.step_count,
            "observation": self.config.problem.observation,
            "runs": [{"decoder": r.decoder.state_dict(), "encoder": r.encoder.state_dict(),
                      "optimizer": r.optimizer.state_dict(), "diverged_step": r.diverged_step, "snr": dict(r.snr)}
                     for r in self.runs],
            "amortisation": self._amortiser.state(self.runs, self._x_obs),
            **self.history.state(),
        })

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | None = None) -> "Session":

        state = copy.deepcopy(state)
        session = cls(config_from_dict(state["config"]), device=device)
        check_session_state(state, session)
        session.step_count = int(state["step"])
        if session.config.problem.x_obs is None:
            session.set_observation(int(state["observation"]))
        for run, saved in zip(session.runs, state["runs"]):
            run.decoder.load_state_dict(saved["decoder"])
            run.encoder.load_state_dict(saved["encoder"])
            run.optimizer.load_state_dict(saved["optimizer"])
            run.diverged_step = saved["diverged_step"]
            run.snr = dict(saved["snr"])
        session.history = MetricHistory.from_state(state["history"], state["rows"])
        session._amortiser.forget()  # fitted for the weights it was built with
        session._amortiser.load_state(state.get("amortisation", []), session.runs, session._x_obs, session.step_count)
        session._view_cache = session._views_cache = session._raw_views_cache = None
        return session
