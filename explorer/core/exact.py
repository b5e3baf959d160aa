"""Exact quantities with error bars, over regions that follow the mass (design.md, "Exact quantities").

For one observation x (any vector, not only a data point), with f(z) = log p_θ(x, z) and q(z) = q_φ(z|x):

- **log p(x)** = log ∫ e^f dz by adaptive cubature in z (core/cubature.py). A search on coarse grids finds
  the box that holds the posterior's mass: it weighs each coarse cell by its mass (parabolas across and
  along the cell, so a ridge narrower than a cell, such as a funnel's neck, is not missed), grows the box
  towards heavy cells on its edge and zooms in on them. The box is cut into tiles; the tiles with the
  largest error estimate are halved across the axis the error comes from (or quartered), and kept 2:1
  balanced with their neighbours, until the estimate meets its goal. The search's coarse cells outside the
  box estimate the rest of the mass, which is added in and counted in full as error.
- **KL(p‖q)** = E_p[f − log q] − log p(x) on the same nodes (log q is evaluated there); where log q is
  irregular under p (a flow's thin gap), the tiles are refined for this integrand too (``kl_pq_refined``).
- **The exact ELBO** = E_q[f − log q] in the encoder's noise space: every encoder is z = T_φ(ε; x) with
  ε ~ N(0, I) and gives log q(T_φ(ε)) exactly, so E_q[h(z)] = ∫ N(ε) h(T_φ(ε)) dε. A 20 × 20 Gauss–Hermite
  rule, checked against 14 × 14, does it for smooth h (every Gaussian q against a polynomial log p(x, z),
  exactly); otherwise adaptive cubature over ε ∈ [−8, 8]² plus the tail outside by Monte Carlo with exact
  conditional draws. No box in z is needed, however broad q is compared with p.
- **KL(q‖p)** = log p(x) − ELBO. Both KLs are clipped at 0.

Error estimates: each tile carries the tensor 15-point Gauss–Kronrod rule and, on 7 × 7 of its nodes, the
embedded 7-point Gauss rule (QUADPACK's qk15 in each direction); every quantity is computed with both and
|K − G| (the error of the far cruder Gauss rule) is the quadrature error, a deliberate overestimate for
smooth integrands. Truncation (mass outside the box; q's Monte Carlo tail) and the evaluation's rounding
(f_eps·E|f|, f_eps = 1.2e-7 for float32 models) are added. A number is called exact when its error is
within ``tolerance(value)`` = max(1e-3, 1e-3·|value|).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .cubature import (Box, Cubature, LogDensity, Nodes, adaptive, finite_or_floor, hull, inside, search,
                       tiling)
from .snapshot import EXACT_ABS, EXACT_REL, is_exact, tolerance  # noqa: F401 (the word "exact" is defined there)


TILES = 4  # tiles per side of the first tiling
P_GOAL = 1e-5  # relative error goal for ∫ e^f and ∫ e^f (f − peak) (≈ the error of log p(x))
P_MAX_NODES = 60_000
NEGLIGIBLE = 45.0  # nats: a node whose weight is this far below the total is dropped (counted as error)
EPS_C = 8.0  # the ε-square [−c, c]²: N(0, I) puts 2.5e-15 outside it
EPS_GOAL = 1e-4  # absolute error goal (nats) for E_q[log q − f] (float32 evaluation leaves ~1e-5 of noise)
EPS_MAX_NODES = 16_000
EPS_REFINE_NODES = 4 * EPS_MAX_NODES  # for a KL(q‖p) the first budget left outside its tolerance (a flow's q)
KL_REFINE_NODES = 20_000  # extra nodes KL(p‖q) may spend where log q is irregular (a flow's thin gaps)
TAIL_SAMPLES = 64


# --------------------------------------------------------------------------- the posterior
@dataclass(frozen=True)
class Estimate:
    value: float
    err: float

    @property
    def exact(self) -> bool:
        return is_exact(self.value, self.err)


@dataclass(frozen=True)
class Posterior:
    """∫ e^f over the tiles and over the coarse cells outside them, with what KL(p‖q) needs each frame.
    Depends on θ and x only: a session with a frozen decoder computes it once per observation."""

    log_px: Estimate
    box: Box  # the integration box (the first tiling's hull)
    points: np.ndarray  # [N, 2] the nodes that carry mass: the tiles', then the coarse cells' outside the box
    weights: np.ndarray  # [2, N] p(z|x) at each node under the Kronrod rule and under the Gauss rule (each sums to 1)
    neg_entropy: np.ndarray  # [2] E_p[log p(z|x)] under each rule
    n_tail: int  # the last n_tail nodes are coarse cells outside the box
    tail_log_post: np.ndarray  # [n_tail] log p(z|x) at those
    tail_mass: float  # the outside cells' share of the mass: an estimate, counted in full as error
    converged: bool  # False when the search ran out of rounds: the errors are then unbounded (inf)
    reason: str  # why log p(x) is not exact, "" when it is
    rule: tuple[Nodes, Nodes]  # every tile node and every outside cell (for ``refresh``)
    tiles: np.ndarray  # [T, 4] the tiles' boxes (rule[0] holds their nodes, tile by tile)
    rule_f: tuple[np.ndarray, np.ndarray]  # f at rule[0] and rule[1]
    rounding: float  # f_eps·E_p|f|: what f's evaluation precision can move log p(x) by
    f_eps: float


def integrate_posterior(log_f: LogDensity, seed: Box, box: Box | None = None, goal: float = P_GOAL,
                        max_nodes: int = P_MAX_NODES, f_eps: float = 0.0) -> Posterior | None:
    """log p(x) = log ∫ e^f and the nodes for KL(p‖q). ``box`` forces the integration box (for tests: the
    error must grow when it is too small); by default the search decides. ``f_eps``: the relative precision
    of f's evaluation (float32: 1.2e-7), added as f_eps·E_p|f|. None when f is −inf everywhere."""
    found = search(log_f, seed if box is None else hull(seed, box))
    if found is None:
        return None
    box = found.box if box is None else box
    peak = float(np.max(np.where(np.isfinite(found.log_f), found.log_f, -np.inf)))

    def integrand(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = log_f(points)
        return f, np.stack([np.ones(len(f)), np.where(np.isfinite(f), f - peak, 0.0)], -1)

    def allowed(totals: np.ndarray) -> np.ndarray:  # relative to the mass, for both columns
        return np.full(2, goal * abs(totals[0]))

    cub = adaptive(integrand, tiling(box, TILES), allowed, max_nodes)
    outside = ~inside(found.nodes.points, box)
    return _assemble(box, cub.tiles, cub.nodes, cub.a, found.nodes.subset(outside), found.log_f[outside],
                     found.converged, f_eps)


def refresh(post: Posterior, log_f: LogDensity, goal: float = P_GOAL, f_eps: float = 0.0) -> Posterior | None:
    """The same integral for a changed f (a decoder that learns) on ``post``'s nodes, or None when they no
    longer do: the Kronrod–Gauss difference above the goal, or mass found outside the box."""
    tiles, tail = post.rule
    f = log_f(np.concatenate([tiles.points, tail.points]))
    new = _assemble(post.box, post.tiles, tiles, f[: len(tiles)], tail, f[len(tiles):], post.converged, f_eps)
    if new is None or not new.log_px.err <= goal + new.rounding or new.tail_mass > goal:
        return None
    return new


def _assemble(box: Box, boxes: np.ndarray, tiles: Nodes, tile_f: np.ndarray, tail: Nodes, tail_f: np.ndarray,
              converged: bool, f_eps: float) -> Posterior | None:
    """The Posterior from f at every tile node and at the coarse cells outside the box."""
    tile_f, tail_f = finite_or_floor(tile_f), finite_or_floor(tail_f)
    shift = float(max(np.max(tile_f + tiles.log_w, initial=-np.inf), np.max(tail_f + tail.log_w, initial=-np.inf)))
    if not math.isfinite(shift):
        return None
    tile_a = tile_f + tiles.log_w - shift
    tail_a = tail_f + tail.log_w - shift
    kronrod_all = np.exp(tile_a)
    total = float(kronrod_all.sum())
    if not (math.isfinite(total) and total > 0):
        return None
    # nodes whose weight is negligible under both rules carry nothing (their mass is counted as error)
    alive = tile_a + np.log(np.maximum(tiles.gauss, 1.0)) >= math.log(total) - NEGLIGIBLE
    dropped = float(kronrod_all[~alive].sum())
    tail_mass = float(np.exp(tail_a).sum())
    carry = tail_a >= math.log(total) - NEGLIGIBLE
    z = total + tail_mass
    log_px = math.log(z) + shift
    quad = abs(total - float((kronrod_all * tiles.gauss).sum())) / z
    trunc = (tail_mass + dropped) / z
    rounding = f_eps * float(kronrod_all @ np.abs(np.where(np.isfinite(tile_f), tile_f, 0.0))) / total
    err = quad + trunc + rounding if converged else math.inf
    reason = ""
    if not is_exact(log_px, err):
        reason = "posterior mass beyond the search region" if trunc >= quad else "posterior too narrow to resolve"

    f = np.concatenate([tile_f[alive], tail_f[carry]])
    kronrod = np.exp(np.concatenate([tile_a[alive], tail_a[carry]]))
    raw = np.stack([kronrod, kronrod * np.concatenate([tiles.gauss[alive], np.ones(int(carry.sum()))])])
    mass = raw.sum(1)  # [2]: each rule's ∫ e^{f − shift}
    weights = raw / mass[:, None]
    neg_entropy = weights @ np.where(kronrod > 0, f, 0.0) - (np.log(mass) + shift)
    n_tail = int(carry.sum())
    return Posterior(Estimate(log_px, err), box, np.concatenate([tiles.points[alive], tail.points[carry]]), weights,
                     neg_entropy, n_tail, f[len(f) - n_tail:] - log_px, tail_mass / z, converged, reason, (tiles, tail),
                     boxes, (tile_f, tail_f), rounding, f_eps)


def kl_pq(post: Posterior, log_q: np.ndarray) -> Estimate:
    """KL(p‖q) = E_p[log p(z|x)] − E_p[log q] from log q at ``post.points``; clipped at 0 (never negative).

    Each rule normalises its own weights, so its KL is a consistent estimate; the error is |K − G| plus
    the first-order change if the coarse outside nodes' weights were wrong by 100 %:
    |Σ_tail π_i (log p(z_i|x) − log q(z_i) − KL)|."""
    live = post.weights[0] > 0
    if not np.all(np.isfinite(log_q[live])):
        return Estimate(math.inf, 0.0)
    log_q = np.where(live, log_q, 0.0)
    kl = post.neg_entropy - post.weights @ log_q  # [2]: Kronrod, Gauss
    tail = slice(len(log_q) - post.n_tail, len(log_q))
    tail_part = abs(float(post.weights[0, tail] @ (post.tail_log_post - log_q[tail] - kl[0])))
    rounding = post.rounding + post.f_eps * float(post.weights[0] @ np.abs(log_q))
    err = abs(float(kl[0] - kl[1])) + tail_part + rounding if post.converged else math.inf
    return Estimate(max(float(kl[0]), 0.0), err)


def kl_pq_refined(post: Posterior, log_f: LogDensity, log_q: LogDensity, goal: float,
                   max_nodes: int = KL_REFINE_NODES) -> Estimate:
    """KL(p‖q) by adaptive cubature of ∫ e^f (f − log q) on the posterior's own tiles, refined where log q
    is irregular (a flow's thin gaps where p has mass), until |K − G| of KL(p‖q) is within ``goal``
    (absolute) or ``max_nodes`` more nodes are spent. For when ``kl_pq`` on the fixed nodes is not exact."""
    tiles, tail = post.rule
    tile_f, tail_f = post.rule_f

    def columns(f: np.ndarray, lq: np.ndarray) -> np.ndarray:
        return np.stack([np.ones(len(f)), np.where(np.isfinite(f), f - lq, 0.0)], -1)

    def integrand(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = finite_or_floor(log_f(points))
        return f, columns(f, log_q(points))

    f0 = finite_or_floor(tile_f)
    start = Cubature(post.tiles, tiles, f0, columns(f0, log_q(tiles.points)),
                     float(np.max(f0 + tiles.log_w)))
    cub = adaptive(integrand, post.tiles, lambda totals: np.array([P_GOAL, goal]) * abs(totals[0]),
                   len(tiles) + max_nodes, start=start)
    k, g, _ = cub.tile_sums()
    tail_w = np.exp(finite_or_floor(tail_f) + tail.log_w - cub.shift)
    lq_tail = log_q(tail.points) if len(tail) else np.zeros(0)
    if np.any((tail_w > 0) & ~np.isfinite(lq_tail)) or not np.all(np.isfinite(k)):
        return Estimate(math.inf, 0.0)
    tail_sums = np.array([tail_w.sum(), (tail_w * np.where(tail_w > 0, tail_f - lq_tail, 0.0)).sum()])
    kl = [float(s[1] / s[0] - math.log(s[0]) - cub.shift)
          for s in (k.sum(0) + tail_sums, g.sum(0) + tail_sums)]
    total = k[:, 0].sum() + tail_sums[0]
    tail_integrand = np.where(tail_w > 0, tail_f - lq_tail, 0.0) - (kl[0] + math.log(total) + cub.shift)
    tail_part = abs(float((tail_w * tail_integrand).sum() / total))
    node_w = np.exp(cub.a - cub.shift + cub.nodes.log_w)
    rounding = post.f_eps * float(np.abs(cub.v[:, 1]) @ node_w / total) + post.rounding
    err = abs(kl[0] - kl[1]) + tail_part + rounding if post.converged else math.inf
    return Estimate(max(kl[0], 0.0), err)


def kl_qp(log_px: Estimate, neg_elbo: Estimate) -> Estimate:
    """KL(q‖p) = log p(x) − ELBO = log p(x) + E_q[log q − f], errors added; clipped at 0 (never negative)."""
    return Estimate(max(log_px.value + neg_elbo.value, 0.0), log_px.err + neg_elbo.err)


# --------------------------------------------------------------------------- the q side, in noise space
def eps_tail_mass(c: float) -> float:
    """P(ε ∉ [−c, c]²) for ε ~ N(0, I₂)."""
    return 1.0 - (1.0 - math.erfc(c / math.sqrt(2.0))) ** 2


def tail_eps(c: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n exact draws of ε ~ N(0, I₂) conditioned on ε ∉ [−c, c]² ([n, 2]).

    Outside = {|ε₁| > c} ∪ {|ε₁| ≤ c, |ε₂| > c}, with probabilities p and (1 − p)p, p = P(|ε_i| > c). The
    one-sided tail N(0, 1 | ε > c) is drawn by Marsaglia's method: ε = √(c² − 2 log u₁), kept if u₂ ε < c."""
    p1 = math.erfc(c / math.sqrt(2.0))
    first = rng.random(n) < 1.0 / (2.0 - p1)

    def tails(k: int) -> np.ndarray:
        out = np.empty(0)
        while len(out) < k:
            u1, u2 = rng.random(2 * k + 8), rng.random(2 * k + 8)
            x = np.sqrt(c * c - 2.0 * np.log1p(-u1))
            out = np.concatenate([out, x[u2 * x < c]])
        return out[:k] * np.where(rng.random(k) < 0.5, -1.0, 1.0)

    def core(k: int) -> np.ndarray:
        out = np.empty(0)
        while len(out) < k:
            x = rng.standard_normal(2 * k + 8)
            out = np.concatenate([out, x[np.abs(x) <= c]])
        return out[:k]

    eps = np.empty((n, 2))
    k = int(first.sum())
    eps[first, 0], eps[first, 1] = tails(k), rng.standard_normal(k)
    eps[~first, 0], eps[~first, 1] = core(n - k), tails(n - k)
    return eps


@dataclass(frozen=True)
class QSide:
    neg_elbo: Estimate  # E_q[log q − f]
    nodes: int  # how many ε-nodes it took
    reason: str  # why it is not exact, "" when it is


QMap = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # ε [N, 2] -> (log q, f) at z = T_φ(ε) [N] each


def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n × n Gauss–Hermite rule for N(0, I₂): nodes [n², 2] and weights [n²] (summing to 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    return np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2), np.outer(w, w).ravel()


GH_FINE, GH_CHECK = _hermite(20), _hermite(14)
GH_EPS = np.concatenate([GH_FINE[0], GH_CHECK[0]])  # the nodes q_side needs h at: [596, 2]


def q_side(log_q: np.ndarray, f: np.ndarray, q_map: QMap, rng: np.random.Generator, goal: float = EPS_GOAL,
           f_eps: float = 0.0, max_nodes: int | None = None) -> QSide:
    """E_q[log q − f] = ∫ N(ε) h(T_φ(ε)) dε, h = log q − f, from log q and f at the images of ``GH_EPS``.

    First the 20 × 20 Gauss–Hermite rule, checked against the 14 × 14 one (exact alike for polynomials of
    degree ≤ 27 in ε, such as every Gaussian q against a polynomial log p(x, z)); their difference is the
    error estimate. Where it exceeds ``goal`` (plus the two rules' rounding), adaptive Gauss–Kronrod cubature over ε ∈ [−c, c]² through
    ``q_map``, plus P(ε outside)·mean(h) over exact conditional tail draws, whose standard error joins
    the error. ``f_eps`` (the evaluation's relative precision) adds f_eps·E_q[|log q| + |f|]. ``max_nodes``
    caps the adaptive rule (``EPS_MAX_NODES`` by default; a caller refining for a tighter number passes more)."""
    h = log_q - f
    n_fine = len(GH_FINE[1])
    if not np.all(np.isfinite(h)):
        return QSide(Estimate(math.inf, 0.0), len(h), "")
    fine, check = float(GH_FINE[1] @ h[:n_fine]), float(GH_CHECK[1] @ h[n_fine:])
    rounding = f_eps * float(GH_FINE[1] @ (np.abs(log_q[:n_fine]) + np.abs(f[:n_fine])))
    # the two rules' difference also holds both rules' rounding (≤ 2·rounding): a difference within it is
    # the evaluation's noise, which the adaptive rule (on the same float32 evaluations) cannot reduce
    if abs(fine - check) <= goal + 2.0 * rounding:
        return QSide(Estimate(fine, abs(fine - check) + rounding), len(h), "")
    return _q_side_adaptive(q_map, rng, goal, rounding, max_nodes=EPS_MAX_NODES if max_nodes is None else max_nodes)


def _q_side_adaptive(q_map: QMap, rng: np.random.Generator, goal: float, rounding: float, c: float = EPS_C,
                     max_nodes: int = EPS_MAX_NODES) -> QSide:
    def integrand(eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_q, f = q_map(eps)
        return -0.5 * (eps**2).sum(1) - math.log(2 * math.pi), (log_q - f)[:, None]

    cub = adaptive(integrand, tiling((-c, c, -c, c), TILES), lambda totals: np.array([goal]), max_nodes)
    w = np.exp(cub.a + cub.nodes.log_w)
    h = cub.v[:, 0]
    if not np.all(np.isfinite(h[w > 0])):
        return QSide(Estimate(math.inf, 0.0), len(cub.nodes), "")
    k, g = float((w * h).sum()), float((w * cub.nodes.gauss * h).sum())
    log_q, f = q_map(tail_eps(c, TAIL_SAMPLES, rng))
    h_tail = log_q - f
    if not np.all(np.isfinite(h_tail)):
        return QSide(Estimate(math.inf, 0.0), len(cub.nodes), "")
    p_out = eps_tail_mass(c)
    value = k + p_out * float(np.mean(h_tail))
    quad, se = abs(k - g), p_out * float(np.std(h_tail, ddof=1)) / math.sqrt(len(h_tail))
    reason = ""
    if not is_exact(value, quad + se + rounding):
        reason = "q's far tails reach extreme log p(x, z)" if se >= quad else "q too irregular to integrate"
    return QSide(Estimate(value, quad + se + rounding), len(cub.nodes) + len(h_tail), reason)
