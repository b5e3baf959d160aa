"""The five cases of issue 10's table, where the fixed grid showed wrong numbers with no warning: each now
shows the true value within the error it shows (slow: three of them train a preset).

| case | shown before | true |
| mode-seeking, observation 45 (x ≈ (10.96, 0.61)) | log p(x) −32.31 | −8.71 |
| funnel preset (s = 3), its own observation, seed 0 | log p(x) −4.51514, KL(p‖q) 1.053 | −4.51196, … |
| docs/presets.md, funnel (seed 3, the flow) | a KL of −0.001 | ≥ 0 |
| RWS K=64, mode-seeking, seed 17, step 1500 | KL(q‖p) 9.50 | 12.06 ± 0.08 (MC) |
| IWAE K=64, same run | KL(q‖p) 28.2 | ≈ 153 (MC) |

References are the closed forms and 1-D quadratures of test_exact.py (written there by hand).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.core.config import load_preset
from explorer.core.session import Session

import test_exact as R  # noqa: E402  (tests/core is on sys.path under pytest's default import mode)

pytestmark = pytest.mark.slow
LOW_VIEW = ["view.grid=100", "view.samples=0", "view.snr_every=0", "view.log_every=500", "view.q_star=false"]


def _trained(name: str, seed: int, steps: int | None = None) -> Session:
    session = Session(load_preset(name, [f"seed={seed}", *LOW_VIEW]), device="cpu")
    session.step(steps if steps is not None else session.config.steps)
    return session


def _q(session: Session, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviations of run i's diagonal Gaussian q for the shown observation."""
    x = session.data[session.observation : session.observation + 1]
    with torch.no_grad():
        mean, log_std = session.runs[i].encoder.mean_log_std(x)
    return mean[0].double().numpy(), np.exp(log_std[0].double().numpy())


def _holds(metrics, key: str, truth: float) -> None:
    value, err = metrics[key], metrics[f"{key}_err"]
    assert abs(value - truth) <= 3 * err + 1e-7 * (1 + abs(truth)), (key, value, err, truth)


def test_mode_seeking_observation_45():
    session = Session(load_preset("mode-seeking", LOW_VIEW), device="cpu")
    session.set_observation(45)
    x = session.data[45].double().numpy()
    assert x[0] > 10.9  # the right-most data point
    truth = R.ref_log_px("bimodal", x, {"sigma": 0.3})
    assert truth == pytest.approx(-8.7114, abs=1e-4)
    for view in session.snapshot().runs:
        _holds(view.metrics, "log_px", truth)
        assert view.approximate == ""


@pytest.mark.parametrize("seed", [0, 3])
def test_funnel_preset(seed):
    """Its own observation, after the preset's 2000 steps: log p(x) (1-D quadrature), both KLs of the
    Gaussian runs (KL(q‖p) in closed form, KL(p‖q) by quadrature in z₁ of closed forms in z₂), and every
    KL ≥ 0 (the flow's, −0.001 in the old docs, is ≈ 0.005)."""
    session = _trained("funnel", seed)
    x = session.data[0].double().numpy()
    opts = {"s": 3.0}
    log_px = R.ref_log_px("funnel", x, opts)
    assert log_px == pytest.approx(-4.51196, abs=1e-5)
    for i, view in enumerate(session.snapshot().runs):
        m = view.metrics
        _holds(m, "log_px", log_px)
        assert m["kl_qp"] >= 0 and m["kl_pq"] >= 0 and view.approximate == ""
        if session.runs[i].train.encoder != "gaussian":
            continue
        mean, sd = _q(session, i)
        _holds(m, "kl_qp", R.kl_gauss_closed("funnel", x, mean, sd, log_px, opts))
        _holds(m, "kl_pq", _funnel_kl_pq(x, 3.0, mean, sd, log_px))


def _funnel_kl_pq(x, s, mean, sd, log_px) -> float:
    """KL(p‖q) for a diagonal Gaussian q: for fixed z₁, p(z₂|z₁, x) = N(m, v) with 1/v = e^{−z₁} + 1/s², so
    the z₂ integrals are closed forms; z₁ by adaptive quadrature."""
    from scipy import integrate

    def inner(z1: float) -> float:
        v = 1.0 / (math.exp(-z1) + 1.0 / (s * s))
        m = v * x[1] / (s * s)
        log_p1 = float(R.ln_n(z1, 0, 3) + R.ln_n(x[0], z1, s) + R.ln_n(x[1], 0, math.sqrt(math.exp(z1) + s * s))) - log_px
        e_log_post = log_p1 - 0.5 * math.log(2 * math.pi * math.e * v)
        e_log_q = float(R.ln_n(z1, mean[0], sd[0])) - 0.5 * (v + (m - mean[1]) ** 2) / sd[1] ** 2 \
            - math.log(sd[1]) - 0.5 * math.log(2 * math.pi)
        return math.exp(log_p1) * (e_log_post - e_log_q)

    return integrate.quad(inner, -60, 40, epsabs=1e-12, epsrel=1e-11, limit=2000, points=[-20, -10, -5, 0, 5])[0]


def test_mode_seeking_seed_17_broad_proposals():
    """RWS-64 (q's mass 0.996 in the old box) and IWAE-64 after 1500 steps: KL(q‖p) in closed form (log p(x, z)
    is a polynomial of degree 4 in z); the MC estimates of the issue were 12.06 ± 0.08 and ≈ 153. How broad
    IWAE's q ends depends on the machine's rounding (the same code gave ≈ 153 on the first machine, 34 on an
    AMD EPYC), so beyond the closed forms only what holds on both is asserted: both proposals are broad
    (KL(q‖p) of several nats) and IWAE's is the broader."""
    session = _trained("mode-seeking", 17)
    x = session.data[0].double().numpy()
    opts = {"sigma": 0.3}
    log_px = R.ref_log_px("bimodal", x, opts)
    views = session.snapshot().runs
    for i, view in enumerate(views):
        mean, sd = _q(session, i)
        _holds(view.metrics, "kl_qp", R.kl_gauss_closed("bimodal", x, mean, sd, log_px, opts))
    iwae, rws = views[1].metrics["kl_qp"], views[2].metrics["kl_qp"]
    assert 5 < rws < iwae
