"""Orderings that must hold: E[L_K] is non-decreasing in K and below log p(x); grid KLs are ≥ 0."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from explorer.core.grid import grid_stats, make_grid
from explorer.core.models import make_encoder
from explorer.core.objectives import draw, log_mean_exp
from explorer.core.problems import PROBLEMS, make_problem


import helpers as H  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)
KS = (1, 4, 16, 64)
N_DRAWS = 2000


def _bound_draws(dec, enc, x, K, seed):
    """N_DRAWS independent values of L_K for the single observation x: [N_DRAWS]."""
    eps = H.randn((N_DRAWS, K, 1, enc.z_dim), seed)
    with torch.no_grad():
        log_w = draw(dec, enc, x, eps).log_w  # [N, K, 1]: the N draws ride on the M axis
    return log_mean_exp(log_w).flatten().numpy()


def _check_ordering(means, ses, log_px):
    for k_lo, k_hi in zip(KS, KS[1:]):
        diff = means[k_hi] - means[k_lo]
        se = math.hypot(ses[k_hi], ses[k_lo])
        assert diff > -4 * se, (k_lo, k_hi, diff, se)
    for k in KS:
        assert means[k] < log_px + 4 * ses[k], (k, means[k], log_px)
    # power: the bound does tighten, and the largest K is still measurably below log p(x) or close to it
    assert means[64] - means[1] > 10 * math.hypot(ses[64], ses[1])


def test_bound_increases_with_k_gaussian():
    prob = make_problem("gaussian")
    dec = prob.decoder(learn=False).double()
    mu = dec.mu.detach().numpy()
    enc = H.linear_encoder(np.array([[0.2, 0.1], [0.0, 0.3]]), np.array([0.5, 0.4]))  # far from optimal
    x = torch.tensor([prob.x0], dtype=torch.float64)
    draws = {k: _bound_draws(dec, enc, x, k, seed=100 + k) for k in KS}
    means = {k: float(v.mean()) for k, v in draws.items()}
    ses = {k: float(v.std(ddof=1) / math.sqrt(v.size)) for k, v in draws.items()}
    log_px = H.gauss_log_px(prob.x0, mu)
    _check_ordering(means, ses, log_px)
    # K = 1 is the ELBO, known in closed form
    m = np.array([[0.2, 0.1], [0.0, 0.3]]) @ np.array(prob.x0) + np.array([0.5, 0.4])
    elbo = log_px - H.gauss_kl(m, 2 / 3, H.gauss_post_mean(prob.x0, mu))
    assert abs(means[1] - elbo) < 4 * ses[1]


@pytest.mark.parametrize("name", ["bimodal", "banana"])
def test_bound_increases_with_k_against_grid_log_px(name):
    """Non-Gaussian posteriors: the reference log p(x) is the grid's."""
    prob = make_problem(name)
    dec = prob.decoder(learn=False).double()
    torch.manual_seed(0)
    enc = make_encoder("gaussian", prob.x_dim, 2, [16]).double()
    x = torch.tensor([prob.x0], dtype=torch.float64)
    grid = make_grid(prob.box, 200, dtype=torch.float64)
    log_px = grid_stats(H.grid_log_joint(dec, x, grid), H.grid_log_q(enc, x, grid), grid).log_px
    draws = {k: _bound_draws(dec, enc, x, k, seed=200 + k) for k in KS}
    means = {k: float(v.mean()) for k, v in draws.items()}
    ses = {k: float(v.std(ddof=1) / math.sqrt(v.size)) for k, v in draws.items()}
    _check_ordering(means, ses, log_px)


def _random_encoder(kind: str, x_dim: int, seed: int):
    torch.manual_seed(seed)
    enc = make_encoder(kind, x_dim, 2, [16]).double()
    with torch.no_grad():
        # narrow q a little (log-std bias − 0.5) so that a random q keeps its mass inside the box
        if kind == "gaussian":
            enc.net[-1].bias[2:] -= 0.5
        elif kind == "full-gaussian":
            enc.net[-1].bias[2:4] -= 0.5
        elif kind == "flow":
            enc.base.bias[2:] -= 0.5
            for net in enc.couplings:  # make the couplings non-trivial
                net[-1].weight.normal_(0.0, 0.3)
                net[-1].bias.normal_(0.0, 0.1)
    return enc


@pytest.mark.parametrize("kind", ["linear", "gaussian", "full-gaussian", "flow"])
@pytest.mark.parametrize("name", [n for n in PROBLEMS if n != "digits"])  # digits: no frozen decoder θ*
def test_grid_kls_nonnegative(name, kind):
    """For cell masses q_i, p_i with Σp = 1, Σq = Q: KL(q‖p) ≥ Q ln Q and KL(p‖q) ≥ −ln Q (log-sum inequality);
    with Q ≈ 1 both are KL ≥ 0. We also ask that the random q keeps its mass in the box."""
    prob = make_problem(name)
    dec = prob.decoder(learn=False).double()
    x = torch.tensor([prob.x0], dtype=torch.float64)
    grid = make_grid(prob.box, 120, dtype=torch.float64)
    lj = H.grid_log_joint(dec, x, grid)
    checked = 0
    for seed in range(3):
        enc = _random_encoder(kind, prob.x_dim, seed)
        stats = grid_stats(lj, H.grid_log_q(enc, x, grid), grid)
        Q = stats.q_mass
        if Q < 0.95:  # a q that left the box says nothing about the KL
            continue
        assert math.isfinite(stats.kl_qp) and math.isfinite(stats.kl_pq)
        assert stats.kl_qp >= min(0.0, Q * math.log(Q)) - 1e-9, (seed, stats.kl_qp, Q)
        assert stats.kl_pq >= min(0.0, -math.log(Q)) - 1e-9, (seed, stats.kl_pq, Q)
        assert stats.elbo_exact <= stats.log_px - min(0.0, Q * math.log(Q)) + 1e-9
        checked += 1
    assert checked >= 2


def test_grid_kl_zero_when_q_is_the_posterior():
    """Closed-form check of the other end: q = p(z|x) exactly gives KL = 0 both ways (power for ≥ 0)."""
    prob = make_problem("gaussian")
    dec = prob.decoder(learn=False).double()
    mu = dec.mu.detach().numpy()
    enc = H.linear_encoder(0.5 * np.eye(2), mu / 2, var=0.5)
    x = torch.tensor([prob.x0], dtype=torch.float64)
    grid = make_grid(prob.box, 200, dtype=torch.float64)
    stats = grid_stats(H.grid_log_joint(dec, x, grid), H.grid_log_q(enc, x, grid), grid)
    assert abs(stats.kl_qp) < 1e-6 and abs(stats.kl_pq) < 1e-6
    assert stats.elbo_exact == pytest.approx(stats.log_px, abs=1e-6)
