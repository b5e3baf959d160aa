"""Shared helpers for the core maths tests: closed forms and small builders (plain functions, no fixtures).

Test files load this module through importlib under a private name (``_core_test_helpers``), so it
cannot collide with another ``helpers`` module elsewhere in the test tree.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from explorer.core.grid import Grid, make_grid
from explorer.core.models import LinearEncoder
from explorer.core.problems import make_problem

LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- gaussian closed forms
def gauss_log_px(x: np.ndarray, mu: np.ndarray) -> float:
    """log N(x; μ, 2I), written out by hand."""
    x, mu = np.asarray(x, float), np.asarray(mu, float)
    d = x.size
    return float(-0.5 * d * math.log(2.0 * math.pi * 2.0) - np.sum((x - mu) ** 2) / 4.0)


def gauss_post_mean(x: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return (np.asarray(x, float) + np.asarray(mu, float)) / 2.0


def gauss_kl(m: np.ndarray, s2: float, c: np.ndarray) -> float:
    """KL(N(m, s²I) ‖ N(c, ½I)) = (d/2)(2s² − 1 − ln 2s²) + ‖m − c‖²."""
    m, c = np.asarray(m, float), np.asarray(c, float)
    d = m.size
    return float(0.5 * d * (2 * s2 - 1 - math.log(2 * s2)) + np.sum((m - c) ** 2))


def gauss_kl_generic(m: np.ndarray, s2: float, c: np.ndarray, v: float) -> float:
    """Textbook KL(N(m, s²I) ‖ N(c, vI)) (an independent check of the formula above)."""
    m, c = np.asarray(m, float), np.asarray(c, float)
    d = m.size
    return float(0.5 * (d * s2 / v + np.sum((m - c) ** 2) / v - d + d * math.log(v / s2)))


# --------------------------------------------------------------------------- builders
def gaussian_problem(dim: int = 2, mu: list[float] | None = None):
    opts: dict = {"dim": dim}
    if mu is not None:
        opts["mu"] = mu
    return make_problem("gaussian", opts)


def linear_encoder(A: np.ndarray, b: np.ndarray, var: float = 2.0 / 3.0, dtype=torch.float64) -> LinearEncoder:
    A = np.asarray(A, float)
    enc = LinearEncoder(A.shape[1], A.shape[0], var=var).to(dtype)
    with torch.no_grad():
        enc.A.copy_(torch.as_tensor(A, dtype=dtype))
        enc.b.copy_(torch.as_tensor(np.asarray(b, float), dtype=dtype))
    return enc


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=gen(seed), dtype=dtype)


# --------------------------------------------------------------------------- grid evaluation
def grid_log_joint(decoder, x: torch.Tensor, grid: Grid) -> np.ndarray:
    """log p_θ(x, z) on the grid as an [n, n] float64 array. x is [1, x_dim]."""
    with torch.no_grad():
        lj = decoder.log_joint(x, grid.points[:, None, :])  # [n*n, 1]
    return lj.reshape(grid.n, grid.n).double().cpu().numpy()


def grid_log_q(encoder, x: torch.Tensor, grid: Grid) -> np.ndarray:
    with torch.no_grad():
        lq = encoder.log_prob(grid.points[:, None, :], x)
    return lq.reshape(grid.n, grid.n).double().cpu().numpy()


def grid64(box, n: int) -> Grid:
    return make_grid(box, n, dtype=torch.float64)


def grid_mass(log_density: np.ndarray, grid: Grid) -> float:
    """∫ exp(log_density) over the box by the midpoint rule, in log space."""
    a = np.asarray(log_density, float)
    mx = float(np.max(a))
    return float(math.exp(mx + math.log(np.sum(np.exp(a - mx))) + grid.log_cell_area))
