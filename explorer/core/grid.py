"""Fixed n×n midpoint grids over a 2-D box (all in log space): the display grids of the posterior panel and
the posterior's basins (modes) on them, which core/views.py uses.

``grid_stats`` evaluates every quantity on one fixed grid: log p(x) = logsumexp(grid) + log ΔA,
KL(q‖p) = Σ q (log q − log p(z|x)) ΔA, KL(p‖q) = Σ p(z|x) (log p(z|x) − log q) ΔA. It has no error estimate
and ignores everything outside the box: it was the first version of the exact numbers, and stays as a
simple fixed-grid evaluator for tests. The app's exact numbers come from core/exact.py. Arrays are indexed
[i₁, i₂] (z₁ along the first axis).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

MODE_MIN_MASS = 0.05
MODE_MIN_DEPTH = 0.5  # nats: peaks joined by a saddle shallower than this are one mode (a ring is one mode)
Q_MASS_WARN = 0.99


@dataclass(frozen=True)
class Grid:
    box: tuple[float, float, float, float]
    n: int
    z1: np.ndarray  # [n] cell centres along z₁
    z2: np.ndarray  # [n]
    points: torch.Tensor  # [n*n, 2], row-major over (i₁, i₂)

    @property
    def cell(self) -> tuple[float, float]:
        return (self.box[1] - self.box[0]) / self.n, (self.box[3] - self.box[2]) / self.n

    @property
    def log_cell_area(self) -> float:
        h1, h2 = self.cell
        return math.log(h1 * h2)


def make_grid(box: tuple[float, float, float, float], n: int, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> Grid:
    h1, h2 = (box[1] - box[0]) / n, (box[3] - box[2]) / n
    z1 = box[0] + h1 * (np.arange(n) + 0.5)
    z2 = box[2] + h2 * (np.arange(n) + 0.5)
    g1, g2 = np.meshgrid(z1, z2, indexing="ij")
    points = torch.as_tensor(np.stack([g1.ravel(), g2.ravel()], -1), dtype=dtype, device=device)
    return Grid(tuple(float(b) for b in box), n, z1, z2, points)


@dataclass(frozen=True)
class Mode:
    """A basin of the posterior grid density holding ≥ 5 % of its mass."""

    center: tuple[float, float]  # the basin's peak
    p_mass: float  # posterior mass in the basin
    q_mass: float  # q's mass in the basin


@dataclass(frozen=True)
class GridStats:
    log_px: float
    kl_qp: float
    kl_pq: float
    elbo_exact: float
    q_mass: float  # q's mass inside the box
    log_post: np.ndarray  # [n, n] normalised log p(z|x) (a density: integrates to 1 over the box)
    log_q: np.ndarray  # [n, n] log q(z|x)
    modes: tuple[Mode, ...]
    warnings: tuple[str, ...]


def _logsumexp(a: np.ndarray) -> float:
    m = float(np.max(a))
    if not math.isfinite(m):
        return m
    return m + math.log(float(np.sum(np.exp(a - m))))


def basins(log_density: np.ndarray, depth: float = MODE_MIN_DEPTH) -> np.ndarray:
    """Label each cell by its mode: the local maximum that steepest ascent over the 8 neighbours reaches,
    with peaks separated by a saddle shallower than ``depth`` nats merged into one mode."""
    n1, n2 = log_density.shape
    padded = np.pad(log_density, 1, constant_values=-np.inf)
    idx = np.arange(n1 * n2).reshape(n1, n2)
    padded_idx = np.pad(idx, 1, constant_values=-1)
    offsets = [(0, 0)] + [(d1, d2) for d1 in (-1, 0, 1) for d2 in (-1, 0, 1) if (d1, d2) != (0, 0)]
    vals = np.stack([padded[1 + d1 : 1 + d1 + n1, 1 + d2 : 1 + d2 + n2] for d1, d2 in offsets])
    nbrs = np.stack([padded_idx[1 + d1 : 1 + d1 + n1, 1 + d2 : 1 + d2 + n2] for d1, d2 in offsets])
    best = np.argmax(vals, axis=0)  # ties keep the cell itself (offset 0 comes first)
    parent = np.take_along_axis(nbrs, best[None], 0)[0].ravel()
    while True:  # pointer jumping: O(log path length) passes
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    return _merge_shallow(parent, log_density.ravel(), (n1, n2), depth)


def _merge_shallow(labels: np.ndarray, values: np.ndarray, shape: tuple[int, int], depth: float) -> np.ndarray:
    """Join neighbouring basins whose saddle lies less than ``depth`` below the lower of their peaks.

    Saddles are visited from the highest down (0-dimensional persistence), so each peak joins the basin
    it drains into across its highest pass.
    """
    lab = labels.reshape(shape)
    val = values.reshape(shape)
    pairs = []
    for sl_a, sl_b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                       ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                       ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
                       ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1)))):
        la, lb = lab[sl_a].ravel(), lab[sl_b].ravel()
        cross = la != lb
        if cross.any():
            saddle = np.minimum(val[sl_a].ravel()[cross], val[sl_b].ravel()[cross])
            pairs.append(np.stack([np.minimum(la[cross], lb[cross]), np.maximum(la[cross], lb[cross]), saddle], 1))
    if not pairs:
        return lab
    edges = np.concatenate(pairs)
    edges = edges[np.argsort(-edges[:, 2], kind="stable")]
    _, first = np.unique(edges[:, 0] * values.size + edges[:, 1], return_index=True)  # highest pass per pair
    edges = edges[np.sort(first)]
    root = {}

    def find(a: int) -> int:
        while root.get(a, a) != a:
            root[a] = root.get(root[a], root[a])
            a = root[a]
        return a

    for a, b, saddle in edges:
        ra, rb = find(int(a)), find(int(b))
        if ra == rb:
            continue
        low, high = (ra, rb) if values[ra] < values[rb] else (rb, ra)
        if values[low] - saddle < depth:
            root[low] = high
    if not root:
        return lab
    flat = lab.ravel()
    uniq = np.unique(flat)
    mapped = np.array([find(int(u)) for u in uniq])
    return mapped[np.searchsorted(uniq, flat)].reshape(shape)


@dataclass(frozen=True)
class PosteriorGrid:
    """The posterior half of the grid quantities: it depends on θ and x only, not on q, so a session
    with a frozen decoder computes it once per observation and shares it between runs."""

    log_px: float
    log_post: np.ndarray  # [n, n] normalised log p(z|x)
    post_mass: np.ndarray  # [n, n] per-cell posterior masses (sum to 1)
    labels: np.ndarray  # [n*n] each cell's mode (basins with shallow saddles merged)
    warnings: tuple[str, ...]


def posterior_grid(log_joint: np.ndarray, grid: Grid) -> PosteriorGrid | None:
    """log p(x) and p(z|x) from log p_θ(x, z) on the grid; None when it is not finite anywhere."""
    log_joint = np.asarray(log_joint, dtype=np.float64)
    log_area = grid.log_cell_area
    log_px = _logsumexp(log_joint) + log_area
    if not math.isfinite(log_px):
        return None
    log_post = log_joint - log_px
    post_mass = np.exp(log_post + log_area)
    warnings = []
    if post_mass.max() > 0.25:
        warnings.append("the posterior is narrower than a grid cell: raise view.grid for exact numbers")
    edge = post_mass[0].sum() + post_mass[-1].sum() + post_mass[:, 0].sum() + post_mass[:, -1].sum()
    if edge > 1e-3:
        warnings.append(f"{edge:.1%} of the posterior's mass is on the box edge: log p(x) is underestimated")
    return PosteriorGrid(log_px, log_post, post_mass, basins(log_post).ravel(), tuple(warnings))


def grid_stats(log_joint: np.ndarray | None, log_q: np.ndarray, grid: Grid,
               posterior: PosteriorGrid | None = None) -> GridStats:
    """All exact quantities from log p_θ(x, z) and log q_φ(z|x) on the grid ([n, n] each, any float).

    Pass ``posterior`` (from ``posterior_grid``) instead of ``log_joint`` to reuse it."""
    log_q = np.asarray(log_q, dtype=np.float64)
    post = posterior if posterior is not None else posterior_grid(log_joint, grid)
    if post is None:
        nan = float("nan")
        return GridStats(nan, nan, nan, nan, nan, np.full_like(log_q, -np.inf), log_q, (),
                         ("log p(x, z) is not finite anywhere on the grid",))
    log_post, post_mass = post.log_post, post.post_mass
    q_cell = np.exp(log_q + grid.log_cell_area)
    q_mass = float(q_cell.sum())
    finite_q = np.isfinite(log_q)
    diff = np.where(finite_q, log_q - log_post, 0.0)
    kl_qp = float(np.sum(q_cell * diff))
    kl_pq = float(np.sum(post_mass * np.where(finite_q, -diff, np.inf)))
    warnings = list(post.warnings)
    if q_mass < Q_MASS_WARN:
        warnings.insert(0, f"only {q_mass:.1%} of q's mass is inside the box: the KLs are approximate")

    labels = post.labels
    p_by_basin = np.bincount(labels, weights=post_mass.ravel(), minlength=labels.size)
    q_by_basin = np.bincount(labels, weights=q_cell.ravel(), minlength=labels.size)
    modes = []
    for root in np.flatnonzero(p_by_basin >= MODE_MIN_MASS):
        i1, i2 = divmod(int(root), grid.n)
        modes.append(Mode((float(grid.z1[i1]), float(grid.z2[i2])), float(p_by_basin[root]), float(q_by_basin[root])))
    modes.sort(key=lambda m: -m.p_mass)
    return GridStats(post.log_px, kl_qp, kl_pq, post.log_px - kl_qp, q_mass, log_post, log_q, tuple(modes),
                     tuple(warnings))


def posterior_moments(log_post: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Mean [2] and covariance [2, 2] of the grid posterior (for tests and the docs)."""
    mass = np.exp(log_post + grid.log_cell_area)
    mass = mass / mass.sum()
    g1, g2 = np.meshgrid(grid.z1, grid.z2, indexing="ij")
    pts = np.stack([g1.ravel(), g2.ravel()], -1)
    w = mass.ravel()
    mean = w @ pts
    centred = pts - mean
    return mean, (centred * w[:, None]).T @ centred
