"""The design's first rule, where it lives: in ``Session.step``, θ (the decoder) receives exactly the gradient
of the objective's θ-loss and φ (the encoder) exactly the gradient of its φ-loss, each group apart (one
combined backward leaks the plain IWAE φ-gradient into DReG/STL/RWS/PIWAE; design.md, "Encoders and
objectives").

One ``Session.step(1)`` from a saved state. The gradients the Session applied are read back from its
Adam state (after the first step, exp_avg = (1 − β₁)·g), and the references are computed here on the
same noise and batch, each loss differentiated with respect to its own group only.
"""
from __future__ import annotations

import pytest
import torch

import explorer.core.session as session_module
from explorer.core.config import config_from_dict
from explorer.core.models import make_encoder
from explorer.core.objectives import OBJECTIVES, compute_losses, draw
from explorer.core.problems import make_problem
from explorer.core.session import Session

HIDDEN = [6]
RUN = {"k": 4, "m": 2, "beta": 0.3, "alpha": 0.4}
SCENE = {
    "seed": 3,
    # a learnt decoder, so θ has a gradient: the bimodal family's θ = (a, c, log σ)
    "problem": {"name": "bimodal", "learn_decoder": True, "n_data": 8},
    "train": {"batch_size": 8, "hidden": HIDDEN, "encoder": "gaussian"},
    "view": {"grid": 16, "samples": 0, "snr_every": 0, "log_every": 1000},
}


def _step_and_record(session: Session, monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step; returns the (batch, noise) it drew its particles from."""
    drawn = []

    def recording_draw(decoder, encoder, x, eps):
        drawn.append((x.detach().clone(), eps.detach().clone()))
        return draw(decoder, encoder, x, eps)

    monkeypatch.setattr(session_module, "draw", recording_draw)
    session.step(1)
    assert len(drawn) == 1, "one draw per run and step"
    return drawn[0]


def _applied_gradients(optimizer_state: dict, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """The gradients Adam applied to the parameter group whose shapes are ``shapes``."""
    beta1 = optimizer_state["param_groups"][0]["betas"][0]
    groups = [g["params"] for g in optimizer_state["param_groups"]
              if [optimizer_state["state"][i]["exp_avg"].shape for i in g["params"]] == shapes]
    assert len(groups) == 1, "θ's and φ's groups are told apart by their shapes"
    return [optimizer_state["state"][i]["exp_avg"] / (1.0 - beta1) for i in groups[0]]


def _own_gradients(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_each_parameter_group_receives_its_own_loss_gradient(objective, monkeypatch):
    config = config_from_dict({**SCENE, "runs": [{"objective": objective, **RUN}]})
    session = Session(config, device="cpu")
    before = session.state_dict()["runs"][0]
    x, eps = _step_and_record(session, monkeypatch)
    after = session.state_dict()["runs"][0]

    # the same model, rebuilt from the saved state, on the same batch and noise
    problem = make_problem("bimodal")
    decoder = problem.decoder("param", learn=True, hidden=HIDDEN)
    decoder.load_state_dict(before["decoder"])
    encoder = make_encoder("gaussian", problem.x_dim, problem.z_dim, HIDDEN)
    encoder.load_state_dict(before["encoder"])
    theta = [p for p in decoder.parameters() if p.requires_grad]
    phi = list(encoder.parameters())
    losses = compute_losses(objective, draw(decoder, encoder, x, eps), beta=RUN["beta"], alpha=RUN["alpha"])
    want_theta = _own_gradients(losses.theta_loss, theta)
    want_phi = _own_gradients(losses.phi_loss, phi)
    assert len(theta) == 3 and all(g.any() for g in want_theta) and any(g.any() for g in want_phi)

    got_theta = _applied_gradients(after["optimizer"], [p.shape for p in theta])
    got_phi = _applied_gradients(after["optimizer"], [p.shape for p in phi])
    for got, want in zip(got_theta, want_theta):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8, msg=lambda m: f"θ of {objective}: {m}")
    for got, want in zip(got_phi, want_phi):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8, msg=lambda m: f"φ of {objective}: {m}")

    # and those gradients moved the parameters: one Adam step of our own from the same state
    for p, g in zip(theta + phi, want_theta + want_phi):
        p.grad = g
    lr = after["optimizer"]["param_groups"][0]["lr"]
    torch.optim.Adam([*phi, *theta], lr=lr).step()
    for module, saved in ((decoder, after["decoder"]), (encoder, after["encoder"])):
        for name, value in module.state_dict().items():
            torch.testing.assert_close(saved[name], value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
