"""The anatomy of the encoder's gradient: each particle's share of it, as the run's estimator forms it.

Every encoder here is a *location family* in one vector m(x): z = m(x) + T(ε; x) with T free of m, so
q_{m+δ}(z) = q_m(z − δ). For the Gaussian encoders m is q's mean; for the flow it is the shift μ(x) of its
last affine layer (z = μ + σ ⊙ y, y the coupling layers' output), which moves the whole flow. We take the
gradient of the run's φ-objective with respect to m, split by particle: particle k gets its own copy
m + δ_k (in its sample and in every density evaluated at it), and its share is the gradient with respect
to δ_k at δ = 0. The shares sum to the gradient with respect to m exactly (the chain rule), and they are
what the estimators' formulas say, with g_k = ∇_z log p(x, z_k) and s_k = ∇_z log q(z_k|x):

=============================  ==========================================  ==================================
objective                      share of particle k                         because
=============================  ==========================================  ==================================
vae / iwae / miwae / ciwae     ŵ_k · d log w_k/dm = ŵ_k g_k                total derivative; ŵ = 1/K, w̃,
/ vr / piwae (φ: MIWAE)                                                    w̃/M, β/K + (1−β)w̃, softmax((1−α)log w)
dreg                           w̃_k² ∂log w_k/∂z_k = w̃_k² (g_k − s_k)       q's parameters stopped
stl                            w̃_k (g_k − s_k)                             q's parameters stopped
rws                            w̃_k ∂_m log q_m(z_k) = −w̃_k s_k             wake-φ's score term, z detached
=============================  ==========================================  ==================================

(a location family's log q at its own sample does not depend on m, so IWAE's total derivative is g_k:
the path term g_k − s_k plus the score term s_k.) Signs: the shares are gradients of the objective that
φ *ascends* (minus the φ-loss), so an arrow points where plain gradient ascent would move m.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .models import Conditional, DiagGaussianEncoder, Encoder, FlowEncoder, FullGaussianEncoder
from .objectives import Particles, compute_losses, normalised_weights
from .problems import Decoder

WRT_MEAN = "q's mean"
WRT_FLOW = "the flow's shift μ(x)"  # z = μ(x) + σ(x) ⊙ y: the flow's last, affine layer


def location_name(encoder: Encoder) -> str:
    """What the shares are gradients with respect to, in words."""
    return WRT_FLOW if isinstance(encoder, FlowEncoder) else WRT_MEAN


def location(encoder: Encoder, x: Tensor) -> Tensor:
    """m(x) [B, d]: q's mean, or the flow's shift μ(x) (where the sum of the shares is drawn from)."""
    if isinstance(encoder, DiagGaussianEncoder):
        return encoder.mean_log_std(x)[0]
    if isinstance(encoder, FullGaussianEncoder):
        return encoder.mean_chol(x)[0]
    if isinstance(encoder, FlowEncoder):
        return encoder._context(x)[1]  # the flow's own split of its pass over x: (h, μ, log σ)
    raise TypeError(f"no location for {type(encoder).__name__}")


@dataclass(frozen=True)
class Anatomy:
    """One draw's particles and their shares of the φ-objective's gradient w.r.t. q's location m(x)."""

    z: Tensor  # [M, K, B, d] the particles
    weights: Tensor  # [M, K, B] their normalised weights w̃ = softmax_k(log w)
    shares: Tensor  # [M, K, B, d] each particle's share of d(objective of x_b)/dm(x_b)
    total: Tensor  # [B, d] the sum of the shares: the estimator's gradient w.r.t. m(x_b)
    location: Tensor  # [B, d] m(x_b) itself
    wrt: str  # what m is (q's mean, or the flow's shift)


class _Shifted(Conditional):
    """q(·|x) moved by δ, one δ per particle ([M, K, B, d]): q_{m+δ}(z) = q_m(z − δ)."""

    def __init__(self, q: Conditional, delta: Tensor):
        super().__init__(q.encoder, q.x)
        self.base, self.delta = q, delta

    def rsample(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        z, log_q = self.base.rsample(eps)  # log q of a location family's own sample is free of m
        return z + self.delta, log_q

    def log_prob(self, z: Tensor) -> Tensor:
        return self.base.log_prob(z - self.delta)

    def log_prob_stopped(self, z: Tensor) -> Tensor:
        # q's parameters stopped, the location included: δ reaches this only through z
        return self.base.log_prob_stopped(z - self.delta.detach())


def gradient_anatomy(decoder: Decoder, encoder: Encoder, objective: str, x: Tensor, eps: Tensor,
                     beta: float = 0.5, alpha: float = 0.5) -> Anatomy:
    """Each particle's share of the run's φ-gradient w.r.t. q's location, for the draw ``eps``.

    Parameters
    ----------
    x : [B, x_dim] observations; eps : [M, K, B, d] the noise of the draw (the same noise gives the same
        particles as ``objectives.draw``).

    Returns
    -------
    Anatomy whose ``shares`` sum over (M, K) to the gradient of x_b's own φ-objective with respect to
    m(x_b) (the batch's φ-loss is a mean over x, so its gradient is ``total / B``).
    """
    with torch.enable_grad():
        q = encoder.conditional(x)
        delta = torch.zeros_like(eps, requires_grad=True)
        shifted = _Shifted(q, delta)
        z, log_q = shifted.rsample(eps)
        particles = Particles(x, z, decoder.log_joint(x, z), log_q, encoder, shifted)
        losses = compute_losses(objective, particles, beta, alpha)
        (grad,) = torch.autograd.grad(losses.phi_loss, delta)
    shares = -grad.detach() * x.shape[0]
    return Anatomy(z.detach(), normalised_weights(losses.log_w), shares, shares.sum(dim=(0, 1)),
                   location(encoder, x).detach(), location_name(encoder))
