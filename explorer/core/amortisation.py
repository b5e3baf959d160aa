"""The per-x optimum q* of a run's encoder family, and the gap of its bound split in two (Cremer, Li &
Duvenaud 2018, "Inference Suboptimality in Variational Autoencoders", §3):

    log p(x) − ELBO(q_φ(·|x)) = [log p(x) − ELBO(q*)] + [ELBO(q*) − ELBO(q_φ(·|x))]
                                 approximation gap       amortisation gap

q* is the member of the run's encoder family that is best *for this x alone*, by the run's own φ-objective
with θ frozen. An encoder maps x to per-x parameters ψ(x); q* sets them freely (:func:`family_of`):

- linear: ψ = the mean (the family's variance 2/3 is fixed);
- gaussian: ψ = mean and log-std (the encoder's clamp to [−7, 3] kept);
- full-gaussian: ψ = mean, log-diagonal and off-diagonal of the Cholesky factor;
- flow: ψ = (h, μ, log σ): the embedding h ∈ (−1, 1)^w that conditions every coupling layer (set through
  its pre-tanh value) and the base's mean and log-scale, free of each other (in q_φ both are a linear map
  of h). The couplings' weights are shared by all x, so they are not per-x: q* keeps them as they were at
  the fit (a copy).

The run's own φ-objective as a function of ψ, on fixed noise so that it is deterministic and L-BFGS can
maximise it (:func:`objective_of`): vae, the ELBO by the 20 × 20 Gauss–Hermite rule in ε (exact for a
Gaussian q against a polynomial log p(x, z)); iwae, miwae, piwae, dreg, stl, E[L_K] as a mean over R fixed
groups of K (MIWAE's and PIWAE's φ-objective is a mean of L_K; DReG and STL estimate ∇L_K); ciwae,
β·ELBO + (1−β)·E[L_K]; vr, the mean Rényi bound; rws, −KL(p‖q) on the posterior's cubature nodes (the
target of wake-φ as K grows).

Fits run beside training as background jobs (``Session.background_work``), warm-started from the better of
q_φ(·|x) and the q* of the nearest x fitted before, and are cached per x (:class:`Amortiser`). With a
frozen decoder q* depends on x only; a learning decoder's is fitted again every ``REFIT_STEPS`` steps.
The split is evaluated at every view: the exact ELBOs (core/exact.py), errors added; for runs with K > 1
and a K-particle objective also the split of L_K, by Monte Carlo on R common groups of K, ± its standard
error. A fit is kept only where it is at least as good as its start: for the ELBO, by the exact value.
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from . import exact
from .budget import Q_STAR_MAX_K as MAX_K, q_star_fit_groups
from .cubature import Box, hull, pad
from .exact import Estimate
from .grid import make_grid
from .models import (LOG_STD_MAX, LOG_STD_MIN, DiagGaussianEncoder, Encoder, FlowEncoder, FullGaussianEncoder,
                     LinearEncoder, _diag_log_prob, _diag_rsample)
from .objectives import log_mean_exp
from .errors import ConfigError, show
from .problems import Decoder, std_normal_log_prob
from .seeding import derive
from .snapshot import RunView
from .views import BOUNDARY, Q_GRID_C, Q_VIEW_C, bbox, square, usable

EVAL_POINTS = 8192  # particles for the L_K split (R·K, R ≥ EVAL_MIN_GROUPS)
EVAL_MIN_GROUPS = 8
MAX_ITERATIONS = 500  # L-BFGS iterations per start
MODE_STARTS = 2  # q_φ moved onto the heaviest modes of p(z|x): starts beside q_φ's own and the nearest x's
CHUNK_ITERATIONS = 4  # iterations between clock checks
TIE = 1e-5  # relative: fits whose scores differ by less are equally good (keep the one beside q_φ)
CONVERGED = 1e-7  # a chunk of iterations that gains less than this (relative) ends the fit: float32's floor
REFIT_STEPS = 100  # a learning decoder's q* is fitted again when it is this many steps old
# a flow's q* drifts with its shared couplings too, and one fit of a flow costs a hundred times a Gaussian's
# (measured: 500 steps of `run --preset ring` took 120 s refitting every 100 steps, 20 s without q*): its
# q* is fitted again when it is this many steps old (the panel's note says which step it is from)
FLOW_REFIT_STEPS = 500
# with θ frozen q* does not move, but of two equally good fits (mirror modes) the one beside q_φ is kept: a
# fit made while q_φ was still at its start is made again, warm-started, once q_φ has settled: at steps
# 1000, 2000, 4000, 8000 … (each gap twice the last, so the fits' share of a long run's time goes to 0)
SETTLED_REFIT_STEPS = 1000
CACHE_SIZE = 64  # fits kept per run (most recently used)
EPS_CACHE_SIZE = 16  # the L_K split's common ε, kept per (x, K): a view draws them no more
K_OBJECTIVES = ("iwae", "miwae", "piwae", "dreg", "stl", "ciwae", "vr", "rws")  # the L_K split applies (K > 1)


# --------------------------------------------------------------------------- families: ψ ↦ q_ψ
class Family:
    """q's family at one x: per-x parameters ψ [1, P] ↦ q_ψ(z) (reparameterised, exact log-density)."""

    def start(self, encoder: Encoder, x: Tensor) -> Tensor:
        """ψ of the amortised q_φ(·|x) (x [1, x_dim]), detached."""
        raise NotImplementedError

    def rsample(self, psi: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """z = T_ψ(ε) and log q_ψ(z) for ε [..., 1, d]."""
        raise NotImplementedError

    def log_prob(self, psi: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError

    def centred(self, psi: Tensor, center: tuple[float, ...]) -> Tensor:
        """ψ with q's location moved to ``center`` (a start for the fit)."""
        out = psi.clone()
        out[..., self.location] = torch.as_tensor(center, dtype=psi.dtype, device=psi.device)
        return out

    @property
    def location(self) -> slice:
        """Where q's location sits in ψ."""
        return slice(0, self.z_dim)  # type: ignore[attr-defined]


class DiagFamily(Family):
    """N(μ, diag σ²): ψ = (μ, log σ), or μ alone when the family's σ is fixed (the linear encoder)."""

    def __init__(self, z_dim: int, fixed_log_std: float | None = None):
        self.z_dim, self.fixed = z_dim, fixed_log_std

    def _parts(self, psi: Tensor) -> tuple[Tensor, Tensor]:
        mean = psi[..., : self.z_dim]
        if self.fixed is not None:
            return mean, torch.full_like(mean, self.fixed)
        return mean, psi[..., self.z_dim :].clamp(LOG_STD_MIN, LOG_STD_MAX)

    def start(self, encoder: Encoder, x: Tensor) -> Tensor:
        mean, log_std = encoder.mean_log_std(x)  # type: ignore[attr-defined]
        return (mean if self.fixed is not None else torch.cat([mean, log_std], -1)).detach().clone()

    def rsample(self, psi: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        return _diag_rsample(*self._parts(psi), eps)

    def log_prob(self, psi: Tensor, z: Tensor) -> Tensor:
        return _diag_log_prob(*self._parts(psi), z)


class FullFamily(Family):
    """N(μ, L Lᵀ): ψ = (μ, log diag L, the strictly lower part of L), as the encoder's network gives them."""

    def __init__(self, z_dim: int):
        self.z_dim = z_dim
        self.rows, self.cols = torch.tril_indices(z_dim, z_dim, offset=-1)

    def _parts(self, psi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        d = self.z_dim
        log_diag = psi[..., d : 2 * d].clamp(LOG_STD_MIN, LOG_STD_MAX)
        chol = torch.diag_embed(torch.exp(log_diag))
        if len(self.rows):
            lower = torch.zeros_like(chol)
            lower[..., self.rows, self.cols] = psi[..., 2 * d :]
            chol = chol + lower
        return psi[..., :d], chol, log_diag

    def start(self, encoder: Encoder, x: Tensor) -> Tensor:
        return encoder.net(x).detach().clone()  # type: ignore[attr-defined]

    def rsample(self, psi: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        mean, chol, log_diag = self._parts(psi)
        return mean + (chol @ eps.unsqueeze(-1)).squeeze(-1), std_normal_log_prob(eps) - log_diag.sum(-1)

    def log_prob(self, psi: Tensor, z: Tensor) -> Tensor:
        mean, chol, log_diag = self._parts(psi)
        diff = (z - mean).unsqueeze(-1)
        eps = torch.linalg.solve_triangular(chol.expand(diff.shape[:-2] + chol.shape[-2:]), diff, upper=False)
        return std_normal_log_prob(eps.squeeze(-1)) - log_diag.sum(-1)


class FlowFamily(Family):
    """The flow with its context set freely: ψ = (pre-tanh h, μ, log σ); the couplings of a frozen copy."""

    def __init__(self, encoder: FlowEncoder):
        self.flow = copy.deepcopy(encoder).requires_grad_(False)
        self.width, self.z_dim = self.flow.base.in_features, self.flow.z_dim

    @property
    def location(self) -> slice:
        return slice(self.width, self.width + self.z_dim)

    def _parts(self, psi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w, d = self.width, self.z_dim
        return (torch.tanh(psi[..., :w]), psi[..., w : w + d],
                psi[..., w + d :].clamp(LOG_STD_MIN, LOG_STD_MAX))

    def start(self, encoder: Encoder, x: Tensor) -> Tensor:
        u = encoder.embed(x)  # type: ignore[attr-defined]
        base = encoder.base(torch.tanh(u))  # type: ignore[attr-defined]
        return torch.cat([u, base], -1).detach().clone()

    def rsample(self, psi: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow.rsample_given(*self._parts(psi), eps)

    def log_prob(self, psi: Tensor, z: Tensor) -> Tensor:
        return self.flow.log_prob_given(*self._parts(psi), z)


def family_of(encoder: Encoder) -> Family:
    """The per-x family of ``encoder`` (a flow's family holds a copy of its couplings as they are now)."""
    if isinstance(encoder, LinearEncoder):
        return DiagFamily(encoder.z_dim, encoder.log_std_value)
    if isinstance(encoder, DiagGaussianEncoder):
        return DiagFamily(encoder.z_dim)
    if isinstance(encoder, FullGaussianEncoder):
        return FullFamily(encoder.z_dim)
    if isinstance(encoder, FlowEncoder):
        return FlowFamily(encoder)
    raise TypeError(f"no per-x family for {type(encoder).__name__}")


# --------------------------------------------------------------------------- the run's own objective
def uses_k_split(objective: str, k: int) -> bool:
    """Whether a run gets the split of L_K beside the ELBO's: K > 1 and a K-particle objective."""
    return objective in K_OBJECTIVES and k > 1


fit_groups = q_star_fit_groups  # R per evaluation while fitting (core/budget.py counts its memory)


def eval_groups(k: int) -> int:
    """R: groups of K particles for the Monte Carlo split of L_K."""
    return max(EVAL_MIN_GROUPS, EVAL_POINTS // k)


_GH_EPS, _GH_W = exact.GH_FINE


def objective_of(run_cfg: Any, family: Family, decoder: Decoder, x: Tensor, k_eps: Tensor | None,
                 post: exact.Posterior | None) -> Callable[[Tensor], Tensor]:
    """ψ ↦ the run's own φ-objective at x (to maximise), on fixed noise: ``k_eps`` [R, K, 1, d] for a
    K-particle objective, the posterior's nodes for rws (see the module docstring)."""
    name, beta, alpha = run_cfg.objective, run_cfg.beta, run_cfg.alpha
    gh_eps = torch.as_tensor(_GH_EPS, dtype=x.dtype, device=x.device)[:, None, :]
    gh_w = torch.as_tensor(_GH_W, dtype=x.dtype, device=x.device)

    def elbo(psi: Tensor) -> Tensor:
        z, log_q = family.rsample(psi, gh_eps)
        return (gh_w * (decoder.log_joint(x, z) - log_q)[:, 0]).sum()

    def log_w(psi: Tensor) -> Tensor:  # [R, K, 1]
        z, log_q = family.rsample(psi, k_eps)
        return decoder.log_joint(x, z) - log_q

    if name == "vae":
        return elbo
    if name == "rws":
        if post is None:
            raise ValueError("the posterior could not be integrated at this x: no forward KL to fit")
        live = post.weights[0] > 0
        nodes = torch.as_tensor(post.points[live], dtype=x.dtype, device=x.device)[:, None, :]
        weights = torch.as_tensor(post.weights[0][live], dtype=x.dtype, device=x.device)
        return lambda psi: (weights * family.log_prob(psi, nodes)[:, 0]).sum()
    if name == "ciwae":
        return lambda psi: beta * elbo(psi) + (1.0 - beta) * log_mean_exp(log_w(psi)).mean()
    if name == "vr":
        return lambda psi: (log_mean_exp((1.0 - alpha) * log_w(psi)) / (1.0 - alpha)).mean()
    return lambda psi: log_mean_exp(log_w(psi)).mean()


# --------------------------------------------------------------------------- q* and its fit
@dataclass
class QStar:
    """A fitted q* for one x: its parameters, its picture and (per decoder version) its bounds."""

    psi: Tensor  # [1, P]
    family: Family
    step: int  # the training step it was fitted at
    log_q: np.ndarray  # [n', n'] float32, read-only: log q* on the grid over box
    box: Box
    view: Box  # the image of ε ∈ [−3, 3]² (what the panel should show of it)
    version: int = -1  # the decoder version elbo and lk belong to
    elbo: Estimate | None = None
    lk: np.ndarray | None = None  # [R] L_K of each common group


class FitJob:
    """Fits q* for one run and x (a Session background job, worked in slices of ``work(seconds)``): L-BFGS
    on the objective from each start in turn; q* is the best of the starts and their optima by ``score``,
    a measure the fit did not see (the exact ELBO; L_K on other noise), so a fit to fixed noise that
    overfits it, or a start that was better, is not taken for the optimum."""

    decorates_only = True  # its result changes only what ``Amortiser.decorate`` adds to a view (session.py)

    def __init__(self, name: str, starts: list[Tensor], objective: Callable[[Tensor], Tensor],
                 score: Callable[[Tensor], float], done: Callable[[Tensor | None], None]):
        self.name = name
        self._starts, self._objective, self._score, self._done = list(starts), objective, score, done
        self._results: list[Tensor] = []
        self._psi: Tensor | None = None
        self._best: tuple[float, Tensor] | None = None  # of the current start's fit, by the objective
        self._optimizer: torch.optim.LBFGS | None = None
        self._iterations = 0

    def _value(self, psi: Tensor) -> float:
        with torch.no_grad():
            value = float(self._objective(psi))
        return value if math.isfinite(value) else -math.inf

    def _begin(self, start: Tensor) -> None:
        value = self._value(start)
        self._results.append(start)
        if not math.isfinite(value):
            return
        self._psi = start.clone().requires_grad_(True)
        self._best = (value, start)
        self._iterations = 0
        self._optimizer = torch.optim.LBFGS([self._psi], lr=1.0, max_iter=CHUNK_ITERATIONS,
                                            max_eval=4 * CHUNK_ITERATIONS, history_size=20,
                                            tolerance_grad=1e-7, tolerance_change=1e-10,
                                            line_search_fn="strong_wolfe")

    def _closure(self) -> Tensor:
        assert self._psi is not None
        loss = -self._objective(self._psi)
        (grad,) = torch.autograd.grad(loss, [self._psi])
        self._psi.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        return loss.detach()

    def work(self, seconds: float) -> bool:
        deadline = time.perf_counter() + seconds
        while True:
            if self._optimizer is None:
                if not self._starts:
                    return self._finish()
                self._begin(self._starts.pop(0))
                continue
            assert self._psi is not None and self._best is not None
            self._optimizer.step(self._closure)
            self._iterations += CHUNK_ITERATIONS
            value = self._value(self._psi.detach())
            gain = value - self._best[0]
            if gain > 0:
                self._best = (value, self._psi.detach().clone())
            if gain <= CONVERGED * (1.0 + abs(value)) or self._iterations >= MAX_ITERATIONS:
                self._results.append(self._best[1])
                self._optimizer = None
            if time.perf_counter() >= deadline:
                return False

    def _finish(self) -> bool:
        """q* is the first of the results (q_φ's start, its optimum, then the other starts') that scores within
        TIE of the best: of equally good optima (the mirror modes of the bimodal posterior) the one beside
        q_φ is drawn, not the other mode."""
        scores = [self._score(psi) for psi in self._results]
        top = max(scores, default=-math.inf)
        if not math.isfinite(top):
            self._done(None)
            return True
        best = next(i for i, score in enumerate(scores) if score >= top - TIE * (1.0 + abs(top)))
        self._done(self._results[best])
        return True


# --------------------------------------------------------------------------- per-run bookkeeping
ELBO, OWN = "elbo", "own"  # which q*: the ELBO's optimum (the ELBO split), the run's own objective's


def _drifting(run: Any) -> bool:
    """Whether q* moves as training goes on: θ learns, or the flow's shared couplings move."""
    return bool(run.theta) or run.train.encoder == "flow"


def _refit_bucket(run: Any, step: int) -> int:
    """Which refit period ``step`` falls in: a q* fitted in an earlier one is fitted again."""
    if run.train.encoder == "flow":
        return step // FLOW_REFIT_STEPS
    if _drifting(run):
        return step // REFIT_STEPS
    return 0 if step < SETTLED_REFIT_STEPS else 1 + (step // SETTLED_REFIT_STEPS).bit_length() - 1


def _x_key(x: Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in x.flatten().tolist())


def own_kind(objective: str) -> str:
    """The q* of a run's own objective: the ELBO's for a VAE, a fit of its own for the others."""
    return ELBO if objective == "vae" else OWN


def _slot(run: Any, kind: str) -> tuple:
    """Where a run's q* of one kind is cached: the run's own objective's depends on its live parameters."""
    cfg = run.cfg
    return (run.index, kind) if kind == ELBO else (run.index, kind, cfg.objective, cfg.k, cfg.beta, cfg.alpha)


class Amortiser:
    """q* per run and x for a Session: queues fits on the session's job list, caches them, and adds q* and
    the gaps to each run's view (:meth:`decorate`)."""

    def __init__(self, jobs: list, n_grid: int, seed: int, f_eps: float):
        self.jobs = jobs  # the Session's background job list (shared)
        self.n_grid, self.seed, self.f_eps = n_grid, seed, f_eps
        self.inline = True  # run a new fit at once (scripts); a Player sets False: fits go in the background
        self._cache: dict[tuple, collections.OrderedDict[tuple[float, ...], QStar]] = {}  # slot -> x -> q*
        self._pending: dict[tuple[int, str], tuple[tuple, FitJob]] = {}  # (run, kind) -> ((slot, x), its fit)
        self._tried: dict[tuple, set[tuple[int, bool]]] = {}  # (slot, x) -> (refit bucket, restart) queued
        self._notes: dict[tuple, str] = {}  # (slot, x) -> why there is no q*
        self._eps: dict[tuple, Tensor] = {}  # (x, K, z_dim, device) -> the L_K split's common ε

    def cancel(self) -> None:
        """Drop the fits that wait or run (view.q_star was turned off); finished ones stay cached."""
        for _, job in self._pending.values():
            if job in self.jobs:
                self.jobs.remove(job)
        self._pending.clear()
        self._tried.clear()

    def forget(self) -> None:
        """Drop every fit (the models were replaced: an opened session)."""
        self.cancel()
        self._cache.clear()
        self._tried.clear()
        self._notes.clear()

    def state(self, runs: list, x: Tensor) -> list[dict[str, Any]]:
        """The fits at x, for a session file (a reopened session shows the same q*, not a refit that ends a
        rounding error away): each run's slot, ψ, the step it was fitted at, and a flow's couplings then."""
        out = []
        for run in runs:
            for kind in dict.fromkeys((ELBO, own_kind(run.cfg.objective))):
                star = self.star(run, kind, x)
                if star is not None:
                    flow = star.family.flow.state_dict() if isinstance(star.family, FlowFamily) else {}
                    out.append({"run": run.index, "kind": kind, "psi": star.psi.clone(), "step": star.step,
                                "flow": {k: v.clone() for k, v in flow.items()}})
        return copy.deepcopy(out)

    def load_state(self, saved: Any, runs: list, x: Tensor, step: int) -> None:
        """Adopt ``state``'s fits (untrusted: checked against the runs; ConfigError names what is wrong)."""
        if not isinstance(saved, list) or len(saved) > 2 * len(runs):
            raise ConfigError(f"amortisation: damaged (expected a list of at most {2 * len(runs)} fits)")
        for i, entry in enumerate(saved):
            where = f"amortisation[{i}]"
            if not isinstance(entry, dict) or set(entry) != {"run", "kind", "psi", "step", "flow"}:
                raise ConfigError(f"{where}: damaged")
            index, kind, psi, fitted = entry["run"], entry["kind"], entry["psi"], entry["step"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(runs) \
                    or kind not in dict.fromkeys((ELBO, own_kind(runs[index].cfg.objective))):
                raise ConfigError(f"{where}: no such fit (run {show(index)}, {show(kind)})")
            if isinstance(fitted, bool) or not isinstance(fitted, int) or not 0 <= fitted <= step:
                raise ConfigError(f"{where}.step: expected a step in 0..{step}, got {show(fitted)}")
            run = runs[index]
            family = family_of(run.encoder)
            with torch.no_grad():
                start = family.start(run.encoder, x)
            if type(psi) is not torch.Tensor or psi.shape != start.shape or psi.dtype != start.dtype \
                    or not bool(torch.isfinite(psi).all()):
                raise ConfigError(f"{where}.psi: expected finite {list(start.shape)} {start.dtype}")
            if isinstance(family, FlowFamily):
                reference = family.flow.state_dict()
                flow = entry["flow"]
                if not isinstance(flow, dict) or set(flow) != set(reference) or not all(
                        type(flow[k]) is torch.Tensor and flow[k].shape == v.shape and flow[k].dtype == v.dtype
                        and bool(torch.isfinite(flow[k]).all()) for k, v in reference.items()):
                    raise ConfigError(f"{where}.flow: expected the flow's tensors")
                family.flow.load_state_dict(flow)
            slot, key = _slot(run, kind), _x_key(x)
            self._store(slot, key, self._make_star(psi.to(x.device), family, fitted, x))
            self._tried.setdefault((slot, key), set()).add((_refit_bucket(run, fitted), False))

    def star(self, run: Any, kind: str, x: Tensor) -> QStar | None:
        """The cached q* of a run (``ELBO`` or ``OWN``) at x, or None."""
        return self._cache.get(_slot(run, kind), {}).get(_x_key(x))

    # ------------------------------------------------------------------ fits
    def _queue(self, run: Any, kind: str, x: Tensor, key: tuple[float, ...], step: int, bucket: int,
               post_of: Callable[[], exact.Posterior | None], modes: tuple, restart: bool = False) -> None:
        """Queue (or, inline, run) a fit of q* for ``run`` at ``x``, dropping a pending fit at another x:
        once per refit bucket, and once more as a restart from q_φ alone (when q_φ beat q*)."""
        slot = _slot(run, kind)
        tried = self._tried.setdefault((slot, key), set())
        pending = self._pending.get((run.index, kind))
        if (bucket, restart) in tried or (pending is not None and pending[0] == (slot, key) and not restart):
            return
        if pending is not None:
            if pending[1] in self.jobs:
                self.jobs.remove(pending[1])
            del self._pending[(run.index, kind)]
        tried.add((bucket, restart))
        cfg = run.cfg
        if kind == OWN and cfg.k > MAX_K:
            self._notes[(slot, key)] = f"no q*: K = {cfg.k} is above {MAX_K}"
            return
        family = family_of(run.encoder)
        decoder = run.decoder if not run.theta else copy.deepcopy(run.decoder).requires_grad_(False)
        with torch.no_grad():
            start = family.start(run.encoder, x)
        starts = [start]
        cache = self._cache.get(slot, {})
        if cache and not restart:  # the nearest x's q*, and q_φ moved onto each heavy mode of p(z|x)
            near = min(cache, key=lambda other: sum((a - b) ** 2 for a, b in zip(other, key)))
            if cache[near].psi.shape == start.shape:
                starts.append(cache[near].psi)
        if not restart:
            starts += [family.centred(start, mode.center) for mode in modes[:MODE_STARTS]]
        objective_cfg = cfg if kind == OWN else dataclasses.replace(cfg, objective="vae")
        gen = torch.Generator(device=x.device).manual_seed(derive(self.seed, "q* fit", key, cfg.k))
        groups = fit_groups(objective_cfg.objective, cfg.k)
        z_dim = run.encoder.z_dim
        k_eps = torch.randn((groups, cfg.k, 1, z_dim), generator=gen, device=x.device) if groups else None
        post = post_of() if objective_cfg.objective == "rws" else None
        objective = objective_of(objective_cfg, family, decoder, x, k_eps, post)
        rng = np.random.default_rng(derive(self.seed, "q* check", key))
        check_eps = self._eval_eps(("check", *key), cfg.k, x, z_dim) if groups else None

        def score(psi: Tensor) -> float:
            if objective_cfg.objective == "vae":
                return self._exact_elbo(family, psi, decoder, x, rng).value
            if check_eps is None or objective_cfg.objective == "rws":
                return float(objective(psi))
            return float(self._lk_groups(lambda e: family.rsample(psi, e), decoder, x, check_eps).mean())

        def done(psi: Tensor | None) -> None:
            self._pending.pop((run.index, kind), None)
            if psi is None:
                self._notes[(slot, key)] = "no q*: the objective is not finite at its start"
                return
            self._store(slot, key, self._make_star(psi, family, step, x))

        job = FitJob(f"q* fit of {cfg.name}", starts, objective, score, done)
        if self.inline:
            while not job.work(1.0):
                pass
            return
        self._pending[(run.index, kind)] = ((slot, key), job)
        self.jobs.append(job)

    def _store(self, slot: tuple, key: tuple[float, ...], star: QStar) -> None:
        cache = self._cache.setdefault(slot, collections.OrderedDict())
        cache[key] = star
        cache.move_to_end(key)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)

    def _make_star(self, psi: Tensor, family: Family, step: int, x: Tensor) -> QStar:
        """q* with its picture: the images of the squares of views.py, and log q* on a grid over them."""
        with torch.no_grad():
            rims = torch.as_tensor(np.concatenate([square(Q_VIEW_C, BOUNDARY), square(Q_GRID_C, BOUNDARY)]),
                                   dtype=x.dtype, device=x.device)[:, None, :]
            z, _ = family.rsample(psi, rims)
            z = z[:, 0].double().cpu().numpy()
            view, box = bbox(z[: 4 * BOUNDARY]), pad(bbox(z[4 * BOUNDARY :]), 0.03)
            if usable(box):
                grid = make_grid(box, self.n_grid, dtype=x.dtype, device=x.device)
                log_q = family.log_prob(psi, grid.points[:, None, :])[:, 0].double().cpu().numpy()
                log_q = np.nan_to_num(log_q, nan=-1e30, neginf=-1e30).reshape(self.n_grid, self.n_grid)
            else:
                log_q = np.full((self.n_grid, self.n_grid), -1e30)
        shown = log_q.astype(np.float32)
        shown.flags.writeable = False
        return QStar(psi.detach().clone(), family, step, shown, box, view)

    # ------------------------------------------------------------------ bounds
    def _exact_elbo(self, family: Family, psi: Tensor, decoder: Decoder, x: Tensor,
                    rng: np.random.Generator) -> Estimate:
        """ELBO(q_ψ) = −E_q[log q − log p(x, z)] by core/exact.py's q side (in ε, no box needed)."""
        with torch.no_grad():
            def q_map(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                z, log_q = family.rsample(psi, torch.as_tensor(e, dtype=x.dtype, device=x.device)[:, None, :])
                return log_q[:, 0].double().cpu().numpy(), decoder.log_joint(x, z)[:, 0].double().cpu().numpy()

            log_q, f = q_map(exact.GH_EPS)
            side = exact.q_side(log_q, f, q_map, rng, f_eps=self.f_eps)
        return Estimate(-side.neg_elbo.value, side.neg_elbo.err)

    @staticmethod
    def _lk_groups(rsample: Callable[[Tensor], tuple[Tensor, Tensor]], decoder: Decoder, x: Tensor,
                   eps: Tensor) -> np.ndarray:
        """L_K of each of R groups [R] for the sampler ``rsample`` on ε [R, K, 1, d]."""
        with torch.no_grad():
            z, log_q = rsample(eps)
            return log_mean_exp(decoder.log_joint(x, z) - log_q)[:, 0].double().cpu().numpy()

    def _eval_eps(self, key: tuple, k: int, x: Tensor, z_dim: int) -> Tensor:
        """The common ε of the L_K split at x (derived from the seed, x and K; the last few kept)."""
        slot = (key, k, z_dim, x.device)
        if slot not in self._eps:
            gen = torch.Generator(device=x.device).manual_seed(derive(self.seed, "q* split", key, k))
            self._eps[slot] = torch.randn((eval_groups(k), k, 1, z_dim), generator=gen, device=x.device)
            while len(self._eps) > EPS_CACHE_SIZE:
                del self._eps[next(iter(self._eps))]
        return self._eps[slot]

    def _bounds(self, star: QStar, run: Any, x: Tensor, key: tuple[float, ...], version: int,
                k_split: bool) -> None:
        """star.elbo (exact) and star.lk (L_K of each common group) under the decoder as it is now."""
        if star.version == version:
            return
        rng = np.random.default_rng(derive(self.seed, "q* elbo", key))
        star.elbo = self._exact_elbo(star.family, star.psi, run.decoder, x, rng)
        star.lk = (self._lk_groups(lambda e: star.family.rsample(star.psi, e), run.decoder, x,
                                   self._eval_eps(key, run.cfg.k, x, run.encoder.z_dim)) if k_split else None)
        star.version = version

    # ------------------------------------------------------------------ the view
    def decorate(self, run: Any, x: Tensor, view: RunView, step: int, post_of: Callable[[], exact.Posterior | None]
                 ) -> RunView:
        """``view`` with q* (the run's own objective's, dashed) and the gaps at x, as far as they are fitted;
        fits that are missing or stale are queued (or run at once, inline)."""
        key = _x_key(x)
        drifting = _drifting(run)
        bucket = _refit_bucket(run, step)
        cfg = run.cfg
        own = own_kind(cfg.objective)
        k_split = uses_k_split(cfg.objective, cfg.k) and cfg.k <= MAX_K
        stars: dict[str, QStar | None] = {}
        for kind in dict.fromkeys((ELBO, own)):
            star = self.star(run, kind, x)
            if star is None or _refit_bucket(run, star.step) != bucket:
                self._queue(run, kind, x, key, step, bucket, post_of, view.modes)
                star = self.star(run, kind, x) or star
            stars[kind] = star
        version = step if run.theta else 0
        metrics, m = dict(view.metrics), view.metrics
        restart: list[str] = []
        star = stars[ELBO]
        if star is not None and "log_px" in m and "elbo_exact" in m:
            self._bounds(star, run, x, key, version, False)
            assert star.elbo is not None
            metrics["approximation_gap"] = m["log_px"] - star.elbo.value
            metrics["approximation_gap_err"] = m.get("log_px_err", math.inf) + star.elbo.err
            metrics["amortisation_gap"] = gap = star.elbo.value - m["elbo_exact"]
            metrics["amortisation_gap_err"] = err = star.elbo.err + m.get("elbo_exact_err", math.inf)
            if gap < -3.0 * err - exact.tolerance(gap):  # q_φ beats q*: q* was not the optimum
                restart.append(ELBO)
        star = stars[own]
        if star is not None and k_split and "log_px" in m:
            self._bounds(star, run, x, key, version, True)
            assert star.lk is not None
            lk_phi = self._lk_groups(run.encoder.conditional(x).rsample, run.decoder, x,
                                     self._eval_eps(key, cfg.k, x, run.encoder.z_dim))
            diff, n = star.lk - lk_phi, len(lk_phi)
            metrics["approximation_gap_k"] = m["log_px"] - float(star.lk.mean())
            metrics["approximation_gap_k_err"] = (m.get("log_px_err", math.inf)
                                                  + float(star.lk.std(ddof=1)) / math.sqrt(n))
            metrics["amortisation_gap_k"] = gap = float(diff.mean())
            metrics["amortisation_gap_k_err"] = err = float(diff.std(ddof=1)) / math.sqrt(n)
            if own == OWN and cfg.objective != "rws" and gap < -3.0 * err - exact.tolerance(gap):
                restart.append(OWN)
        for kind in restart:
            self._queue(run, kind, x, key, step, bucket, post_of, view.modes, restart=True)
        metrics = {name: v for name, v in metrics.items() if math.isfinite(v)}
        shown = stars[own]
        if shown is None:
            note = self._notes.get((_slot(run, own), key), "fitting q* …" if (run.index, own) in self._pending else "")
            return dataclasses.replace(view, metrics=metrics, q_star_note=note)
        view_box = view.view_box if view.view_box is None else hull(view.view_box, shown.view)
        return dataclasses.replace(view, metrics=metrics, q_star_log_q=shown.log_q, q_star_box=shown.box,
                                   q_star_note=f"q* of step {shown.step}" if drifting else "", view_box=view_box)
