"""The gaussian problem against its closed forms (design.md, "Problems").

z ~ N(μ, I), x|z ~ N(z, I):  p(z|x) = N((x+μ)/2, ½I),  log p(x) = log N(x; μ, 2I).
For q = N(m, s²I):  KL(q‖p(z|x)) = (d/2)(2s² − 1 − ln 2s²) + ‖m − c‖²,  c = (x+μ)/2.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from explorer.core.grid import grid_stats, posterior_moments
from explorer.core.objectives import compute_losses, draw


import helpers as H  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)

# observations: the showcase x0, the origin, and one off to the side
XS = [None, [0.0, 0.0], [2.0, -1.5]]
A_TEST = np.array([[0.4, 0.1], [-0.05, 0.6]])
B_TEST = np.array([0.2, -0.3])


def _setup(xv):
    prob = H.gaussian_problem()
    dec = prob.decoder(learn=False).double()
    mu = dec.mu.detach().numpy().copy()
    xv = prob.x0 if xv is None else xv
    x = torch.tensor([xv], dtype=torch.float64)
    return prob, dec, mu, np.asarray(xv, float), x


def test_true_decoder_is_the_stated_model():
    """Independent check that the decoder is z ~ N(μ, I), x|z ~ N(z, I) with θ* = μ*."""
    prob = H.gaussian_problem(mu=[0.3, -1.2])
    dec = prob.decoder(learn=False).double()
    assert not any(p.requires_grad for p in dec.parameters())
    z = H.randn((5, 1, 2), 0)
    x = torch.tensor([[0.7, 0.1]], dtype=torch.float64)
    mu = torch.tensor([0.3, -1.2], dtype=torch.float64)
    want_prior = -0.5 * ((z - mu) ** 2).sum(-1) - math.log(2 * math.pi)
    want_lik = -0.5 * ((x - z) ** 2).sum(-1) - math.log(2 * math.pi)
    torch.testing.assert_close(dec.log_prior(z), want_prior)
    torch.testing.assert_close(dec.log_lik(x, z), want_lik)
    torch.testing.assert_close(dec.log_joint(x, z), want_prior + want_lik)


@pytest.mark.parametrize("xv", XS, ids=["x0", "origin", "side"])
def test_grid_log_px_matches_closed_form(xv):
    prob, dec, mu, xn, x = _setup(xv)
    grid = H.grid64(prob.box, 200)
    lj = H.grid_log_joint(dec, x, grid)
    stats = grid_stats(lj, np.zeros_like(lj) - 10.0, grid)
    assert abs(stats.log_px - H.gauss_log_px(xn, mu)) < 1e-3


def test_grid_log_px_float32_grid():
    """The app's default float32 grid also gets log p(x) within 1e-3."""
    from explorer.core.grid import make_grid

    prob = H.gaussian_problem()
    dec = prob.decoder(learn=False)
    grid = make_grid(prob.box, 200)
    x = torch.tensor([prob.x0])
    lj = H.grid_log_joint(dec, x, grid)
    stats = grid_stats(lj, lj, grid)
    assert abs(stats.log_px - H.gauss_log_px(prob.x0, dec.mu.detach().numpy())) < 1e-3


@pytest.mark.parametrize("xv", XS, ids=["x0", "origin", "side"])
def test_grid_posterior_moments_match_closed_form(xv):
    prob, dec, mu, xn, x = _setup(xv)
    grid = H.grid64(prob.box, 200)
    stats = grid_stats(H.grid_log_joint(dec, x, grid), np.zeros((200, 200)), grid)
    mean, cov = posterior_moments(stats.log_post, grid)
    np.testing.assert_allclose(mean, H.gauss_post_mean(xn, mu), atol=1e-3)
    np.testing.assert_allclose(cov, 0.5 * np.eye(2), atol=1e-3)
    # the normalised grid posterior is a density on the box: it integrates to 1
    assert abs(H.grid_mass(stats.log_post, grid) - 1.0) < 1e-9
    # and it is N(c, ½I) pointwise (log space, where the posterior holds its mass)
    c = H.gauss_post_mean(xn, mu)
    g1, g2 = np.meshgrid(grid.z1, grid.z2, indexing="ij")
    want = -math.log(math.pi) - ((g1 - c[0]) ** 2 + (g2 - c[1]) ** 2)
    near = (g1 - c[0]) ** 2 + (g2 - c[1]) ** 2 < 4.0
    np.testing.assert_allclose(stats.log_post[near], want[near], atol=1e-3)


