"""Exact quantities with error bars, over regions that follow the mass (design.md, "Exact quantities").

For one observation x (any vector, not only a data point), with f(z) = log p_θ(x, z) and q(z) = q_φ(z|x):

- **log p(x)** = log ∫ e^f dz by adaptive cubature in z. A search on coarse grids finds the box that holds
  the posterior's mass: it weighs each coarse cell by its mass (parabolas across and along the cell, so a
  ridge narrower than a cell, such as a funnel's neck, is not missed), grows the box towards heavy cells
  on its edge and zooms in on them. The box is cut into tiles; the tiles with the largest error estimate
  are halved across the axis the error comes from (or quartered), and kept 2:1 balanced with their
  neighbours, until the estimate meets its goal. The search's coarse cells outside the box estimate the
  rest of the mass, which is added in and counted in full as error.
- **KL(p‖q)** = E_p[f − log q] − log p(x) on the same nodes (log q is evaluated there).
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

Box = tuple[float, float, float, float]  # (z1_min, z1_max, z2_min, z2_max)
LogDensity = Callable[[np.ndarray], np.ndarray]  # points [N, 2] float64 -> [N] float64 (−inf allowed)

EXACT_ABS = 1e-3  # nats: an exact number's error is within max(EXACT_ABS, EXACT_REL·|value|)
EXACT_REL = 1e-3

SEARCH_N = 48  # nodes per side of the coarse search grid
SEARCH_DEPTH = 32.0  # nats: the search box keeps every cell with at least e^-32 of the heaviest cell's mass
SEARCH_ROUNDS = 24
TILES = 4  # tiles per side of the first tiling
P_GOAL = 1e-5  # relative error goal for ∫ e^f and ∫ e^f (f − peak) (≈ the error of log p(x))
P_MAX_NODES = 60_000
NEGLIGIBLE = 45.0  # nats: a node whose weight is this far below the total is dropped (counted as error)
EPS_C = 8.0  # the ε-square [−c, c]²: N(0, I) puts 2.5e-15 outside it
EPS_GOAL = 1e-4  # absolute error goal (nats) for E_q[log q − f] (float32 evaluation leaves ~1e-5 of noise)
EPS_MAX_NODES = 16_000
KL_REFINE_NODES = 20_000  # extra nodes KL(p‖q) may spend where log q is irregular (a flow's thin gaps)
TAIL_SAMPLES = 64

# QUADPACK qk15: Kronrod abscissae (x ≥ 0, descending) and weights; Gauss-7 weights on x[1], x[3], x[5], x[7]
_XK = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                0.207784955007898467600689403773245, 0.0])
_WK = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_WG = np.array([0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                0.381830050505118944950369775488975, 0.417959183673469387755102040816327])
GK_X = np.concatenate([-_XK[:-1], _XK[::-1]])  # [15] on [−1, 1], ascending
GK_WK = np.concatenate([_WK[:-1], _WK[::-1]])
GK_WG = np.zeros(15)
GK_WG[1::2] = np.concatenate([_WG[:-1], _WG[::-1]])  # the Gauss nodes are the odd ones
GK_N = 15 * 15


def tolerance(value: float) -> float:
    """The error within which a number is called exact."""
    return max(EXACT_ABS, EXACT_REL * abs(value)) if math.isfinite(value) else EXACT_ABS


def is_exact(value: float, err: float) -> bool:
    return math.isfinite(value) and err <= tolerance(value)


def hull(*boxes: Box) -> Box:
    return (min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), max(b[3] for b in boxes))


def pad(box: Box, frac: float) -> Box:
    d1, d2 = frac * (box[1] - box[0]), frac * (box[3] - box[2])
    return box[0] - d1, box[1] + d1, box[2] - d2, box[3] + d2


def inside(points: np.ndarray, box: Box) -> np.ndarray:
    return (points[:, 0] >= box[0]) & (points[:, 0] <= box[1]) & (points[:, 1] >= box[2]) & (points[:, 1] <= box[3])


# --------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class Nodes:
    """Cubature nodes: the Kronrod weight of each node and the Gauss rule's weight as a ratio to it (0 off
    the Gauss nodes; 1 for nodes outside any tile, which both rules count alike)."""

    points: np.ndarray  # [N, 2]
    log_w: np.ndarray  # [N] log Kronrod weight (including the tile's area)
    gauss: np.ndarray  # [N] Gauss weight / Kronrod weight

    def __len__(self) -> int:
        return len(self.log_w)

    def subset(self, keep: np.ndarray) -> "Nodes":
        return Nodes(self.points[keep], self.log_w[keep], self.gauss[keep])

    @staticmethod
    def concat(*parts: "Nodes") -> "Nodes":
        return Nodes(np.concatenate([p.points for p in parts]), np.concatenate([p.log_w for p in parts]),
                     np.concatenate([p.gauss for p in parts]))


_GK_LOG_W = np.log(np.outer(GK_WK, GK_WK)).ravel() - math.log(4.0)  # on [−1, 1]², per unit area
_GK_RATIO = (np.outer(GK_WG, GK_WG) / np.outer(GK_WK, GK_WK)).ravel()
# Gauss along one axis and Kronrod along the other: which direction a tile's error comes from
_GK_AXIS = np.stack([np.repeat(GK_WG / GK_WK, 15), np.tile(GK_WG / GK_WK, 15)])  # [2, 225]


def gk_nodes(boxes: np.ndarray) -> Nodes:
    """The 15 × 15 Gauss–Kronrod nodes of each box in ``boxes`` [T, 4], tile by tile (row-major inside)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    u = 0.5 * (GK_X + 1.0)
    z1 = boxes[:, 0, None] + (boxes[:, 1] - boxes[:, 0])[:, None] * u  # [T, 15]
    z2 = boxes[:, 2, None] + (boxes[:, 3] - boxes[:, 2])[:, None] * u
    points = np.stack(np.broadcast_arrays(z1[:, :, None], z2[:, None, :]), -1).reshape(-1, 2)
    area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    log_w = (np.log(area)[:, None] + _GK_LOG_W[None, :]).ravel()
    return Nodes(points, log_w, np.tile(_GK_RATIO, len(boxes)))


