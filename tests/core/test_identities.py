"""Identities between the estimators on identical noise ε, and hand-derived gradients (design.md,
"Encoders and objectives"). Gradients are taken with torch.autograd.grad on each parameter group apart."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from explorer.core.diagnostics import replicate_gradients
from explorer.core.models import FlowEncoder, GaussianEncoder, LinearEncoder
from explorer.core.objectives import OBJECTIVES, compute_losses, draw, log_mean_exp
from explorer.core.problems import make_problem


import helpers as H  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)
TOL = dict(rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- setups (float64)
def _setup(name: str):
    """(decoder with θ learnable, encoder, x [3, x_dim]) in float64, deterministic."""
    torch.manual_seed(0)
    if name == "gaussian-linear":
        prob = make_problem("gaussian")
        enc = LinearEncoder(2, 2)
        with torch.no_grad():
            enc.A.copy_(torch.tensor([[0.7, 0.2], [-0.1, 0.3]]))
            enc.b.copy_(torch.tensor([0.4, -0.6]))
    elif name == "bimodal-gaussian":
        prob = make_problem("bimodal")
        enc = GaussianEncoder(2, 2, [16])
    elif name == "banana-flow":
        prob = make_problem("banana")
        enc = FlowEncoder(1, 2, [16], n_layers=4)
        with torch.no_grad():  # non-trivial couplings
            for net in enc.couplings:
                net[-1].weight.normal_(0.0, 0.3)
                net[-1].bias.normal_(0.0, 0.1)
    else:
        raise AssertionError(name)
    dec = prob.decoder(learn=True).double()
    x = prob.sample_data(3, H.gen(1)).double()
    return dec, enc.double(), x


SETUPS = ["gaussian-linear", "bimodal-gaussian", "banana-flow"]


def _flat(gs, params):
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gs, params)])


def grads(objective, dec, enc, x, eps, **kw):
    """(losses, θ-gradient of θ's loss, φ-gradient of φ's loss), each group apart."""
    losses = compute_losses(objective, draw(dec, enc, x, eps), **kw)
    theta = [p for p in dec.parameters() if p.requires_grad]
    phi = list(enc.parameters())
    g_t = _flat(torch.autograd.grad(losses.theta_loss, theta, retain_graph=True, allow_unused=True), theta)
    g_p = _flat(torch.autograd.grad(losses.phi_loss, phi, allow_unused=True), phi)
    return losses, g_t, g_p


def assert_same(a, b):
    la, ta, pa = a
    lb, tb, pb = b
    for field in ("theta_loss", "phi_loss", "elbo", "bound", "log_w"):
        torch.testing.assert_close(getattr(la, field), getattr(lb, field), **TOL, msg=field)
    torch.testing.assert_close(ta, tb, **TOL, msg="theta grad")
    torch.testing.assert_close(pa, pb, **TOL, msg="phi grad")


def _eps(m, k, b, d=2, seed=3):
    return H.randn((m, k, b, d), seed)


# --------------------------------------------------------------------------- identities
@pytest.mark.parametrize("setup", SETUPS)
def test_iwae_k1_is_vae(setup):
    dec, enc, x = _setup(setup)
    eps = _eps(1, 1, 3)
    assert_same(grads("iwae", dec, enc, x, eps), grads("vae", dec, enc, x, eps))


@pytest.mark.parametrize("setup", SETUPS)
def test_ciwae_endpoints(setup):
    dec, enc, x = _setup(setup)
    eps = _eps(1, 6, 3)
    assert_same(grads("ciwae", dec, enc, x, eps, beta=0.0), grads("iwae", dec, enc, x, eps))
    assert_same(grads("ciwae", dec, enc, x, eps, beta=1.0), grads("vae", dec, enc, x, eps))
    # and in between it is the convex mix of both losses and both gradients
    lc, tc, pc = grads("ciwae", dec, enc, x, eps, beta=0.3)
    li, ti, pi = grads("iwae", dec, enc, x, eps)
    lv, tv, pv = grads("vae", dec, enc, x, eps)
    torch.testing.assert_close(lc.theta_loss, 0.3 * lv.theta_loss + 0.7 * li.theta_loss, **TOL)
    torch.testing.assert_close(pc, 0.3 * pv + 0.7 * pi, **TOL)
    torch.testing.assert_close(tc, 0.3 * tv + 0.7 * ti, **TOL)


@pytest.mark.parametrize("setup", SETUPS)
def test_iwae_and_vae_differ_for_k_above_1(setup):
    """Power check for the identities above: they are not trivially equal for K > 1."""
    dec, enc, x = _setup(setup)
    eps = _eps(1, 6, 3)
    li, ti, pi = grads("iwae", dec, enc, x, eps)
    lv, tv, pv = grads("vae", dec, enc, x, eps)
    assert float(li.bound) > float(lv.elbo) + 1e-6
    assert (ti - tv).abs().max() > 1e-6 and (pi - pv).abs().max() > 1e-6


@pytest.mark.parametrize("setup", SETUPS)
def test_vr_alpha0_is_iwae(setup):
    dec, enc, x = _setup(setup)
    eps = _eps(1, 5, 3)
    assert_same(grads("vr", dec, enc, x, eps, alpha=0.0), grads("iwae", dec, enc, x, eps))


def test_vr_alpha_to_1_is_elbo():
    dec, enc, x = _setup("gaussian-linear")
    eps = _eps(1, 5, 3)
    lr, tr, pr = grads("vr", dec, enc, x, eps, alpha=1.0 - 1e-7)
    lv, tv, pv = grads("vae", dec, enc, x, eps)
    torch.testing.assert_close(lr.theta_loss, lv.theta_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pr, pv, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("setup", SETUPS)
def test_piwae_groups(setup):
    """θ: L_{MK} over all samples (= IWAE with K' = M·K)."""
    dec, enc, x = _setup(setup)
    M, K, B = 3, 4, 3
    eps = _eps(M, K, B)
    lp, tp, pp = grads("piwae", dec, enc, x, eps)
    li, ti, _ = grads("iwae", dec, enc, x, eps.reshape(1, M * K, B, 2))
    torch.testing.assert_close(lp.theta_loss, li.theta_loss, **TOL)
    torch.testing.assert_close(tp, ti, **TOL)
    # power: the two groups really do get different objectives here (φ's is checked by hand below)
    assert (ti - grads("miwae", dec, enc, x, eps)[1]).abs().max() > 1e-6


@pytest.mark.parametrize("setup", SETUPS)
def test_dreg_is_stl_at_k1(setup):
    dec, enc, x = _setup(setup)
    eps = _eps(1, 1, 3)
    assert_same(grads("dreg", dec, enc, x, eps), grads("stl", dec, enc, x, eps))


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("objective", ["dreg", "stl", "rws"])
def test_theta_gradient_is_iwae_for_dreg_stl_rws(setup, objective):
    dec, enc, x = _setup(setup)
    eps = _eps(1, 5, 3)
    lo, to, po = grads(objective, dec, enc, x, eps)
    li, ti, pi = grads("iwae", dec, enc, x, eps)
    torch.testing.assert_close(lo.theta_loss, li.theta_loss, **TOL)
    torch.testing.assert_close(to, ti, **TOL)
    # and the φ-gradient is not the plain IWAE one (no leak of the combined backward)
    assert (po - pi).abs().max() > 1e-6


def test_bound_is_logsumexp_minus_log_k_not_surrogate():
    """Reported values: elbo = mean log w, bound = mean over (M, B) of logsumexp_k log w − log K."""
    dec, enc, x = _setup("bimodal-gaussian")
    eps = _eps(2, 5, 3)
    for objective in OBJECTIVES:
        losses = compute_losses(objective, draw(dec, enc, x, eps))
        lw = losses.log_w
        assert not lw.requires_grad
        torch.testing.assert_close(losses.elbo, lw.mean(), **TOL)
        want = (torch.logsumexp(lw, dim=1) - math.log(5)).mean()
        torch.testing.assert_close(losses.bound, want, **TOL)


# --------------------------------------------------------------------------- hand-derived gradients
def _linear_gaussian_case(M=1, K=6, B=3, seed=4):
    """Gaussian problem (θ = μ learnable at μ₀), linear encoder; everything by hand below."""
    prob = make_problem("gaussian", {"mu": [0.5, -0.5]})
    dec = prob.decoder(learn=True).double()
    with torch.no_grad():
        dec.mu.copy_(torch.tensor([0.2, -0.3]))
    A = np.array([[0.7, 0.2], [-0.1, 0.3]])
    b = np.array([0.4, -0.6])
    enc = H.linear_encoder(A, b)
    x = prob.sample_data(B, H.gen(2)).double()
    eps = _eps(M, K, B, seed=seed)
    return dec, enc, x, eps


def _by_hand(objective, dec, enc, x, eps, beta, alpha):
    """θ-gradient (w.r.t. μ) and φ-gradient (w.r.t. A, b) of each *loss* (negated objective).

    With the variance fixed, log q(z(ε)) does not depend on (A, b): φ reaches log w only along the path
    z = Ax + b + sε, through log p. Each objective is a weighted sum over the K particles of a group,
    averaged over the M groups and the batch; the weights are written out per objective."""
    s2 = 2.0 / 3.0
    mu = dec.mu.detach()
    A, b = enc.A.detach(), enc.b.detach()
    m = x @ A.T + b  # [B, d]
    z = m + math.sqrt(s2) * eps  # [M, K, B, d]
    log_p = -0.5 * ((z - mu) ** 2).sum(-1) - 0.5 * ((x - z) ** 2).sum(-1) - 2 * math.log(2 * math.pi)
    log_q = -0.5 * ((z - m) ** 2).sum(-1) / s2 - math.log(2 * math.pi * s2)
    log_w = log_p - log_q  # [M, K, B]
    M, K = log_w.shape[:2]
    wt = torch.exp(log_w - log_w.max(1, keepdim=True).values)
    wt = (wt / wt.sum(1, keepdim=True))[..., None]  # w̃ within each group, [M, K, B, 1]
    uniform = torch.full_like(wt, 1.0 / K)
    v = torch.exp((1 - alpha) * (log_w - log_w.max(1, keepdim=True).values))
    v = (v / v.sum(1, keepdim=True))[..., None]  # the Rényi bound's weights w^(1−α) / Σ w^(1−α)
    joint = torch.exp(log_w - log_w.max())
    joint = (joint / joint.sum((0, 1), keepdim=True))[..., None]  # w̃ over all M·K particles
    dlogp_dz = x + mu - 2 * z  # ∂ log p(x, z)/∂z
    dlogq_dz = -(z - m) / s2  # ∂ log q(z)/∂z with φ fixed
    score_m = (z - m) / s2  # ∂ log q(z)/∂m with z fixed
    path_weights = {"vae": uniform, "iwae": wt, "miwae": wt, "piwae": wt, "ciwae": beta * uniform + (1 - beta) * wt,
                    "vr": v}
    theta_weights = {**path_weights, "piwae": M * joint, "dreg": wt, "stl": wt, "rws": wt}[objective]
    if objective == "dreg":
        per_particle = wt**2 * (dlogp_dz - dlogq_dz)
    elif objective == "stl":
        per_particle = wt * (dlogp_dz - dlogq_dz)
    elif objective == "rws":
        per_particle = wt * score_m  # wake-φ maximises Σ w̃ log q(z_k): its gradient w.r.t. m
    else:
        per_particle = path_weights[objective] * dlogp_dz

    def group_mean(t):  # Σ over the K particles, mean over the M groups: [B, d]
        return t.sum(1).mean(0)

    Bn = x.shape[0]
    per_z = group_mean(per_particle)  # d(objective)/d(m_b)
    g_b = -per_z.sum(0) / Bn
    g_A = -(per_z[:, :, None] * x[:, None, :]).sum(0) / Bn
    g_mu = -group_mean(theta_weights * (z - mu)).sum(0) / Bn  # d log p/dμ = z − μ
    return g_mu, torch.cat([g_A.reshape(-1), g_b])


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_gradients_match_hand_derivation_linear_gaussian(objective):
    M = 3 if OBJECTIVES[objective].uses_m() else 1
    dec, enc, x, eps = _linear_gaussian_case(M=M)
    _, g_t, g_p = grads(objective, dec, enc, x, eps, beta=0.3, alpha=0.4)
    want_t, want_p = _by_hand(objective, dec, enc, x, eps, beta=0.3, alpha=0.4)
    torch.testing.assert_close(g_t, want_t, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(g_p, want_p, rtol=1e-9, atol=1e-10)


# --------------------------------------------------------------------------- at the exact posterior
@pytest.mark.parametrize("dim", [2, 5])
def test_exact_posterior_zero_path_gradients_and_tight_bound(dim):
    """q = p(z|x): log w ≡ log p(x), so DReG/STL φ-gradients vanish and L_K = log p(x) for every K."""
    prob = make_problem("gaussian", {"dim": dim})
    dec = prob.decoder(learn=False).double()
    mu = dec.mu.detach().numpy()
    enc = H.linear_encoder(0.5 * np.eye(dim), mu / 2.0, var=0.5)
    x = prob.sample_data(4, H.gen(5)).double()
    log_px = torch.tensor([H.gauss_log_px(xi, mu) for xi in x.numpy()], dtype=torch.float64)
    phi = list(enc.parameters())
    for K in (1, 4, 16, 64):
        eps = H.randn((1, K, 4, dim), 10 + K)
        p = draw(dec, enc, x, eps)
        torch.testing.assert_close(p.log_w.detach(), log_px.expand(1, K, 4), rtol=0, atol=1e-10)
        losses = compute_losses("iwae", p)
        torch.testing.assert_close(log_mean_exp(losses.log_w)[0], log_px, rtol=0, atol=1e-10)
        for objective in ("dreg", "stl"):
            lo = compute_losses(objective, draw(dec, enc, x, eps))
            g = _flat(torch.autograd.grad(lo.phi_loss, phi, allow_unused=True), phi)
            assert g.abs().max() < 1e-10, (objective, K, g)
        # power: the IWAE φ-gradient is pure score-function noise here, not zero
        li = compute_losses("iwae", draw(dec, enc, x, eps))
        g_iwae = _flat(torch.autograd.grad(li.phi_loss, phi), phi)
        if K < 64:
            assert g_iwae.abs().max() > 1e-3


# --------------------------------------------------------------------------- DReG is unbiased
def _paired_t(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    d = (a - b).numpy()
    return d.mean(0) / (d.std(0, ddof=1) / math.sqrt(d.shape[0]))


def test_dreg_phi_gradient_has_iwae_mean():
    """Paired t over R = 2000 replicates on the same noise: max |t| < 4 (6 parameters).

    Power: the same statistic tells IWAE from VAE and DReG (w̃²) from STL (w̃), |t| ≫ 4."""
    prob = make_problem("gaussian")
    dec = prob.decoder(learn=False).double()
    mu = dec.mu.detach().numpy()
    A = 0.5 * np.eye(2) + np.array([[0.3, -0.2], [0.1, 0.25]])
    b = mu / 2.0 + np.array([0.4, -0.3])
    enc = H.linear_encoder(A, b)
    x = prob.sample_data(4, H.gen(0)).double()
    R, K = 2000, 8
    eps = H.randn((R, 1, K, 4, 2), 5)
    g = {o: replicate_gradients(dec, enc, o, x, eps)[1] for o in ("iwae", "dreg", "vae", "stl")}
    t_null = _paired_t(g["dreg"], g["iwae"])
    assert np.all(np.isfinite(t_null))
    assert np.max(np.abs(t_null)) < 4.0, t_null
    assert np.max(np.abs(_paired_t(g["iwae"], g["vae"]))) > 20.0
    assert np.max(np.abs(_paired_t(g["stl"], g["dreg"]))) > 20.0