def test_closed_form_kl_helper_is_the_textbook_kl():
    """Guards the test's own formula: the design's KL equals the generic Gaussian KL with v = ½."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        m, c = rng.normal(size=2), rng.normal(size=2)
        s2 = float(rng.uniform(0.1, 2.0))
        assert H.gauss_kl(m, s2, c) == pytest.approx(H.gauss_kl_generic(m, s2, c, 0.5), abs=1e-12)


def test_gap_at_optimum_is_design_number():
    """(d/2)(1/3 − ln 4/3) ≈ 0.0457 for d = 2, and the grid sees the same gap at m = c."""
    d = 2
    gap = 0.5 * d * (1.0 / 3.0 - math.log(4.0 / 3.0))
    assert gap == pytest.approx(0.0457, abs=1e-4)
    c = np.array([0.3, -0.2])
    assert H.gauss_kl(c, 2.0 / 3.0, c) == pytest.approx(gap, abs=1e-12)

    prob, dec, mu, xn, x = _setup(None)
    enc = H.linear_encoder(0.5 * np.eye(2), mu / 2.0)  # m = (x+μ)/2 = c, s² = 2/3: the paper's optimum
    grid = H.grid64(prob.box, 200)
    stats = grid_stats(H.grid_log_joint(dec, x, grid), H.grid_log_q(enc, x, grid), grid)
    assert stats.kl_qp == pytest.approx(gap, abs=1e-3)
    assert stats.log_px - stats.elbo_exact == pytest.approx(gap, abs=1e-3)


@pytest.mark.parametrize("xv", XS, ids=["x0", "origin", "side"])
def test_grid_kl_of_linear_encoder_matches_closed_form(xv):
    prob, dec, mu, xn, x = _setup(xv)
    enc = H.linear_encoder(A_TEST, B_TEST)
    grid = H.grid64(prob.box, 200)
    stats = grid_stats(H.grid_log_joint(dec, x, grid), H.grid_log_q(enc, x, grid), grid)
    m = A_TEST @ xn + B_TEST
    c = H.gauss_post_mean(xn, mu)
    kl = H.gauss_kl(m, 2.0 / 3.0, c)
    assert stats.q_mass > 0.999
    assert stats.kl_qp == pytest.approx(kl, abs=1e-3)
    assert stats.elbo_exact == pytest.approx(H.gauss_log_px(xn, mu) - kl, abs=2e-3)
    # reverse direction: KL(p‖q) = KL(N(c, ½I) ‖ N(m, ⅔I))
    kl_pq = 0.5 * (2 * 0.5 / (2 / 3) + np.sum((m - c) ** 2) / (2 / 3) - 2 + 2 * math.log((2 / 3) / 0.5))
    assert stats.kl_pq == pytest.approx(kl_pq, abs=1e-3)


@pytest.mark.parametrize("xv", XS, ids=["x0", "origin", "side"])
def test_mc_elbo_of_linear_encoder_matches_closed_form(xv):
    """z-test on 20 000 draws: |mean log w − ELBO| < 4 standard errors."""
    prob, dec, mu, xn, x = _setup(xv)
    enc = H.linear_encoder(A_TEST, B_TEST)
    n = 20_000
    eps = H.randn((1, n, 1, 2), 1)
    losses = compute_losses("vae", draw(dec, enc, x, eps))
    log_w = losses.log_w.flatten().numpy()
    m = A_TEST @ xn + B_TEST
    elbo = H.gauss_log_px(xn, mu) - H.gauss_kl(m, 2.0 / 3.0, H.gauss_post_mean(xn, mu))
    se = log_w.std(ddof=1) / math.sqrt(n)
    assert abs(log_w.mean() - elbo) < 4 * se
    assert float(losses.elbo) == pytest.approx(log_w.mean(), abs=1e-9)
    # the MC variance of log w for Gaussians is known too: the test is not vacuous (se is small)
    assert se < 0.01


def test_linear_encoder_is_the_stated_family():
    """q = N(Ax + b, ⅔I): log q against the textbook density, and samples have that mean/cov."""
    enc = H.linear_encoder(A_TEST, B_TEST)
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    m = torch.as_tensor(A_TEST @ np.array([1.0, -2.0]) + B_TEST)
    ref = torch.distributions.MultivariateNormal(m, covariance_matrix=(2 / 3) * torch.eye(2, dtype=torch.float64))
    eps = H.randn((1, 4000, 1, 2), 2)
    z, log_q = enc.rsample(x, eps)
    torch.testing.assert_close(log_q, ref.log_prob(z))
    zs = z.detach().reshape(-1, 2)
    np.testing.assert_allclose(zs.mean(0).numpy(), m.numpy(), atol=4 * math.sqrt(2 / 3 / 4000))
    np.testing.assert_allclose(torch.cov(zs.T).numpy(), (2 / 3) * np.eye(2), atol=0.06)
