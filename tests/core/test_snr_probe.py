"""The gradient-SNR probe (design.md, "Gradient SNR"): the vmapped replicates equal the Python-loop
reference, the summary is |mean|/std (ddof 1) over parameters with non-zero variance, floor 0.8/√R."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from explorer.core.diagnostics import (
    gradient_snr,
    replicate_gradients,
    replicate_gradients_loop,
    snr_floor,
    summarise_snr,
)
from explorer.core.models import make_encoder
from explorer.core.objectives import OBJECTIVES, compute_losses, draw
from explorer.core.problems import make_problem


import helpers as H  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)
TOL = dict(rtol=1e-8, atol=1e-10)
RUN_KW = dict(beta=0.3, alpha=0.4)


def _setup(encoder: str, problem: str = "bimodal", decoder: str = "param"):
    torch.manual_seed(0)
    prob = make_problem(problem)
    dec = prob.decoder(kind=decoder, learn=True, hidden=[8]).double()
    enc = make_encoder(encoder, prob.x_dim, 2, [8]).double()
    if encoder == "flow":
        with torch.no_grad():
            for net in enc.couplings:
                net[-1].weight.normal_(0.0, 0.3)
    x = prob.sample_data(3, H.gen(1)).double()
    return dec, enc, x


def _eps(objective, R=4, K=3, B=3, seed=2):
    M = 2 if OBJECTIVES[objective].uses_m() else 1
    return H.randn((R, M, K, B, 2), seed)


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("encoder", ["gaussian", "flow"])
def test_vmap_matches_loop(objective, encoder):
    dec, enc, x = _setup(encoder)
    eps = _eps(objective)
    gt_v, gp_v = replicate_gradients(dec, enc, objective, x, eps, **RUN_KW)
    gt_l, gp_l = replicate_gradients_loop(dec, enc, objective, x, eps, **RUN_KW)
    n_theta = sum(p.numel() for p in dec.parameters())
    n_phi = sum(p.numel() for p in enc.parameters())
    assert gt_v.shape == (4, n_theta) and gp_v.shape == (4, n_phi)
    torch.testing.assert_close(gt_v, gt_l, **TOL)
    torch.testing.assert_close(gp_v, gp_l, **TOL)
    # replicates differ (independent noise), so the probe is not comparing constants
    assert (gp_v[0] - gp_v[1]).abs().max() > 1e-8


@pytest.mark.parametrize("objective", ["iwae", "dreg", "rws", "piwae"])
@pytest.mark.parametrize("encoder", ["linear", "full-gaussian"])
def test_vmap_matches_loop_other_encoders_and_mlp_decoder(objective, encoder):
    dec, enc, x = _setup(encoder, problem="ring", decoder="mlp")
    eps = _eps(objective)
    gt_v, gp_v = replicate_gradients(dec, enc, objective, x, eps, **RUN_KW)
    gt_l, gp_l = replicate_gradients_loop(dec, enc, objective, x, eps, **RUN_KW)
    torch.testing.assert_close(gt_v, gt_l, **TOL)
    torch.testing.assert_close(gp_v, gp_l, **TOL)


@pytest.mark.parametrize("objective", ["vae", "dreg", "stl", "piwae", "rws"])
def test_replicates_are_per_group_autograd(objective):
    """Independent reference: replicate r is autograd.grad of θ's loss on θ and φ's loss on φ for ε[r]."""
    dec, enc, x = _setup("gaussian")
    eps = _eps(objective, R=3)
    gt, gp = replicate_gradients(dec, enc, objective, x, eps, **RUN_KW)
    theta, phi = list(dec.parameters()), list(enc.parameters())
    for r in range(3):
        losses = compute_losses(objective, draw(dec, enc, x, eps[r]), **RUN_KW)
        want_t = torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses.theta_loss, theta, retain_graph=True)])
        want_p = torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses.phi_loss, phi)])
        torch.testing.assert_close(gt[r], want_t, **TOL)
        torch.testing.assert_close(gp[r], want_p, **TOL)


def test_frozen_decoder_gives_no_theta_gradients():
    prob = make_problem("gaussian")
    dec = prob.decoder(learn=False).double()
    enc = H.linear_encoder(np.eye(2) * 0.4, np.zeros(2))
    x = prob.sample_data(2, H.gen(0)).double()
    eps = H.randn((5, 1, 4, 2, 2), 1)
    gt, gp = replicate_gradients(dec, enc, "dreg", x, eps)
    gt_l, gp_l = replicate_gradients_loop(dec, enc, "dreg", x, eps)
    assert gt.shape == (5, 0) and gt_l.shape == (5, 0)
    torch.testing.assert_close(gp, gp_l, **TOL)
    res = gradient_snr(dec, enc, "iwae", x, k=4, m=1, replicates=16, generator=H.gen(3))
    assert math.isnan(res.decoder_mean) and math.isnan(res.decoder_median)
    assert math.isfinite(res.encoder_mean) and res.encoder_mean > 0


def test_chunked_vmap_equals_unchunked():
    dec, enc, x = _setup("flow")
    eps = _eps("miwae", R=5)
    a = replicate_gradients(dec, enc, "miwae", x, eps)
    b = replicate_gradients(dec, enc, "miwae", x, eps, chunk_size=2)
    torch.testing.assert_close(a[0], b[0], **TOL)
    torch.testing.assert_close(a[1], b[1], **TOL)


# --------------------------------------------------------------------------- the summary
def _exact_columns(R, means, stds, seed=0):
    """[R, P] whose sample mean and sample std (ddof = 1) are exactly ``means`` and ``stds``."""
    g = torch.randn(R, len(means), generator=H.gen(seed), dtype=torch.float64)
    g = (g - g.mean(0)) / g.std(0, unbiased=True)
    return g * torch.tensor(stds, dtype=torch.float64) + torch.tensor(means, dtype=torch.float64)


def test_summarise_snr_known_values():
    means = [3.0, -1.0, 0.5, 0.0, 10.0]
    stds = [1.0, 2.0, 0.25, 1.0, 40.0]
    snr = np.abs(means) / np.array(stds)  # 3, 0.5, 2, 0, 0.25
    mean, median = summarise_snr(_exact_columns(50, means, stds))
    assert mean == pytest.approx(snr.mean(), rel=1e-9)
    assert median == pytest.approx(np.median(snr), rel=1e-9)


def test_summarise_snr_uses_ddof_1_and_float32_input():
    g = torch.tensor([[1.0], [3.0]])  # mean 2, std (ddof 1) √2  ->  SNR √2  (ddof 0 would give 2)
    mean, median = summarise_snr(g)
    assert mean == pytest.approx(math.sqrt(2.0), rel=1e-6) and median == pytest.approx(math.sqrt(2.0), rel=1e-6)


def test_summarise_snr_skips_zero_variance_parameters():
    g = _exact_columns(20, [1.0, 2.0, -3.0], [1.0, 4.0, 1.0])  # SNRs 1, 0.5, 3
    g = torch.cat([g, torch.full((20, 1), 7.0, dtype=torch.float64), torch.zeros(20, 1, dtype=torch.float64)], 1)
    mean, median = summarise_snr(g)
    assert mean == pytest.approx(1.5, rel=1e-9)  # (1 + 0.5 + 3) / 3: the constant columns are left out
    assert median == pytest.approx(1.0, rel=1e-9)
    all_const = torch.ones(10, 3)
    assert all(math.isnan(v) for v in summarise_snr(all_const))
    assert all(math.isnan(v) for v in summarise_snr(torch.zeros(10, 0)))


def test_summarise_snr_median_of_even_count():
    g = _exact_columns(30, [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0])  # SNRs 1, 2, 3, 4
    _, median = summarise_snr(g)
    assert median == pytest.approx(2.5, rel=1e-9)  # np.median([1, 2, 3, 4]); torch.median gives 2


def test_snr_floor():
    for R in (1, 4, 64, 1000, 12345):
        assert snr_floor(R) == pytest.approx(0.8 / math.sqrt(R), rel=1e-12)


def test_pure_noise_snr_is_near_the_floor():
    """Zero-mean replicates: the estimated SNR is |t|/√R with E|t| ≈ 0.8, i.e. about the floor."""
    R, P = 64, 4000
    g = torch.randn(R, P, generator=H.gen(4), dtype=torch.float64)
    mean, _ = summarise_snr(g)
    assert mean == pytest.approx(snr_floor(R), rel=0.05)


# --------------------------------------------------------------------------- the paper's scaling
@pytest.mark.slow
def test_snr_scaling_with_k():
    """Near the optimum of the gaussian problem: decoder SNR ∝ √K, DReG encoder SNR rises with K."""
    prob = make_problem("gaussian")
    data = prob.sample_data(1024, H.gen(0))
    dec = prob.decoder(learn=True)
    with torch.no_grad():
        dec.mu.copy_(data.mean(0) + 0.01 * torch.randn(2, generator=H.gen(1)))
    mu = dec.mu.detach().numpy()
    rng = np.random.default_rng(0)
    enc = H.linear_encoder(0.5 * np.eye(2) + 0.01 * rng.normal(size=(2, 2)), mu / 2 + 0.01 * rng.normal(size=2),
                           dtype=torch.float32)
    x = data[:1]
    res = {(o, k): gradient_snr(dec, enc, o, x, k, 1, 1000, H.gen(k)) for o in ("iwae", "dreg") for k in (10, 1000)}
    ratio = res["iwae", 1000].decoder_mean / res["iwae", 10].decoder_mean
    assert 5.0 < ratio < 20.0  # √100 = 10
    assert res["dreg", 1000].encoder_mean > 4.0 * res["dreg", 10].encoder_mean
    assert res["dreg", 1000].encoder_mean > 10 * res["iwae", 1000].encoder_mean
