"""The views around the exact numbers (core/views.py): the view that follows the mass calmly, mode
coverage on the same region, any x (not only data points), and the numbers' errors reaching the
snapshot, summary.json and metrics.csv."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from explorer.core import exact
from explorer.core.cubature import pad
from explorer.core.config import config_from_dict
from explorer.core.models import LinearEncoder
from explorer.core.problems import make_problem
from explorer.core.session import Session
from explorer.core.snapshot import METRICS
from explorer.core.views import Viewer

ERR_KEYS = ("log_px_err", "kl_qp_err", "kl_pq_err", "elbo_exact_err")


def _contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1] and outer[2] <= inner[2] and inner[3] <= outer[3]


# --------------------------------------------------------------------------- through the Viewer
def _fake_run(problem, encoder, theta=()):
    return SimpleNamespace(
        index=0, theta=list(theta), decoder=problem.decoder(), encoder=encoder, m=1,
        cfg=SimpleNamespace(k=8, name="q", objective="vae", beta=1.0, alpha=0.0),
        train=SimpleNamespace(encoder="linear", lr=1e-3), snr={}, heldout={}, diverged_step=None, diverged_reason="",
        last_view=None)


def _linear_q(x_dim: int, mean) -> LinearEncoder:
    """q = N(mean, ⅔ I) whatever x is (A = 0)."""
    enc = LinearEncoder(x_dim, 2)
    with torch.no_grad():
        enc.A.zero_()
        enc.b.copy_(torch.tensor(mean))
    return enc


def _view(name, opts, x, mean):
    problem = make_problem(name, opts)
    viewer = Viewer(problem, 96, 0, torch.device("cpu"), "param")
    run = _fake_run(problem, _linear_q(problem.x_dim, mean))
    return viewer.run_view(run, torch.tensor([x]), torch.Generator().manual_seed(0)), viewer, run


def test_mode_coverage_matches_the_closed_form():
    """Bimodal, σ = 0.3, x = (1.2, 0.5): two mirror modes of mass ½ whose basins meet at z₁ = 0. A q =
    N((1.1, 0.5), ⅔I) puts Φ(1.1/√⅔) of its mass in the right-hand basin and the rest in the left, up to
    the q grid's resolution: the cells that straddle z₁ = 0 go whole to one side (at most one cell width
    times q's marginal density there)."""
    view, _, _ = _view("bimodal", {"sigma": 0.3}, [1.2, 0.5], [1.1, 0.5])
    sd = math.sqrt(2 / 3)
    right = 0.5 * (1 + math.erf(1.1 / sd / math.sqrt(2)))
    cell = (view.q_box[1] - view.q_box[0]) / view.log_q.shape[0]
    slack = cell * math.exp(-0.5 * (1.1 / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    modes = sorted(view.modes, key=lambda md: md.center[0])
    assert [md.p_mass for md in modes] == pytest.approx([0.5, 0.5], abs=2e-3)
    assert [md.q_mass for md in modes] == pytest.approx([1 - right, right], abs=slack)
    assert sum(md.q_mass for md in modes) == pytest.approx(1.0, abs=1e-3)  # q beyond the box counts too
    assert view.metrics["n_modes"] == 2 and view.metrics["modes_covered"] == 2


def test_any_x_not_only_data_points():
    """The right-most data point of the mode-seeking scene (observation 45, x ≈ (10.96, 0.61)), given as
    a vector: its posterior lies outside the problem's box (±3), and the region goes there."""
    x = [10.95789051, 0.60524827]
    view, _, _ = _view("bimodal", {"sigma": 0.3}, x, [0.0, 0.0])
    assert view.metrics["log_px"] == pytest.approx(-8.7113889039, abs=1e-5)  # 1-D quadrature, test_exact.py
    assert view.post_box[1] > 3.2 and view.post_box[0] < -3.2  # modes at ±√10.96 ≈ ±3.31
    assert _contains(view.view_box, (-3.2, 3.2, 0.5, 0.7))
    assert view.approximate == "" and all(view.metrics[k] < 1e-3 for k in ERR_KEYS)


def test_the_view_holds_p_and_q():
    """view_box holds the posterior's core and q's [−3, 3]² image; q's grid holds its samples."""
    view, _, _ = _view("bimodal", {"sigma": 0.3}, [1.2, 0.5], [2.5, -1.0])
    assert _contains(view.view_box, (-1.4, 1.4, 0.0, 1.0))  # both modes
    q_core = (2.5 - 3 * math.sqrt(2 / 3), 2.5 + 3 * math.sqrt(2 / 3), -1.0 - 3 * math.sqrt(2 / 3), -1.0 + 3 * math.sqrt(2 / 3))
    assert _contains(view.view_box, pad(q_core, -1e-6))
    assert _contains(view.q_box, pad(q_core, -1e-6))


def test_frozen_posterior_is_computed_once_per_observation():
    view_a, viewer, run = _view("bimodal", {"sigma": 0.3}, [1.2, 0.5], [1.0, 0.5])
    view_b = viewer.run_view(run, torch.tensor([[1.2, 0.5]]), torch.Generator().manual_seed(1))
    assert view_b.log_post is view_a.log_post  # the same read-only array: the GUI skips redrawing it
    view_c = viewer.run_view(run, torch.tensor([[2.0, 0.5]]), torch.Generator().manual_seed(1))
    assert view_c.log_post is not view_a.log_post


# --------------------------------------------------------------------------- into the outputs
def test_errors_reach_the_snapshot_summary_and_metric_rows():
    cfg = config_from_dict({
        "problem": {"name": "bimodal", "n_data": 64}, "train": {"hidden": [8]},
        "view": {"grid": 32, "samples": 0, "snr_every": 0, "log_every": 5},
        "runs": [{"objective": "vae"}, {"objective": "iwae", "k": 8}],
    })
    s = Session(cfg, device="cpu")
    s.step(10)
    assert set(ERR_KEYS) <= set(METRICS)
    for view in s.snapshot().runs:
        for key in ERR_KEYS:
            assert 0 <= view.metrics[key] < 1e-3
    for run in s.summary()["runs"]:
        assert all(run["final"][k] is not None for k in ERR_KEYS) and run["final"]["approximate"] == ""
    rows = s.metric_rows()
    assert rows and all(row[k] is not None for row in rows for k in ERR_KEYS)


def test_kl_qp_left_outside_its_tolerance_by_the_adaptive_budget_is_refined(monkeypatch):
    """When the adaptive rule runs out of nodes short of KL(q‖p)'s tolerance (an RWS flow on the mixture:
    0.8187 ± 0.0023 with 16 000 nodes, 0.81847 ± 7e-6 with 64 000), the view integrates once more with
    EPS_REFINE_NODES. A broad q on the ring sends q_side to the adaptive rule; a first budget of 60 nodes
    leaves KL(q‖p) approximate; the refined one is exact and agrees with the default budget's."""
    opts, x, mean = {"sigma": 0.15}, [1.5], [0.1, -0.2]
    reference, _, _ = _view("ring", opts, x, mean)
    assert reference.approximate == ""
    budgets = []
    real = exact._q_side_adaptive

    def small_first_budget(q_map, rng, goal, rounding, c=exact.EPS_C, max_nodes=exact.EPS_MAX_NODES):
        budgets.append(max_nodes)
        return real(q_map, rng, goal, rounding, c, 60 if max_nodes == exact.EPS_MAX_NODES else max_nodes)

    monkeypatch.setattr(exact, "_q_side_adaptive", small_first_budget)
    view, _, _ = _view("ring", opts, x, mean)
    assert exact.EPS_MAX_NODES in budgets and exact.EPS_REFINE_NODES in budgets
    assert view.approximate == "" and view.metrics["kl_qp_err"] <= exact.tolerance(view.metrics["kl_qp"])
    assert view.metrics["kl_qp"] == pytest.approx(reference.metrics["kl_qp"], abs=2e-3)
    assert view.metrics["elbo_exact"] == pytest.approx(reference.metrics["elbo_exact"], abs=2e-3)
