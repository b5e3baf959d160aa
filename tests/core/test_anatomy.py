"""The anatomy of the encoder's gradient (core/anatomy.py) and the probe's kept replicates (issue 14).

- Each particle's share, summed, is the estimator's gradient w.r.t. q's location, computed by autograd on
  the objective through the encoder's own parameters (the output bias of that location), for every
  objective and every encoder (the flow: its shift μ(x)).
- On the gaussian problem the shares are the closed forms written out here: ŵ_k ∇log p(x, z_k), DReG's
  w̃² and STL's w̃ times ∇log p − ∇log q, RWS's w̃ times the score (z − m)/σ².
- At the exact posterior DReG's and STL's arrows are all zero (IWAE's are not).
- The kept replicates of the chosen parameter, and their mean and sd, are those of the Python-loop
  reference gradients on the same noise.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.core.anatomy import WRT_FLOW, WRT_MEAN, gradient_anatomy
from explorer.core.config import config_from_dict
from explorer.core.diagnostics import (
    choose_parameters,
    default_encoder_parameter,
    gradient_snr,
    parameter_index,
    replicate_gradients_loop,
)
from explorer.core.errors import ConfigError
from explorer.core.models import make_encoder
from explorer.core.objectives import OBJECTIVES, compute_losses, draw
from explorer.core.problems import make_problem
from explorer.core.session import Session

import helpers as H  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)

ENCODERS = ("linear", "gaussian", "full-gaussian", "flow")
RUN_KW = dict(beta=0.3, alpha=0.4)


def _location_bias(encoder) -> torch.Tensor:
    """The parameter whose first d entries add to q's location (the flow: to its shift μ(x))."""
    return {"LinearEncoder": lambda e: e.b, "FlowEncoder": lambda e: e.base.bias}.get(
        type(encoder).__name__, lambda e: e.net[-1].bias)(encoder)