def _tiling(box: Box, k: int) -> np.ndarray:
    e1, e2 = np.linspace(box[0], box[1], k + 1), np.linspace(box[2], box[3], k + 1)
    return np.array([(e1[i], e1[i + 1], e2[j], e2[j + 1]) for i in range(k) for j in range(k)])


def _split(boxes: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Each box halved along its axis (0: z₁, 1: z₂) or quartered (2)."""
    out = []
    for (a, b, c, d), axis in zip(boxes, axes):
        m1, m2 = 0.5 * (a + b), 0.5 * (c + d)
        if axis == 0:
            out += [(a, m1, c, d), (m1, b, c, d)]
        elif axis == 1:
            out += [(a, b, c, m2), (a, b, m2, d)]
        else:
            out += [(a, m1, c, m2), (a, m1, m2, d), (m1, b, c, m2), (m1, b, m2, d)]
    return np.array(out).reshape(-1, 4)


# --------------------------------------------------------------------------- adaptive cubature
@dataclass(frozen=True)
class Cubature:
    """∫ e^{a(z)} v_c(z) dz for each column c of v, on adaptively split Gauss–Kronrod tiles."""

    tiles: np.ndarray  # [T, 4]
    nodes: Nodes
    a: np.ndarray  # [N] log of the integrand's weight part (−inf allowed)
    v: np.ndarray  # [N, C]
    shift: float  # e^{a − shift} is what was summed (shift = max of a at the first tiling)

    def tile_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per tile, Kronrod and Gauss sums of e^{a − shift}·v ([T, C] each), and the two mixed rules
        (Gauss along one axis, Kronrod along the other: [2, T, C])."""
        w = np.exp(self.a - self.shift + self.nodes.log_w)
        wv = (w[:, None] * self.v).reshape(len(self.tiles), GK_N, -1)
        mixed = np.einsum("tnc,an->atc", wv, _GK_AXIS)
        return wv.sum(1), (wv * self.nodes.gauss.reshape(len(self.tiles), GK_N, 1)).sum(1), mixed


Integrand = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # points -> (a [N], v [N, C])


def adaptive(integrand: Integrand, tiles: np.ndarray, goal: Callable[[np.ndarray], np.ndarray],
             max_nodes: int, start: Cubature | None = None) -> Cubature:
    """Split the tiles with the largest |K − G| until Σ|K − G| ≤ goal(Σ K) in every column (``goal`` maps
    the column totals [C] to allowed errors [C]) or the node budget is spent. A tile is halved across the
    axis its error comes from (|K − mixed rule| four times the other's) or else quartered, so a thin ridge
    costs nodes along its length only. Then 2:1 balance: a tile more than twice as coarse along either axis
    as an edge neighbour that carries mass is split too (a peak's tail spilling over the edge of a refined
    tile can fall between every node of a coarse neighbour, where K and G agree on missing it).
    ``start``: tiles already evaluated (``tiles`` is then ignored)."""
    if start is None:
        nodes = gk_nodes(tiles)
        a, v = integrand(nodes.points)
        finite = a[np.isfinite(a)]
        start = Cubature(tiles, nodes, a, v, float(finite.max() + nodes.log_w.max()) if finite.size else 0.0)
    cub = start
    while len(cub.nodes) + 3 * GK_N <= max_nodes:
        k, g, mixed = cub.tile_sums()
        err = np.abs(k - g)  # [T, C]
        if not np.all(np.isfinite(err)):
            return cub
        allowed = goal(k.sum(0))
        if np.all(err.sum(0) <= allowed):
            chosen, axes = _unbalanced(cub.tiles, np.abs(k[:, 0]) > 1e-3 * allowed[0])
            if not len(chosen):
                return cub
        else:
            score = (err / np.maximum(allowed, 1e-300)).sum(1)
            order = np.argsort(-score)
            cum = np.cumsum(score[order])
            chosen = order[: int(np.searchsorted(cum, 0.8 * cum[-1])) + 1]
            axis_err = (np.abs(k[None] - mixed) / np.maximum(allowed, 1e-300)).sum(-1)[:, chosen]  # [2, chosen]
            axes = np.where(axis_err[0] > 4 * axis_err[1], 0, np.where(axis_err[1] > 4 * axis_err[0], 1, 2))
        room = max(1, (max_nodes - len(cub.nodes)) // (3 * GK_N))
        cub = _refine(cub, integrand, chosen[:room], axes[:room])
    return cub


def _refine(cub: Cubature, integrand: Integrand, chosen: np.ndarray, axes: np.ndarray) -> Cubature:
    children = _split(cub.tiles[chosen], axes)
    child_nodes = gk_nodes(children)
    child_a, child_v = integrand(child_nodes.points)
    keep = np.ones(len(cub.tiles), bool)
    keep[chosen] = False
    keep_nodes = np.repeat(keep, GK_N)
    return Cubature(np.concatenate([cub.tiles[keep], children]), Nodes.concat(cub.nodes.subset(keep_nodes), child_nodes),
                    np.concatenate([cub.a[keep_nodes], child_a]), np.concatenate([cub.v[keep_nodes], child_v]), cub.shift)


def _unbalanced(tiles: np.ndarray, heavy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tiles sharing an edge with a neighbour that carries mass (``heavy``) and more than twice as wide as
    it along either axis (across the edge or along it: a peak that the neighbour resolved may cross into
    this tile anywhere on the edge), with the axis or axes to halve them along."""
    a0, a1, b0, b1 = (tiles[:, i][:, None] for i in range(4))  # [T, 1] each: tile i in the rows
    c0, c1, d0, d1 = (tiles[:, i][None, :] for i in range(4))  # [1, T]: neighbour j in the columns
    overlap2, overlap1 = (b0 < d1) & (d0 < b1), (a0 < c1) & (c0 < a1)
    adjacent = ((((a1 == c0) | (c1 == a0)) & overlap2) | (((b1 == d0) | (d1 == b0)) & overlap1)) & heavy[None, :]
    w1, w2 = tiles[:, 1] - tiles[:, 0], tiles[:, 3] - tiles[:, 2]
    coarse1 = (adjacent & (w1[:, None] > 2.0 * w1[None, :] * (1 + 1e-9))).any(1)
    coarse2 = (adjacent & (w2[:, None] > 2.0 * w2[None, :] * (1 + 1e-9))).any(1)
    chosen = np.flatnonzero(coarse1 | coarse2)
    return chosen, np.where(coarse1[chosen] & coarse2[chosen], 2, np.where(coarse1[chosen], 0, 1))


# --------------------------------------------------------------------------- the search
@dataclass(frozen=True)
class Search:
    box: Box  # where the mass is: every coarse cell within SEARCH_DEPTH nats of the heaviest, padded by a cell
    nodes: Nodes  # the last coarse grid's cells, each at its highest point, weighted so e^{f + log_w} is its mass
    log_f: np.ndarray  # f at those points
    converged: bool  # False when the rounds ran out with heavy cells still on the grid's edge


def cell_masses(log_f: LogDensity, box: Box, n: int) -> tuple[Nodes, np.ndarray, np.ndarray]:
    """Each cell of the n × n grid over ``box``: its highest point found, f there and log of its mass.

    Per cell and in both axis orders: a parabola through f at the cell's centre and the midpoints of two
    opposite edges finds the cell's ridge across the first axis (its offset and width √(π/−a), at most the
    cell); a second parabola along that ridge line finds the peak and width along the other axis. The
    cell's top is the largest f actually evaluated; mass ≈ e^{top}·width₁·width₂, the larger of the two
    orders. Exact for Gaussian cross-sections of any width, so a ridge much narrower than a cell (a
    funnel's neck) is weighed by its mass rather than missed because no centre lies on it."""
    h = np.array([(box[1] - box[0]) / n, (box[3] - box[2]) / n])
    c1, c2 = box[0] + h[0] * (np.arange(n) + 0.5), box[2] + h[1] * (np.arange(n) + 0.5)
    centres = np.stack(np.meshgrid(c1, c2, indexing="ij"), -1).reshape(-1, 2)
    f0 = _finite_or_floor(log_f(centres))
    best_mass = np.full(n * n, -np.inf)
    best_top, best_point = f0.copy(), centres.copy()
    for first in (0, 1):
        second = 1 - first
        step1, step2 = np.zeros(2), np.zeros(2)
        step1[first], step2[second] = 0.5 * h[first], 0.5 * h[second]
        lo_hi = _finite_or_floor(log_f(np.concatenate([centres - step1, centres + step1])))
        t1, w1 = _parabola(lo_hi[: n * n], f0, lo_hi[n * n :], h[first])
        ridge = centres.copy()
        ridge[:, first] += t1
        line = _finite_or_floor(log_f(np.concatenate([ridge, ridge - step2, ridge + step2])))
        on_ridge = line[: n * n]
        t2, w2 = _parabola(line[n * n : 2 * n * n], on_ridge, line[2 * n * n :], h[second])
        peak = ridge.copy()
        peak[:, second] += t2
        f_peak = _finite_or_floor(log_f(peak))
        candidates = np.stack([f0, on_ridge, f_peak])
        top = candidates.max(0)
        where = np.stack([centres, ridge, peak])[candidates.argmax(0), np.arange(n * n)]
        mass = top + np.log(w1) + np.log(w2)
        better = mass > best_mass
        best_mass = np.where(better, mass, best_mass)
        best_top = np.where(better, top, best_top)
        best_point = np.where(better[:, None], where, best_point)
    finite = np.isfinite(best_top)
    nodes = Nodes(best_point, np.where(finite, best_mass - np.where(finite, best_top, 0.0), -np.inf), np.ones(n * n))
    return nodes, best_top, best_mass


def _finite_or_floor(values: np.ndarray) -> np.ndarray:
    """f with NaN as −inf (f is a log density: NaN means nothing sensible is there)."""
    return np.where(np.isnan(values), -np.inf, values)


def _parabola(lo: np.ndarray, mid: np.ndarray, hi: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """From f at −h/2, 0, +h/2 across a cell: the offset of the parabola's vertex (clamped to the cell; the
    higher edge when the parabola opens upwards) and the width of the mass along this axis, √(π/−a) for
    curvature a < 0, at most h."""
    d = 0.5 * h
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        lo, hi = np.maximum(lo, mid - 1e4), np.maximum(hi, mid - 1e4)  # −inf beside a finite centre: a steep wall
        a = (hi - 2.0 * mid + lo) / (2.0 * d * d)
        b = (hi - lo) / (2.0 * d)
        vertex = np.where(a < 0, -b / (2.0 * np.where(a < 0, a, -1.0)), np.sign(b) * d)
        width = np.where(a < 0, np.minimum(h, np.sqrt(np.pi / np.where(a < 0, -a, 1.0))), h)
    ok = np.isfinite(vertex) & np.isfinite(width) & (width > 0)
    return np.where(ok, np.clip(vertex, -d, d), 0.0), np.where(ok, width, h)


def search(log_f: LogDensity, seed: Box, n: int = SEARCH_N, depth: float = SEARCH_DEPTH,
           rounds: int = SEARCH_ROUNDS) -> Search | None:
    """Find the box holding the mass of e^f: coarse n × n grids of cell masses (``cell_masses``) that grow
    (by their width) on each side where heavy cells touch the edge, and zoom in on the heavy cells'
    bounding box. None when f is −inf (or NaN) everywhere it looked."""
    box = seed
    last: tuple[Nodes, np.ndarray, Box] | None = None
    for _ in range(rounds):
        nodes, f, log_mass = cell_masses(log_f, box, n)
        grid = log_mass.reshape(n, n)
        if not np.isfinite(grid.max()):
            box = pad(box, 0.5)
            continue
        last = (nodes, f, box)
        keep = grid >= grid.max() - depth
        grow = (keep[0].any(), keep[-1].any(), keep[:, 0].any(), keep[:, -1].any())
        if any(grow):
            w1, w2 = box[1] - box[0], box[3] - box[2]
            box = (box[0] - w1 * grow[0], box[1] + w1 * grow[1], box[2] - w2 * grow[2], box[3] + w2 * grow[3])
            continue
        h1, h2 = (box[1] - box[0]) / n, (box[3] - box[2]) / n
        rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
        mass_box = (box[0] + h1 * (rows[0] - 1), box[0] + h1 * (rows[-1] + 2),
                    box[2] + h2 * (cols[0] - 1), box[2] + h2 * (cols[-1] + 2))
        if min((mass_box[1] - mass_box[0]) / (box[1] - box[0]), (mass_box[3] - mass_box[2]) / (box[3] - box[2])) < 0.6:
            box = mass_box
            continue
        return Search(mass_box, nodes, f, True)
    if last is None:
        return None
    return Search(last[2], last[0], last[1], False)


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

    cub = adaptive(integrand, _tiling(box, TILES), allowed, max_nodes)
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
    tile_f, tail_f = _finite_or_floor(tile_f), _finite_or_floor(tail_f)
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
        f = _finite_or_floor(log_f(points))
        return f, columns(f, log_q(points))

    f0 = _finite_or_floor(tile_f)
    start = Cubature(post.tiles, tiles, f0, columns(f0, log_q(tiles.points)),
                     float(np.max(f0 + tiles.log_w)))
    cub = adaptive(integrand, post.tiles, lambda totals: np.array([P_GOAL, goal]) * abs(totals[0]),
                   len(tiles) + max_nodes, start=start)
    k, g, _ = cub.tile_sums()
    tail_w = np.exp(_finite_or_floor(tail_f) + tail.log_w - cub.shift)
    lq_tail = log_q(tail.points) if len(tail) else np.zeros(0)
    if np.any((tail_w > 0) & ~np.isfinite(lq_tail)) or not np.all(np.isfinite(k)):
        return Estimate(math.inf, 0.0)
    tail_sums = np.array([tail_w.sum(), (tail_w * np.where(tail_w > 0, tail_f - lq_tail, 0.0)).sum()])
    kl = [float(s[1] / s[0] - math.log(s[0]) - cub.shift)
          for s in (k.sum(0) + tail_sums, g.sum(0) + tail_sums)]
    total = k[:, 0].sum() + tail_sums[0]
    tail_part = abs(float((tail_w * (np.where(tail_w > 0, tail_f - lq_tail, 0.0) - (kl[0] + math.log(total) + cub.shift))).sum() / total))
    rounding = post.f_eps * float((np.abs(cub.v[:, 1]) @ np.exp(cub.a - cub.shift + cub.nodes.log_w)) / total) + post.rounding
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
           f_eps: float = 0.0) -> QSide:
    """E_q[log q − f] = ∫ N(ε) h(T_φ(ε)) dε, h = log q − f, from log q and f at the images of ``GH_EPS``.

    First the 20 × 20 Gauss–Hermite rule, checked against the 14 × 14 one (exact alike for polynomials of
    degree ≤ 27 in ε, such as every Gaussian q against a polynomial log p(x, z)); their difference is the
    error estimate. Where it exceeds ``goal``, adaptive Gauss–Kronrod cubature over ε ∈ [−c, c]² through
    ``q_map``, plus P(ε outside)·mean(h) over exact conditional tail draws, whose standard error joins
    the error. ``f_eps`` (the evaluation's relative precision) adds f_eps·E_q[|log q| + |f|]."""
    h = log_q - f
    n_fine = len(GH_FINE[1])
    if not np.all(np.isfinite(h)):
        return QSide(Estimate(math.inf, 0.0), len(h), "")
    fine, check = float(GH_FINE[1] @ h[:n_fine]), float(GH_CHECK[1] @ h[n_fine:])
    rounding = f_eps * float(GH_FINE[1] @ (np.abs(log_q[:n_fine]) + np.abs(f[:n_fine])))
    if abs(fine - check) <= goal:
        return QSide(Estimate(fine, abs(fine - check) + rounding), len(h), "")
    return _q_side_adaptive(q_map, rng, goal, rounding)


def _q_side_adaptive(q_map: QMap, rng: np.random.Generator, goal: float, rounding: float, c: float = EPS_C,
                     max_nodes: int = EPS_MAX_NODES) -> QSide:
    def integrand(eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_q, f = q_map(eps)
        return -0.5 * (eps**2).sum(1) - math.log(2 * math.pi), (log_q - f)[:, None]

    cub = adaptive(integrand, _tiling((-c, c, -c, c), TILES), lambda totals: np.array([goal]), max_nodes)
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
