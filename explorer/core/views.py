"""What a snapshot shows of one run for the shown observation x: the exact numbers with their error bars
(core/exact.py), p(z|x) and q(z|x) on display grids over their own regions, the view that follows them,
mode coverage, the K weighted particles and q's samples. ``Session`` calls ``Viewer.run_view`` per run.

The posterior side depends on θ and x only: with a frozen decoder it is computed once per observation and
shared by every run (the same float32 array in every snapshot, which the GUI recognises without comparing).
Everything here takes x as a vector, so any point of x-space works, not only the data.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import exact
from .anatomy import gradient_anatomy
from .cubature import Box, LogDensity, hull, pad
from .diagnostics import ess_frac
from .exact import Estimate, Posterior
from .grid import MODE_MIN_MASS, Grid, basins, make_grid
from .objectives import draw, log_mean_exp, normalised_weights
from .problems import Decoder, Problem
from .snapshot import ModeView, RunView

CORE_DEPTH = 10.0  # nats: the part of p(z|x) the suggested view shows (its contours are 0.5–4.5 nats down)
Q_VIEW_C, Q_GRID_C = 3.0, 4.0  # q's part of the view: the image of ε ∈ [−3, 3]²; q's grid: of [−4, 4]²
BOUNDARY = 64  # points per side of those squares
MANIFOLD_N = 15  # image problems: the decoded manifold's mean images per side, over MANIFOLD_BOX
MANIFOLD_BOX = (-3.0, 3.0, -3.0, 3.0)  # ±3 prior standard deviations
POSTERIORS_KEPT = 32  # frozen-decoder posteriors cached (most recently shown x first): a drag visits many x


def box_centres(box: Box, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of the n × n grid over ``box`` along z₁ and z₂."""
    h1, h2 = (box[1] - box[0]) / n, (box[3] - box[2]) / n
    return box[0] + h1 * (np.arange(n) + 0.5), box[2] + h2 * (np.arange(n) + 0.5)


def square(c: float, k: int) -> np.ndarray:
    """k points per side around the square [−c, c]² ([4k, 2])."""
    t = np.linspace(-c, c, k, endpoint=False)
    return np.concatenate([np.stack([t, np.full(k, -c)], 1), np.stack([np.full(k, c), t], 1),
                           np.stack([-t, np.full(k, c)], 1), np.stack([np.full(k, -c), -t], 1)])


# the noise every view maps through q: the rims of q's view and grid squares, then the exact ELBO's nodes
_FIXED_EPS = np.concatenate([square(Q_VIEW_C, BOUNDARY), square(Q_GRID_C, BOUNDARY), exact.GH_EPS])


def bbox(points: np.ndarray) -> Box:
    return (float(points[:, 0].min()), float(points[:, 0].max()), float(points[:, 1].min()), float(points[:, 1].max()))


def usable(box: Box) -> bool:
    """A finite box whose sides are wide enough for a grid in float32 at its distance from 0."""
    if not all(math.isfinite(b) for b in box):
        return False
    scale = max(abs(b) for b in box)
    return min(box[1] - box[0], box[3] - box[2]) > 1e-5 * max(scale, 1.0)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


@dataclass(frozen=True)
class PosteriorView:
    """The posterior for one (θ, x): its exact integral, and its picture on an n × n grid over its box."""

    post: Posterior
    grid: Grid  # n × n display grid over post.box
    log_post: np.ndarray  # [n, n] float32, read-only: log p(z|x) = log p(x, z) − log p(x)
    labels: np.ndarray  # [n, n] each display cell's mode (basins with shallow saddles merged)
    modes: tuple[tuple[int, float], ...]  # (label, p's mass) of each basin holding ≥ MODE_MIN_MASS, heaviest first
    core: Box  # display cells within CORE_DEPTH nats of the peak, padded by a cell


