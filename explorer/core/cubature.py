"""Adaptive cubature in 2-D, the numerics under core/exact.py (numpy only).

- ``gk_nodes``: the tensor 15-point Gauss–Kronrod rule on boxes, with the embedded 7-point Gauss rule on
  7 × 7 of its nodes (QUADPACK's qk15 in each direction); every integral is computed with both, |K − G|
  being the error estimate of the far cruder Gauss rule (an overestimate for smooth integrands).
- ``adaptive``: splits the tiles with the largest |K − G|, halving a tile across the axis its error comes
  from (so a thin ridge costs nodes along its length only) or quartering it, and keeps the tiles 2:1
  balanced with neighbours that carry mass.
- ``search``: the box holding the mass of e^f, from coarse grids of cell masses (``cell_masses``: parabolas
  across and along each cell, so a ridge narrower than a cell is weighed, not missed), growing towards heavy
  cells on the edge and zooming in on them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

Box = tuple[float, float, float, float]  # (z1_min, z1_max, z2_min, z2_max)
LogDensity = Callable[[np.ndarray], np.ndarray]  # points [N, 2] float64 -> [N] float64 (−inf allowed)
SEARCH_N = 48  # nodes per side of the coarse search grid
SEARCH_DEPTH = 32.0  # nats: the search box keeps every cell with at least e^-32 of the heaviest cell's mass
SEARCH_ROUNDS = 24

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


def tiling(box: Box, k: int) -> np.ndarray:
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
    f0 = finite_or_floor(log_f(centres))
    best_mass = np.full(n * n, -np.inf)
    best_top, best_point = f0.copy(), centres.copy()
    for first in (0, 1):
        second = 1 - first
        step1, step2 = np.zeros(2), np.zeros(2)
        step1[first], step2[second] = 0.5 * h[first], 0.5 * h[second]
        lo_hi = finite_or_floor(log_f(np.concatenate([centres - step1, centres + step1])))
        t1, w1 = _parabola(lo_hi[: n * n], f0, lo_hi[n * n :], h[first])
        ridge = centres.copy()
        ridge[:, first] += t1
        line = finite_or_floor(log_f(np.concatenate([ridge, ridge - step2, ridge + step2])))
        on_ridge = line[: n * n]
        t2, w2 = _parabola(line[n * n : 2 * n * n], on_ridge, line[2 * n * n :], h[second])
        peak = ridge.copy()
        peak[:, second] += t2
        f_peak = finite_or_floor(log_f(peak))
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


def finite_or_floor(values: np.ndarray) -> np.ndarray:
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
    bounding box, padded by a cell. None when f is −inf (or NaN) everywhere it looked.

    A zoom can be too tight: the finer grid weighs the tails more finely (its heaviest cell is lighter, so
    its threshold is lower) and finds heavy cells on the new box's edge. Growing from there by a whole
    width would lead back to the same zoom, round after round, so instead the zoom is redone from the last
    box whose heavy cells stayed inside it, with twice the padding, until a zoom holds or the padded box is
    no longer much smaller than that box (then it is the answer, with that box's grid as the search)."""
    box = seed
    last: tuple[Nodes, np.ndarray, Box] | None = None
    inner: tuple[Nodes, np.ndarray, Box, np.ndarray, np.ndarray] | None = None  # the grid a zoom came from
    padding = 1  # cells of that grid around its heavy cells
    for _ in range(rounds):
        nodes, f, log_mass = cell_masses(log_f, box, n)
        grid = log_mass.reshape(n, n)
        if not np.isfinite(grid.max()):
            box = pad(box, 0.5)
            continue
        last = (nodes, f, box)
        keep = grid >= grid.max() - depth
        grow = (keep[0].any(), keep[-1].any(), keep[:, 0].any(), keep[:, -1].any())
        if any(grow) and inner is not None:  # the zoom was too tight: zoom again from its grid, less far
            padding *= 2
            nodes, f, box, rows, cols = inner
        elif any(grow):
            w1, w2 = box[1] - box[0], box[3] - box[2]
            box = (box[0] - w1 * grow[0], box[1] + w1 * grow[1], box[2] - w2 * grow[2], box[3] + w2 * grow[3])
            continue
        else:
            rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
        h1, h2 = (box[1] - box[0]) / n, (box[3] - box[2]) / n
        mass_box = (box[0] + h1 * (rows[0] - padding), box[0] + h1 * (rows[-1] + 1 + padding),
                    box[2] + h2 * (cols[0] - padding), box[2] + h2 * (cols[-1] + 1 + padding))
        if min((mass_box[1] - mass_box[0]) / (box[1] - box[0]), (mass_box[3] - mass_box[2]) / (box[3] - box[2])) < 0.6:
            inner = (nodes, f, box, rows, cols)
            box = mass_box
            continue
        return Search(mass_box, nodes, f, True)
    if last is None:
        return None
    return Search(last[2], last[0], last[1], False)
