"""Encoders: log q is a normalised density, equals the log-density of what rsample draws, and matches
the textbook formula (Gaussians) or the change-of-variables formula with a numerical Jacobian (flow)."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from explorer.core.errors import ConfigError
from explorer.core.grid import make_grid
from explorer.core.models import FlowEncoder, FullGaussianEncoder, GaussianEncoder, make_encoder


import helpers as H  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)
KINDS = ["linear", "gaussian", "full-gaussian", "flow"]


def _flow(x_dim=2, z_dim=2, seed=0, scale=0.5, n_layers=6) -> FlowEncoder:
    """A flow whose zero-initialised coupling outputs are perturbed, so it is not just a Gaussian."""
    torch.manual_seed(seed)
    enc = FlowEncoder(x_dim, z_dim, [16, 16], n_layers=n_layers)
    with torch.no_grad():
        for net in enc.couplings:
            net[-1].weight.normal_(0.0, scale)
            net[-1].bias.normal_(0.0, 0.2)
    return enc.double()


def _encoder(kind: str, x_dim=2, z_dim=2, seed=0):
    if kind == "flow":
        return _flow(x_dim, z_dim, seed)
    torch.manual_seed(seed)
    enc = make_encoder(kind, x_dim, z_dim, [16]).double()
    if kind == "full-gaussian":  # a clearly correlated Cholesky factor
        with torch.no_grad():
            enc.net[-1].bias[2 * z_dim :] += 0.8
    return enc


def _box_from_samples(enc, x, seed=0, n=20000, margin=1.5):
    eps = H.randn((1, n, 1, 2), seed)
    with torch.no_grad():
        z, _ = enc.rsample(x, eps)
    z = z.reshape(-1, 2).numpy()
    lo, hi = z.min(0), z.max(0)
    span = hi - lo
    return (lo[0] - margin * 0.25 * span[0], hi[0] + margin * 0.25 * span[0],
            lo[1] - margin * 0.25 * span[1], hi[1] + margin * 0.25 * span[1])


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("seed", [0, 1])
def test_flow_log_q_integrates_to_one(seed):
    enc = _flow(seed=seed)
    x = torch.tensor([[0.3, -0.8]], dtype=torch.float64)
    grid = make_grid(_box_from_samples(enc, x, seed), 200, dtype=torch.float64)
    log_q = H.grid_log_q(enc, x, grid)
    assert np.all(np.isfinite(log_q))
    assert H.grid_mass(log_q, grid) == pytest.approx(1.0, abs=1e-2)
    # the flow is not the base Gaussian: its log q differs from the zero-coupling one by a lot somewhere
    base = _flow(seed=seed)
    with torch.no_grad():
        for net in base.couplings:
            net[-1].weight.zero_()
            net[-1].bias.zero_()
    diff = np.abs(log_q - H.grid_log_q(base, x, grid))
    inner = log_q > log_q.max() - 5.0
    assert diff[inner].max() > 0.5


def test_flow_log_q_is_wrong_without_its_log_det():
    """Power of the integration test: the same flow's density without Σ s is far from normalised."""
    enc = _flow(seed=0)
    x = torch.tensor([[0.3, -0.8]], dtype=torch.float64)
    grid = make_grid(_box_from_samples(enc, x, 0), 200, dtype=torch.float64)
    h, mean, log_std = enc._context(x)
    y = (grid.points[:, None, :] - mean) * torch.exp(-log_std)
    with torch.no_grad():
        for i in reversed(range(len(enc.couplings))):
            a, b = enc._halves(i)
            s, t = enc._shift_scale(i, y[..., a], h)
            y_b = (y[..., b] - t) * torch.exp(-s)
            y = torch.cat([y[..., a], y_b], -1) if i % 2 == 0 else torch.cat([y_b, y[..., a]], -1)
        no_det = (-0.5 * (y**2).sum(-1) - math.log(2 * math.pi) - log_std.sum(-1)).reshape(200, 200).numpy()
    assert abs(H.grid_mass(no_det, grid) - 1.0) > 0.05