def _setup(encoder: str, problem: str = "bimodal"):
    torch.manual_seed(0)
    prob = make_problem(problem)
    dec = prob.decoder(kind="param", learn=True, hidden=[8]).double()
    enc = make_encoder(encoder, prob.x_dim, 2, [8]).double()
    if encoder == "flow":  # the couplings start at zero (a Gaussian): make the flow a flow
        with torch.no_grad():
            for net in enc.couplings:
                net[-1].weight.normal_(0.0, 0.3)
    return dec, enc, prob


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("batch", [1, 3])
def test_shares_sum_to_the_estimators_gradient(objective, encoder, batch):
    dec, enc, prob = _setup(encoder)
    x = prob.sample_data(batch, H.gen(1)).double()
    m = 3 if OBJECTIVES[objective].uses_m() else 1
    eps = H.randn((m, 5, batch, 2), seed=4)
    anatomy = gradient_anatomy(dec, enc, objective, x, eps, **RUN_KW)
    assert anatomy.shares.shape == (m, 5, batch, 2) and anatomy.total.shape == (batch, 2)
    # the reference: autograd of the objective φ ascends (−φ-loss, a mean over the batch) w.r.t. the bias
    # that adds to every x's location
    losses = compute_losses(objective, draw(dec, enc, x, eps), **RUN_KW)
    bias = _location_bias(enc)
    (grad,) = torch.autograd.grad(losses.phi_loss, bias)
    torch.testing.assert_close(anatomy.total.sum(0) / batch, -grad[:2], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(anatomy.shares.sum(dim=(0, 1)), anatomy.total)
    assert anatomy.wrt == (WRT_FLOW if encoder == "flow" else WRT_MEAN)
    # the particles are the draw's
    torch.testing.assert_close(anatomy.z, draw(dec, enc, x, eps).z.detach())


def _gaussian_case(var: float = 2.0 / 3.0, at_posterior: bool = False, k: int = 6, m: int = 1):
    """Gaussian problem (z ~ N(μ, I), x|z ~ N(z, I)) with a linear encoder N(Ax + b, var·I)."""
    mu = np.array([0.5, -0.5])
    prob = H.gaussian_problem(2, mu.tolist())
    dec = prob.decoder(kind="param", learn=True).double()
    with torch.no_grad():
        dec.mu.copy_(torch.as_tensor(mu))  # θ = μ (a learnable decoder starts elsewhere)
    if at_posterior:  # p(z|x) = N((x + μ)/2, ½ I)
        enc = H.linear_encoder(0.5 * np.eye(2), 0.5 * mu, var=0.5)
    else:
        enc = H.linear_encoder([[0.4, 0.1], [-0.2, 0.7]], [0.3, -0.1], var=var)
    x = torch.tensor([[1.3, -0.4]], dtype=torch.float64)
    eps = H.randn((m, k, 1, 2), seed=7)
    return prob, dec, enc, x, eps, mu


@pytest.mark.parametrize("objective", ["vae", "iwae", "miwae", "dreg", "stl", "rws"])
def test_shares_are_the_closed_forms_on_the_gaussian_problem(objective):
    _, dec, enc, x, eps, mu = _gaussian_case(m=2 if objective == "miwae" else 1)
    var = 2.0 / 3.0
    a = gradient_anatomy(dec, enc, objective, x, eps)
    xn, en = x.numpy()[0], eps.numpy()[:, :, 0]  # [M, K, 2]
    mean = enc.A.detach().numpy() @ xn + enc.b.detach().numpy()
    z = mean + math.sqrt(var) * en
    log_w = (-0.5 * ((z - mu) ** 2).sum(-1) - 0.5 * ((xn - z) ** 2).sum(-1)) - (-0.5 * (en**2).sum(-1) - math.log(var))
    w = np.exp(log_w - log_w.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)  # softmax over K
    grad_log_p = (xn - z) - (z - mu)  # ∇_z log p(x, z)
    grad_log_q = -(z - mean) / var  # ∇_z log q(z|x)
    m, k = en.shape[:2]
    expected = {
        "vae": grad_log_p / k,
        "iwae": w[..., None] * grad_log_p,
        "miwae": w[..., None] * grad_log_p / m,
        "dreg": w[..., None] ** 2 * (grad_log_p - grad_log_q),
        "stl": w[..., None] * (grad_log_p - grad_log_q),
        "rws": w[..., None] * (z - mean) / var,  # the score of q's mean, z held
    }[objective]
    np.testing.assert_allclose(a.shares[:, :, 0].numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.weights[:, :, 0].numpy(), w, rtol=1e-9)


def test_dreg_and_stl_arrows_vanish_at_the_exact_posterior():
    """At q = p(z|x), log w = log p(x) for every z: its path derivative is zero for every particle. The
    total derivative (IWAE's) is ∇log p(x, z) ≠ 0 per particle: the test can tell the two apart."""
    _, dec, enc, x, eps, _ = _gaussian_case(at_posterior=True, k=16)
    for objective in ("dreg", "stl"):
        shares = gradient_anatomy(dec, enc, objective, x, eps).shares
        assert shares.abs().max() < 1e-12, objective
    assert gradient_anatomy(dec, enc, "iwae", x, eps).shares.abs().max() > 0.1


def test_session_arrows_vanish_at_the_exact_posterior_on_the_gaussian_problem():
    """Through the Session and its snapshot: a Gaussian MLP encoder set to q = p(z|x_obs) for the shown x."""
    cfg = config_from_dict({
        "device": "cpu", "problem": {"name": "gaussian", "n_data": 8, "learn_decoder": False},
        "train": {"encoder": "gaussian", "hidden": [8]},
        "view": {"grid": 32, "samples": 0, "snr_every": 0},
        "runs": [{"objective": "dreg", "k": 16}, {"objective": "stl", "k": 16}, {"objective": "iwae", "k": 16}]})
    session = Session(cfg)
    x_obs = session.data[session.observation]
    mu = session.runs[0].decoder.mu.detach()
    for run in session.runs:
        last = run.encoder.net[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.cat([(x_obs + mu) / 2, torch.full((2,), 0.5 * math.log(0.5))]))
    session.set_view("arrows", True)  # a live edit: the next snapshot is new, with arrows
    dreg, stl, iwae = session.snapshot().runs
    assert dreg.arrows.shape == (16, 2) and dreg.arrows_wrt == WRT_MEAN
    assert dreg.metrics["kl_qp"] < 1e-3  # q is the posterior
    for view in (dreg, stl):
        assert np.abs(view.arrows).max() < 1e-4 and np.abs(view.arrow_sum).max() < 1e-4
    assert np.abs(iwae.arrows).max() > 0.01
    np.testing.assert_allclose(iwae.arrows.sum(0), iwae.arrow_sum, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the probe's kept replicates
@pytest.mark.parametrize(("objective", "encoder"), [("iwae", "gaussian"), ("dreg", "flow"), ("miwae", "linear")])
def test_kept_replicates_and_their_moments_are_the_reference_gradients(objective, encoder):
    dec, enc, prob = _setup(encoder)
    x = prob.sample_data(3, H.gen(1)).double()
    chosen = choose_parameters(dec, enc, "", "")
    m = 2 if OBJECTIVES[objective].uses_m() else 1
    replicates, k = 12, 4
    res = gradient_snr(dec, enc, objective, x, k, m, replicates, H.gen(9), **RUN_KW, keep_parameters=chosen)
    chunked = gradient_snr(dec, enc, objective, x, k, m, replicates, H.gen(9), **RUN_KW, keep_parameters=chosen,
                           max_particles=1, keep=5)  # one replicate per chunk, only five values kept
    # the reference: the Python-loop gradients on the same noise, which the probe draws in one piece
    eps = torch.randn((replicates, m, k, 3, 2), generator=H.gen(9), dtype=x.dtype)
    g_theta, g_phi = replicate_gradients_loop(dec, enc, objective, x, eps, **RUN_KW)
    for part, grads in (("encoder", g_phi), ("decoder", g_theta)):
        index, name = chosen[part]
        column = grads[:, index].numpy()
        kept = getattr(res, f"{part}_parameter")
        assert kept.name == name
        np.testing.assert_allclose(kept.values, column, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose([kept.mean, kept.sd], [column.mean(), column.std(ddof=1)], rtol=1e-9)
        assert kept.snr == pytest.approx(abs(column.mean()) / column.std(ddof=1), rel=1e-9)
        few = getattr(chunked, f"{part}_parameter")
        assert chunked.chunk == 1 and len(few.values) == 5
        np.testing.assert_allclose(few.values, column[:5], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose([few.mean, few.sd], [kept.mean, kept.sd], rtol=1e-9)  # over all R
    assert chosen["encoder"][1] == default_encoder_parameter(enc)


def test_the_default_encoder_parameter_is_the_bias_of_q_location_in_z1():
    """Its probe gradient is the sum over the batch of the gradient w.r.t. the location's first coordinate."""
    for encoder in ENCODERS:
        dec, enc, prob = _setup(encoder)
        index, name = parameter_index(enc, default_encoder_parameter(enc), False, "view.gradients_encoder")
        flat = torch.cat([p.detach().reshape(-1) for p in enc.parameters()])
        assert flat[index] == _location_bias(enc)[0], (encoder, name)


def test_parameter_names_are_checked_and_name_the_key():
    dec, enc, _ = _setup("gaussian")
    assert parameter_index(enc, "net.0.weight[5]", False, "k") == (5, "net.0.weight[5]")
    assert parameter_index(enc, "net.0.bias", False, "k")[1] == "net.0.bias[0]"
    for bad, needle in (("nope[0]", "no parameter named 'nope'"), ("net.0.bias[999]", "index 999"),
                        ("net.0.bias[-1]", "expected NAME")):
        with pytest.raises(ConfigError, match="view.gradients_encoder") as info:
            choose_parameters(dec, enc, bad, "")
        assert needle in str(info.value)
    frozen = make_problem("bimodal").decoder(kind="param", learn=False, hidden=[8])
    assert "decoder" not in choose_parameters(frozen, enc, "", "")


def _tiny(**view) -> Session:
    return Session(config_from_dict({
        "seed": 3, "device": "cpu", "problem": {"name": "gaussian", "n_data": 32, "learn_decoder": True},
        "train": {"batch_size": 8, "encoder": "linear"},
        "view": {"grid": 16, "samples": 0, "snr_every": 2, "snr_replicates": 16, **view},
        "runs": [{"objective": "iwae", "k": 4}]}))


def test_the_snapshot_carries_the_probe_replicates_as_objective_gradients():
    session = _tiny()
    session.step(2)
    view = session.snapshot().runs[0]
    enc, dec = view.gradients
    assert (enc.group, enc.parameter, dec.group, dec.parameter) == ("encoder", "b[0]", "decoder", "mu[0]")
    assert enc.step == 2 and enc.replicates == 16 and enc.values.shape == (16,) and not enc.values.flags.writeable
    # ascent direction: the negated loss gradients, whose sd is the same; |mean|/sd reaches the metrics
    np.testing.assert_allclose([enc.mean, enc.sd], [enc.values.mean(), enc.values.std(ddof=1)], rtol=1e-5)
    assert view.metrics["snr_encoder_param"] == pytest.approx(abs(enc.mean) / enc.sd)
    assert view.metrics["snr_decoder_param"] == pytest.approx(abs(dec.mean) / dec.sd)
    assert view.arrows is None  # view.arrows is off


def test_view_keys_change_live_and_bad_parameter_names_are_refused():
    session = _tiny()
    before = session.config
    with pytest.raises(ConfigError, match="view.gradients_encoder"):
        session.apply("set_view", key="gradients_encoder", value="A[99]")
    assert session.config == before
    with pytest.raises(ConfigError, match="cannot be changed live"):
        session.apply("set_view", key="grid", value=32)
    session.apply("set_view", key="gradients_encoder", value="A[3]")
    session.apply("set_view", key="arrows", value=True)
    session.step(2)
    snap = session.snapshot()
    assert snap.show_arrows and not snap.show_gradients
    assert snap.runs[0].gradients[0].parameter == "A[3]" and snap.runs[0].arrows.shape == (4, 2)


def test_shares_use_the_weights_the_view_shows():
    """The arrows belong to the posterior panel's particles: same z, same w̃."""
    session = _tiny(arrows=True)
    view = session.snapshot().runs[0]
    run = session.runs[0]
    x_obs = session.data[session.observation:session.observation + 1]
    mean = (x_obs @ run.encoder.A.T + run.encoder.b).detach()
    eps = (torch.as_tensor(view.particles) - mean) / math.sqrt(2.0 / 3.0)  # z = Ax + b + σε
    a = gradient_anatomy(run.decoder, run.encoder, "iwae", x_obs, eps[None, :, None, :])
    np.testing.assert_allclose(a.shares[0, :, 0].numpy(), view.arrows, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.weights[0, :, 0].numpy(), view.weights, rtol=1e-4)
