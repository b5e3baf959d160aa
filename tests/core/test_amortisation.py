"""The per-x optimum q* and the gap split in two (core/amortisation.py), against references written here:
the gaussian problem's closed forms (design.md) and, on the bimodal problem, the ELBO of a diagonal
Gaussian q in closed form, maximised by scipy from many starts.

gaussian: z ~ N(μ, I), x|z ~ N(z, I), p(z|x) = N(c, ½I) with c = (x+μ)/2. For q = N(m, s²I) in d = 2:
KL(q‖p(z|x)) = (d/2)(2s² − 1 − ln 2s²) + ‖m − c‖². The linear encoder's family is N(m, (2/3)I): its best
member for any x has m = c, so the approximation gap is (2s² − 1 − ln 2s²) with s² = 2/3, and the
amortisation gap of an encoder with mean m(x) is ‖m(x) − c‖².
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from explorer.core import amortisation as A
from explorer.core.config import config_from_dict
from explorer.core.session import Session

MU = np.array([0.5, -0.5])  # the gaussian problem's default μ*
S2 = 2.0 / 3.0
APPROX_CLOSED = (2 * S2 - 1 - math.log(2 * S2))  # (d/2)(2s² − 1 − ln 2s²), d = 2: 0.0457
VIEW = {"grid": 48, "samples": 0, "snr_every": 0, "log_every": 1000}
XS_GAUSS = [[1.5, 0.0], [0.0, 0.0], [-3.0, 2.5], [9.0, -7.0]]  # the showcase x0, the origin, off to the side, far out


def _session(problem: dict, runs: list[dict], encoder: str = "gaussian", hidden=(16,), view=VIEW, **extra) -> Session:
    return Session(config_from_dict({"problem": problem, "train": {"encoder": encoder, "hidden": list(hidden)},
                                     "view": view, "runs": runs, "device": "cpu", **extra}))


def _linear_session(A_mat: np.ndarray, b: np.ndarray, runs=({"objective": "vae"},)) -> Session:
    session = _session({"name": "gaussian", "n_data": 32}, list(runs), encoder="linear")
    for run in session.runs:
        with torch.no_grad():
            run.encoder.A.copy_(torch.as_tensor(A_mat, dtype=torch.float32))
            run.encoder.b.copy_(torch.as_tensor(b, dtype=torch.float32))
    session._version += 1  # the weights changed outside a step
    return session


def _metrics(session: Session, x) -> dict:
    session.set_observation(x)
    return dict(session.snapshot().runs[0].metrics)


@pytest.mark.parametrize("x", XS_GAUSS)
def test_linear_encoder_at_its_optimum_has_no_amortisation_gap(x):
    session = _linear_session(np.eye(2) / 2, MU / 2)  # the analytic optimum: m(x) = (x + μ)/2
    m = _metrics(session, x)
    assert abs(m["amortisation_gap"]) <= m["amortisation_gap_err"] + 1e-5
    assert m["approximation_gap"] == pytest.approx(APPROX_CLOSED, abs=m["approximation_gap_err"] + 1e-5)
    assert m["kl_qp"] == pytest.approx(m["approximation_gap"] + m["amortisation_gap"], abs=1e-6)


@pytest.mark.parametrize("x", XS_GAUSS)
def test_an_encoder_off_its_optimum_has_the_closed_form_amortisation_gap(x):
    A_mat, b = np.array([[0.3, 0.1], [-0.2, 0.7]]), np.array([0.4, 0.1])
    session = _linear_session(A_mat, b)
    m = _metrics(session, x)
    mean = A_mat @ np.asarray(x, float) + b
    closed = float(np.sum((mean - (np.asarray(x, float) + MU) / 2) ** 2))  # ‖m(x) − c‖²
    assert m["amortisation_gap"] == pytest.approx(closed, abs=m["amortisation_gap_err"] + 1e-4 * (1 + closed))
    assert m["approximation_gap"] == pytest.approx(APPROX_CLOSED, abs=m["approximation_gap_err"] + 1e-5)


def test_the_k_split_of_the_linear_optimum_is_zero_within_its_error():
    """IWAE-16 on the gaussian problem: the L_16-optimal N(m, (2/3)I) is centred on c by symmetry."""
    session = _linear_session(np.eye(2) / 2, MU / 2, runs=({"objective": "iwae", "k": 16},))
    for x in XS_GAUSS[:3]:
        m = _metrics(session, x)
        assert abs(m["amortisation_gap_k"]) <= 3 * m["amortisation_gap_k_err"] + 1e-6, x
        assert 0 < m["approximation_gap_k"] < APPROX_CLOSED  # L_16 is tighter than the ELBO, below log p(x)
        assert abs(m["amortisation_gap"]) <= m["amortisation_gap_err"] + 1e-5  # the ELBO split as for the VAE


def test_a_gaussian_family_holds_the_gaussian_posterior():
    session = _session({"name": "gaussian", "n_data": 32}, [{"objective": "vae"}])
    for x in XS_GAUSS:
        m = _metrics(session, x)
        assert abs(m["approximation_gap"]) <= m["approximation_gap_err"] + 1e-4, x
        assert m["amortisation_gap"] >= -m["amortisation_gap_err"], x


# --------------------------------------------------------------------------- the bimodal problem
SIGMA = 0.5  # the bimodal problem's default σ
XS_BIMODAL = [[1.2, 0.5], [0.05, -0.3], [3.0, 1.5], [-1.0, 0.0], [12.0, -6.0]]


def _bimodal_elbo(params: np.ndarray, x: np.ndarray) -> float:
    """ELBO of q = N(m, diag s²) for z ~ N(0, I), x|z ~ N((z₁², z₂), σ²I), in closed form:
    E z₁² = m₁² + s₁², E z₁⁴ = m₁⁴ + 6m₁²s₁² + 3s₁⁴."""
    m1, m2, l1, l2 = params
    s1, s2 = math.exp(l1) ** 2, math.exp(l2) ** 2
    ez1_2, ez1_4 = m1 * m1 + s1, m1**4 + 6 * m1 * m1 * s1 + 3 * s1 * s1
    log_prior = -math.log(2 * math.pi) - 0.5 * (ez1_2 + m2 * m2 + s2)
    lik = (-math.log(2 * math.pi * SIGMA**2)
           - ((x[0] ** 2 - 2 * x[0] * ez1_2 + ez1_4) + ((x[1] - m2) ** 2 + s2)) / (2 * SIGMA**2))
    entropy = math.log(2 * math.pi * math.e) + l1 + l2
    return log_prior + lik + entropy


def _best_bimodal_elbo(x: np.ndarray) -> float:
    best = -math.inf
    for m1 in (-2.0, -0.5, 0.0, 0.5, 2.0, math.sqrt(max(x[0], 0.0))):
        for l1 in (-2.0, 0.0):
            res = scipy.optimize.minimize(lambda p: -_bimodal_elbo(p, x), [m1, x[1] / 2, l1, -1.0],
                                          method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12,
                                                                         "maxiter": 20_000})
            best = max(best, -float(res.fun))
    return best


@pytest.fixture(scope="module")
def bimodal():
    session = _session({"name": "bimodal", "n_data": 64}, [{"objective": "vae"}], hidden=(16, 16),
                       seed=3)
    session.step(150)
    return session


@pytest.mark.parametrize("x", XS_BIMODAL)
def test_q_star_is_the_best_gaussian_on_the_bimodal_posterior(bimodal, x):
    m = _metrics(bimodal, x)
    best = _best_bimodal_elbo(np.asarray(x, float))
    elbo_star = m["log_px"] - m["approximation_gap"]
    assert elbo_star >= best - 1e-4 - m["approximation_gap_err"]  # q* reaches the family's best ELBO
    assert elbo_star <= best + 1e-4 + m["approximation_gap_err"]  # (and no more: it is in the family)
    assert elbo_star >= m["elbo_exact"] - m["amortisation_gap_err"]  # at least the amortised q's ELBO
    assert m["approximation_gap"] >= -m["approximation_gap_err"]
    assert m["amortisation_gap"] >= -m["amortisation_gap_err"]
    assert m["kl_qp"] == pytest.approx(m["approximation_gap"] + m["amortisation_gap"], abs=1e-6)


def test_a_far_tail_x_has_certified_gaps(bimodal):
    m = _metrics(bimodal, [40.0, -25.0])
    for name in ("log_px", "approximation_gap", "amortisation_gap"):
        assert m[f"{name}_err"] <= max(1e-3, 1e-3 * abs(m[name])), name


# --------------------------------------------------------------------------- families, fits in the background
@pytest.mark.parametrize("encoder", ["linear", "gaussian", "full-gaussian", "flow"])
def test_a_family_at_its_start_is_the_amortised_q(encoder):
    session = _session({"name": "bimodal", "n_data": 16}, [{"objective": "vae"}], encoder=encoder)
    run = session.runs[0]
    with torch.no_grad():  # give the flow's couplings something to do
        for p in run.encoder.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    x = torch.tensor([[0.7, -0.4]])
    family = A.family_of(run.encoder)
    eps = torch.randn((5, 1, 2), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        psi = family.start(run.encoder, x)
        z, log_q = family.rsample(psi, eps)
        z_ref, log_q_ref = run.encoder.rsample(x, eps)
        torch.testing.assert_close(z, z_ref)
        torch.testing.assert_close(log_q, log_q_ref)
        torch.testing.assert_close(family.log_prob(psi, z_ref), run.encoder.log_prob(z_ref, x), rtol=1e-4, atol=1e-4)


def test_fits_wait_in_the_background_and_only_the_shown_x_is_fitted():
    session = _session({"name": "bimodal", "n_data": 32}, [{"objective": "vae"}, {"objective": "iwae", "k": 8}])
    session.background_inline = False
    session.set_observation([2.0, 0.3])
    first = session.snapshot()
    assert all("approximation_gap" not in r.metrics and r.q_star_log_q is None for r in first.runs)
    assert first.runs[0].q_star_note == "fitting q* …"
    session.set_observation([-0.5, 1.0])  # the fits for the first x are dropped
    session.snapshot()
    assert len(session._jobs) == 3  # run 0's ELBO q*, run 1's ELBO q* and its own (L_8) q*
    while session.background_pending():
        session.background_work(0.05)
    shown = session.snapshot()
    assert np.array_equal(shown.x_obs, np.float32([-0.5, 1.0])) and shown.observation is None
    assert all(r.q_star_log_q is not None and "amortisation_gap" in r.metrics for r in shown.runs)
    assert "amortisation_gap_k" in shown.runs[1].metrics and "amortisation_gap_k" not in shown.runs[0].metrics
    amortiser, x = session._amortiser, session.x_obs
    runs = session.runs
    assert all(amortiser.star(runs[i], kind, x) is not None for i, kind in ((0, A.ELBO), (1, A.ELBO), (1, A.OWN)))
    assert amortiser.star(runs[0], A.ELBO, torch.tensor([[2.0, 0.3]])) is None


def test_a_free_observation_is_recorded_in_the_summary_and_the_session_file():
    session = _session({"name": "bimodal", "n_data": 32}, [{"objective": "vae"}])
    session.set_observation(4)
    assert session.summary()["observation"] == 4
    session.set_observation([0.25, -1.5])
    summary = session.summary()
    assert summary["observation"] is None and summary["config"]["problem"]["x_obs"] == [0.25, -1.5]
    assert summary["runs"][0]["x_obs"] == pytest.approx([0.25, -1.5])
    assert {"approximation_gap", "amortisation_gap_err"} <= set(summary["runs"][0]["final"])
    reopened = Session.from_state(session.state_dict())
    assert reopened.observation is None and reopened.x_obs.tolist() == session.x_obs.tolist()
    session.set_observation(7)  # a data point again: the free point is dropped
    assert session.config.problem.x_obs is None and session.snapshot().observation == 7


def test_view_q_star_off_fits_nothing_and_on_again_fits_at_once():
    """view.q_star = false: no q* and no gaps in the snapshot and the metrics, null in summary.json, and no
    fit queued; turned on live, the next (inline) snapshot has them."""
    session = _session({"name": "bimodal"}, [{"objective": "vae"}], view={**VIEW, "q_star": False})
    session.step(3)
    view = session.snapshot().runs[0]
    assert view.q_star_log_q is None and "amortisation_gap" not in view.metrics and "log_px" in view.metrics
    assert not session.background_pending()
    final = session.summary()["runs"][0]["final"]
    assert final["approximation_gap"] is None and final["amortisation_gap"] is None  # the keys stay: null
    session.set_view("q_star", True)
    view = session.snapshot().runs[0]
    assert view.q_star_log_q is not None and view.metrics["amortisation_gap"] >= -view.metrics["amortisation_gap_err"]
    assert session.config.view.q_star


def test_with_the_decoder_frozen_q_star_is_fitted_again_at_doubling_steps():
    """θ frozen, a Gaussian encoder: q* is fitted at the start and again at steps 1000, 2000, 4000, 8000 …
    (to keep the fit beside q_φ once it has settled), so the fits' share of a long run's time goes to 0;
    a learning decoder's q* is fitted every REFIT_STEPS, a flow's every FLOW_REFIT_STEPS."""
    session = _session({"name": "bimodal", "n_data": 32}, [{"objective": "vae"}])
    run = session.runs[0]
    assert not run.theta and run.train.encoder == "gaussian"
    buckets = [A._refit_bucket(run, s) for s in (0, 999, 1000, 1999, 2000, 3000, 3999, 4000, 7999, 8000, 16000)]
    assert buckets == [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 5]
    learning = _session({"name": "bimodal", "n_data": 32, "learn_decoder": True}, [{"objective": "vae"}]).runs[0]
    assert learning.theta
    assert [A._refit_bucket(learning, s) for s in (0, 99, 100, 250)] == [0, 0, 1, 2]
    flow = _session({"name": "bimodal", "n_data": 32}, [{"objective": "vae"}], encoder="flow").runs[0]
    assert [A._refit_bucket(flow, s) for s in (0, 499, 500, 1200)] == [0, 0, 1, 2]


def test_fits_with_the_decoder_frozen_happen_only_at_the_refit_steps():
    session = _session({"name": "bimodal", "n_data": 32}, [{"objective": "vae"}], view={**VIEW, "log_every": 500})
    fitted = []
    store = session._amortiser._store
    session._amortiser._store = lambda slot, key, star: (fitted.append(star.step), store(slot, key, star))[1]
    session.step(3500)
    assert fitted == [0, 1000, 2000]  # not at 1500, 2500, 3000 or 3500: the next is at 4000