class Viewer:
    """Builds RunViews for one problem and view config, caching what depends on θ and x only."""

    def __init__(self, problem: Problem, n: int, samples: int, device: torch.device, decoder_kind: str):
        self.problem, self.n, self.samples, self.device = problem, n, samples, device
        self.n_q = max(16, n // 2)
        self.decoder_kind = decoder_kind
        self._cache: collections.OrderedDict[tuple, PosteriorView | None] = collections.OrderedDict()
        self._last: dict[int, tuple[tuple, Posterior]] = {}  # per run with a learning decoder: its last posterior

    # ------------------------------------------------------------------ the posterior
    def _log_joint(self, decoder: Decoder, x_obs: Tensor) -> LogDensity:
        dtype = x_obs.dtype

        def log_f(points: np.ndarray) -> np.ndarray:
            z = torch.as_tensor(points, dtype=dtype, device=self.device)[:, None, :]
            return _numpy(decoder.log_joint(x_obs, z))[:, 0]

        return log_f

    def _log_q(self, q, x_obs: Tensor) -> LogDensity:
        def log_q(points: np.ndarray) -> np.ndarray:
            return _numpy(q.log_prob(torch.as_tensor(points, dtype=x_obs.dtype, device=self.device)[:, None, :]))[:, 0]

        return log_q

    def posterior(self, run: Any, x_obs: Tensor) -> PosteriorView | None:
        """p_θ(z|x_obs): with a frozen decoder computed once per observation; with a learning one at every
        call, on last time's nodes while they still meet the goal (``exact.refresh``), else anew."""
        frozen = not run.theta
        key = (self.decoder_kind, tuple(x_obs.flatten().tolist()))
        if frozen and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        log_f = self._log_joint(run.decoder, x_obs)
        last = None if frozen else self._last.get(run.index)
        post = None
        f_eps = float(torch.finfo(x_obs.dtype).eps)
        if last is not None and last[0] == key:
            post = exact.refresh(last[1], log_f, f_eps=f_eps)
        if post is None:
            seed = self.problem.box if last is None else hull(self.problem.box, last[1].box)
            post = exact.integrate_posterior(log_f, seed, f_eps=f_eps)
        view = None if post is None else self._posterior_view(run.decoder, x_obs, post)
        if frozen:
            self._cache[key] = view
            while len(self._cache) > POSTERIORS_KEPT:
                self._cache.popitem(last=False)
        elif post is not None:
            self._last[run.index] = (key, post)
        return view

    def _posterior_view(self, decoder: Decoder, x_obs: Tensor, post: Posterior) -> PosteriorView:
        grid = make_grid(post.box, self.n, dtype=x_obs.dtype, device=self.device)
        log_post = _numpy(decoder.log_joint(x_obs, grid.points[:, None, :])).reshape(self.n, self.n) - post.log_px.value
        log_post = np.where(np.isnan(log_post), -np.inf, log_post)
        mass = np.exp(log_post + grid.log_cell_area)
        peak = float(log_post.max())
        rows = np.flatnonzero((log_post >= peak - CORE_DEPTH).any(1))
        cols = np.flatnonzero((log_post >= peak - CORE_DEPTH).any(0))
        h1, h2 = grid.cell
        core = (float(grid.z1[rows[0]] - 1.5 * h1), float(grid.z1[rows[-1]] + 1.5 * h1),
                float(grid.z2[cols[0]] - 1.5 * h2), float(grid.z2[cols[-1]] + 1.5 * h2))
        shown = log_post.astype(np.float32)
        shown.flags.writeable = False
        labels = basins(log_post)
        p_by_basin = np.bincount(labels.ravel(), weights=(mass / mass.sum()).ravel(), minlength=labels.size)
        heavy = np.flatnonzero(p_by_basin >= MODE_MIN_MASS)
        modes = tuple((int(r), float(p_by_basin[r])) for r in heavy[np.argsort(-p_by_basin[heavy], kind="stable")])
        return PosteriorView(post, grid, shown, labels, modes, core)

    # ------------------------------------------------------------------ one run
    @torch.no_grad()
    def run_view(self, run: Any, x_obs: Tensor, gen: torch.Generator, arrows: bool = False) -> RunView:
        """The run's view for x_obs [1, x_dim]; ``gen`` seeds its particles, samples and tail draws.
        ``arrows``: also each particle's share of the encoder's gradient (core/anatomy.py)."""
        pv = self.posterior(run, x_obs)
        decoder = run.decoder
        k, m = run.cfg.k, run.m
        dtype, device = x_obs.dtype, self.device
        eps_particles = torch.randn((m, k, 1, 2), generator=gen, device=device)
        particles = draw(decoder, run.encoder, x_obs, eps_particles)
        shares = None
        if arrows:  # the same particles, differentiated (its own pass: this one runs without autograd)
            shares = gradient_anatomy(decoder, run.encoder, run.cfg.objective, x_obs, eps_particles,
                                      run.cfg.beta, run.cfg.alpha)
        log_w = particles.log_w  # [M, K, 1]
        q = particles.q  # q_φ(·|x_obs), its pass over x done once
        eps_s = torch.randn((self.samples, 1, 2), generator=gen, device=device)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen, device=device)))
        # one pass for q's samples, the rims of q's region and the Gauss–Hermite nodes of the exact ELBO
        fixed = torch.as_tensor(_FIXED_EPS, dtype=dtype, device=device)[:, None, :]
        z_all, log_q_all = q.rsample(torch.cat([eps_s, fixed]))
        q_samples = z_all[: self.samples, 0].cpu().numpy()
        rim_z = _numpy(z_all[self.samples : self.samples + 8 * BOUNDARY, 0])
        z_gh, log_q_gh = z_all[self.samples + 8 * BOUNDARY :], log_q_all[self.samples + 8 * BOUNDARY :]
        log_q_gh, f_gh = _numpy(log_q_gh)[:, 0], _numpy(decoder.log_joint(x_obs, z_gh))[:, 0]
        images = self._images(decoder, z_gh) if self.problem.image_shape is not None else {}
        f_eps = float(torch.finfo(dtype).eps)

        def q_map(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z, log_q = q.rsample(torch.as_tensor(e, dtype=dtype, device=device)[:, None, :])
            return _numpy(log_q)[:, 0], _numpy(decoder.log_joint(x_obs, z))[:, 0]

        # q's region: the images of the squares around ε = 0 (a homeomorphism maps a square's inside inside
        # the image of its boundary); its grid for contours and mode coverage
        q_view, q_box = bbox(rim_z[: 4 * BOUNDARY]), pad(bbox(rim_z[4 * BOUNDARY :]), 0.03)
        q_grid = make_grid(q_box, self.n_q, dtype=dtype, device=device) if usable(q_box) else None
        node_points = (torch.as_tensor(pv.post.points, dtype=dtype, device=device) if pv is not None
                       else torch.zeros((0, 2), dtype=dtype, device=device))
        grid_points = q_grid.points if q_grid is not None else torch.zeros((0, 2), dtype=dtype, device=device)
        log_q_at = _numpy(q.log_prob(torch.cat([grid_points, node_points])[:, None, :]))[:, 0]
        if q_grid is not None:
            log_q = log_q_at[: self.n_q**2].reshape(self.n_q, self.n_q)
        else:  # a diverged encoder: nothing of q to draw
            log_q = np.full((self.n_q, self.n_q), -1e30)
            q_view, q_box = self.problem.box, None

        metrics: dict[str, float] = {
            "elbo": float(log_w.mean()), "bound": float(log_mean_exp(log_w).mean()),
            "ess_frac": float(ess_frac(log_w).mean()),
        }
        warnings: list[str] = []
        modes: tuple[ModeView, ...] = ()
        reason = ""
        if pv is None:
            warnings.append("log p(x, z) is not finite anywhere the search looked")
            log_post, post_box, view_box = None, None, q_view
        else:
            post = pv.post
            kl_pq = exact.kl_pq(post, log_q_at[len(grid_points):])
            if not kl_pq.exact and math.isfinite(kl_pq.value):  # log q irregular where p has mass: refine for it
                kl_pq = exact.kl_pq_refined(post, self._log_joint(decoder, x_obs), self._log_q(q, x_obs),
                                            0.3 * exact.tolerance(kl_pq.value))
            q_side = exact.q_side(log_q_gh, f_gh, q_map, rng, f_eps=f_eps)
            log_px = post.log_px
            kl_qp = exact.kl_qp(log_px, q_side.neg_elbo)
            if not kl_qp.exact and math.isfinite(kl_qp.value) and q_side.nodes > len(log_q_gh):
                # the adaptive rule ran out of nodes short of KL(q‖p)'s tolerance (seen for an RWS flow on
                # the mixture, 0.8187 ± 0.0023 with 16 000 nodes): once more, with four times the budget
                q_side = exact.q_side(log_q_gh, f_gh, q_map, rng, f_eps=f_eps, max_nodes=exact.EPS_REFINE_NODES)
                kl_qp = exact.kl_qp(log_px, q_side.neg_elbo)
            elbo = Estimate(-q_side.neg_elbo.value, q_side.neg_elbo.err)
            metrics.update({
                "log_px": log_px.value, "kl_qp": kl_qp.value, "kl_pq": kl_pq.value, "elbo_exact": elbo.value,
                "log_px_err": log_px.err, "kl_qp_err": kl_qp.err, "kl_pq_err": kl_pq.err, "elbo_exact_err": elbo.err,
            })
            reason = _reason(post, q_side, log_px, kl_qp, kl_pq, elbo)
            modes, q_in_box = _modes(pv, q_grid, log_q) if q_grid is not None else ((), math.nan)
            metrics.update({"q_mass": q_in_box, "n_modes": float(len(modes)),
                            "modes_covered": float(sum(md.q_mass >= MODE_MIN_MASS for md in modes))})
            log_post, post_box = pv.log_post, post.box
            view_box = pad(hull(pv.core, q_view), 0.05)
        metrics.update({name: v for name, v in run.snr.items() if isinstance(v, float)})
        metrics.update(run.heldout)
        metrics = {name: v for name, v in metrics.items() if math.isfinite(v)}
        if "error" in run.snr:
            warnings.append(f"SNR probe skipped: {run.snr['error']}")
        if run.diverged_step is not None:
            warnings.append(f"diverged at step {run.diverged_step} ({run.diverged_reason}); showing its last finite state")
        if log_post is None:
            log_post = np.full((self.n, self.n), -np.inf, np.float32)
        view = RunView(
            index=run.index, name=run.cfg.name, objective=run.cfg.objective, encoder=run.train.encoder,
            k=k, m=m, beta=run.cfg.beta, alpha=run.cfg.alpha, lr=run.train.lr,
            q_samples=q_samples.astype(np.float32),
            particles=particles.z[0, :, 0].cpu().numpy().astype(np.float32),
            weights=normalised_weights(log_w)[0, :, 0].cpu().numpy().astype(np.float64),
            log_post=log_post, log_q=log_q.astype(np.float32), metrics=metrics, modes=modes,
            diverged_step=run.diverged_step, warnings=tuple(warnings),
            post_box=post_box, q_box=q_box, view_box=view_box, approximate=reason, **images,
            **_arrow_fields(shares),
        )
        return _finite_or_last(run, view)

    def _images(self, decoder: Decoder, z_gh: Tensor) -> dict[str, np.ndarray]:
        """The decoder's mean image at q's mean (E_q[z] by the 20 × 20 Gauss–Hermite rule in noise space,
        the first nodes of ``z_gh``) and over the manifold grid."""
        weights = torch.as_tensor(exact.GH_FINE[1], dtype=z_gh.dtype, device=z_gh.device)
        q_mean = weights @ z_gh[: len(weights), 0]
        grid = make_grid(MANIFOLD_BOX, MANIFOLD_N, dtype=z_gh.dtype, device=self.device)
        mean_image = decoder.mean_image  # type: ignore[attr-defined] (image problems' decoders have it)
        recon = mean_image(q_mean[None]).cpu().numpy()[0].astype(np.float32)
        manifold = mean_image(grid.points).cpu().numpy().reshape(MANIFOLD_N, MANIFOLD_N, -1).astype(np.float32)
        return {"reconstruction": np.nan_to_num(recon), "manifold": np.nan_to_num(manifold)}


def _arrow_fields(shares: Any) -> dict[str, Any]:
    """RunView's arrow fields from an Anatomy (group 1's shares and the sum over all particles), or none."""
    if shares is None:
        return {}
    return {"arrows": shares.shares[0, :, 0].cpu().numpy().astype(np.float32),
            "arrow_sum": shares.total[0].cpu().numpy().astype(np.float64),
            "arrow_origin": shares.location[0].cpu().numpy().astype(np.float64), "arrows_wrt": shares.wrt}


def _reason(post: Posterior, q_side: exact.QSide, log_px: Estimate, kl_qp: Estimate, kl_pq: Estimate,
            elbo: Estimate) -> str:
    """One short line saying why a number is approximate, "" when all four are exact."""
    if all(e.exact for e in (log_px, kl_qp, kl_pq, elbo)):
        return ""
    if not log_px.exact:
        return post.reason
    if not elbo.exact or not kl_qp.exact:
        return q_side.reason or "q's integral did not converge"
    return "q too irregular where p has mass"


def _modes(pv: PosteriorView, q_grid: Grid, log_q: np.ndarray) -> tuple[tuple[ModeView, ...], float]:
    """Posterior modes (basins holding ≥ 5 % of p's mass) with q's mass in each, and q's mass inside the
    posterior's box, as shares of q's mass on its own grid, each cell counted in the basin of the display
    cell that holds its centre; outside the posterior's box, in that of the nearest edge cell (a basin
    of attraction is unbounded: steepest ascent from out there enters the box across its edge)."""
    grid, n = pv.grid, pv.grid.n
    box = grid.box
    i1 = np.floor((q_grid.z1 - box[0]) / (box[1] - box[0]) * n).astype(np.int64)  # [n'] display rows
    i2 = np.floor((q_grid.z2 - box[2]) / (box[3] - box[2]) * n).astype(np.int64)
    q_cell = np.exp(log_q - log_q.max())
    q_cell /= q_cell.sum()  # shares of q's mass on its grid (a midpoint sum of a flow's thin features can exceed 1)
    q_labels = pv.labels[np.ix_(np.clip(i1, 0, n - 1), np.clip(i2, 0, n - 1))]
    q_by_basin = np.bincount(q_labels.ravel(), weights=q_cell.ravel(), minlength=pv.labels.size)
    modes = []
    for root, p_mass in pv.modes:
        c1, c2 = divmod(root, n)
        modes.append(ModeView((float(grid.z1[c1]), float(grid.z2[c2])), p_mass, float(q_by_basin[root])))
    in_box = np.ix_((i1 >= 0) & (i1 < n), (i2 >= 0) & (i2 < n))
    return tuple(modes), float(q_cell[in_box].sum())


def _finite_or_last(run: Any, view: RunView) -> RunView:
    """Never show a non-finite picture: keep the run's last good view (or zero out what is not finite)."""
    finite_grids = np.isfinite(view.log_post).any() and not np.isnan(view.log_q).any()
    if not finite_grids or not np.isfinite(view.q_samples).all() or not np.isfinite(view.weights).all():
        if run.last_view is not None:
            return dataclasses.replace(run.last_view, diverged_step=run.diverged_step, warnings=view.warnings)
        view = dataclasses.replace(
            view, q_samples=np.nan_to_num(view.q_samples), weights=np.nan_to_num(view.weights),
            log_post=np.nan_to_num(view.log_post, nan=-1e30, neginf=-1e30, posinf=0.0),
            log_q=np.nan_to_num(view.log_q, nan=-1e30, neginf=-1e30, posinf=0.0))
    run.last_view = view
    return view