@pytest.mark.parametrize("kind", ["gaussian", "full-gaussian"])
def test_gaussian_encoders_integrate_to_one(kind):
    enc = _encoder(kind, seed=3)
    x = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    grid = make_grid(_box_from_samples(enc, x, 3, margin=3.0), 300, dtype=torch.float64)
    assert H.grid_mass(H.grid_log_q(enc, x, grid), grid) == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------- rsample vs log_prob
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", [(2, 2), (1, 2), (3, 4)], ids=["x2z2", "x1z2", "x3z4"])
def test_rsample_log_q_equals_log_prob(kind, dims):
    x_dim, z_dim = dims
    enc = _encoder(kind, x_dim, z_dim, seed=7)
    x = H.randn((5, x_dim), 8)
    eps = H.randn((3, 4, 5, z_dim), 9)
    z, log_q = enc.rsample(x, eps)
    assert z.shape == (3, 4, 5, z_dim) and log_q.shape == (3, 4, 5)
    torch.testing.assert_close(enc.log_prob(z, x), log_q, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(enc(z, x), log_q, rtol=1e-9, atol=1e-9)  # forward is log_prob
    # and z really moves with ε (not a constant map)
    assert z.std() > 1e-3


@pytest.mark.parametrize("kind", ["full-gaussian", "flow"])
def test_log_q_is_change_of_variables(kind):
    """log q(z) = log N(ε) − log|det ∂z/∂ε|, with the Jacobian from autograd, per sample."""
    for z_dim in (2, 3):
        enc = _encoder(kind, 2, z_dim, seed=11)
        x = H.randn((1, 2), 12)
        for j in range(3):
            e = H.randn((z_dim,), 20 + j)

            def T(v):
                return enc.rsample(x, v.reshape(1, 1, 1, z_dim))[0].reshape(z_dim)

            jac = torch.autograd.functional.jacobian(T, e)
            _, logdet = torch.linalg.slogdet(jac)
            want = -0.5 * (e**2).sum() - 0.5 * z_dim * math.log(2 * math.pi) - logdet
            _, log_q = enc.rsample(x, e.reshape(1, 1, 1, z_dim))
            torch.testing.assert_close(log_q.reshape(()), want.detach(), rtol=1e-9, atol=1e-9)


def test_full_gaussian_matches_multivariate_normal():
    enc = _encoder("full-gaussian", 2, 3, seed=5)
    x = H.randn((4, 2), 6)
    mean, chol, _ = enc.mean_chol(x)
    assert torch.all(torch.triu(chol, diagonal=1) == 0) and torch.all(torch.diagonal(chol, dim1=-2, dim2=-1) > 0)
    assert torch.tril(chol, diagonal=-1).abs().max() > 0.1  # really correlated
    ref = torch.distributions.MultivariateNormal(mean, scale_tril=chol)
    z = H.randn((6, 4, 3), 7) * 2.0
    torch.testing.assert_close(enc.log_prob(z, x), ref.log_prob(z), rtol=1e-9, atol=1e-9)
    # rsample draws from it: sample covariance ≈ L Lᵀ
    eps = H.randn((20000, 4, 3), 8)
    with torch.no_grad():
        zs, _ = enc.rsample(x, eps)
    cov = torch.einsum("nbi,nbj->bij", zs - mean, zs - mean) / 20000
    torch.testing.assert_close(cov, (chol @ chol.transpose(-1, -2)).detach(), rtol=0.0, atol=0.08)


def test_gaussian_encoder_matches_diagonal_normal():
    enc = _encoder("gaussian", 2, 2, seed=2)
    x = H.randn((4, 2), 3)
    mean, log_std = enc.mean_log_std(x)
    ref = torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)
    z = H.randn((5, 4, 2), 4)
    torch.testing.assert_close(enc.log_prob(z, x), ref.log_prob(z), rtol=1e-9, atol=1e-9)


def test_flow_at_init_is_its_base_gaussian():
    """Zero-initialised couplings: the flow starts as N(μ(x), diag σ(x)²)."""
    torch.manual_seed(0)
    enc = FlowEncoder(2, 2, [16]).double()
    x = H.randn((3, 2), 1)
    _, mean, log_std = enc._context(x)
    ref = torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)
    z = H.randn((4, 3, 2), 2)
    torch.testing.assert_close(enc.log_prob(z, x), ref.log_prob(z), rtol=1e-9, atol=1e-9)


def test_make_encoder_names_and_errors():
    for kind, cls in [("gaussian", GaussianEncoder), ("full-gaussian", FullGaussianEncoder), ("flow", FlowEncoder)]:
        assert isinstance(make_encoder(kind, 2, 2, [8]), cls)
    with pytest.raises(ConfigError, match="nope"):
        make_encoder("nope", 2, 2, [8])
    with pytest.raises(ConfigError):
        make_encoder("flow", 2, 1, [8])
