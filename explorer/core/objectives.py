"""One small function per estimator, as in the table of design.md.

Each takes the particles of one draw and returns ``Losses``: the loss whose gradient θ (the decoder)
gets, the loss whose gradient φ (the encoder) gets, and diagnostics. Both losses are *minimised*; the
caller applies each to its own parameter group only (one combined ``backward()`` would leak the plain
IWAE φ-gradient into DReG/STL/RWS/PIWAE). Normalised weights are always detached inside surrogates.

Notation: z_{m,k} ~ q_φ(z|x), log w = log p_θ(x, z) − log q_φ(z|x), w̃ = softmax_k(log w).
Shapes: log_w is [M, K, B]: M groups of K particles for B observations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch
from torch import Tensor

from .models import Conditional, Encoder
from .problems import Decoder

K_AXIS = 1


@dataclass
class Particles:
    """One reparameterised draw z = T_φ(ε; x) with its log-densities. ε is [M, K, B, d]."""

    x: Tensor
    z: Tensor
    log_p: Tensor  # log p_θ(x, z)            [M, K, B]
    log_q: Tensor  # log q_φ(z|x)             [M, K, B]
    encoder: Encoder
    conditional: Conditional | None = None  # q_φ(·|x) from the draw, sharing the encoder's pass over x

    @cached_property
    def q(self) -> Conditional:
        return self.conditional if self.conditional is not None else self.encoder.conditional(self.x)

    @cached_property
    def log_w(self) -> Tensor:
        return self.log_p - self.log_q

    @cached_property
    def log_w_stopped(self) -> Tensor:
        """log p_θ(x, z) − log q_{sg(φ)}(z|x): φ reaches it only through z (the path derivative)."""
        return self.log_p - self.q.log_prob_stopped(self.z)

    @cached_property
    def log_q_detached_z(self) -> Tensor:
        """log q_φ(sg(z)|x): φ reaches it only through q's parameters (the score function)."""
        return self.q.log_prob(self.z.detach())


def draw(decoder: Decoder, encoder: Encoder, x: Tensor, eps: Tensor) -> Particles:
    q = encoder.conditional(x)
    z, log_q = q.rsample(eps)
    return Particles(x, z, decoder.log_joint(x, z), log_q, encoder, q)


@dataclass
class Losses:
    theta_loss: Tensor
    phi_loss: Tensor
    log_w: Tensor  # [M, K, B], detached

    @property
    def elbo(self) -> Tensor:
        """MC ELBO: the mean of log w (detached scalar; computed only when asked for)."""
        return self.log_w.mean()

    @property
    def bound(self) -> Tensor:
        """MC L_K = logsumexp_k log w − log K, averaged over groups and batch (never a surrogate's value)."""
        return log_mean_exp(self.log_w).mean()


def log_mean_exp(log_w: Tensor, dim: int | tuple[int, ...] = K_AXIS) -> Tensor:
    """log (1/K) Σ_k exp(log w_k): L_K for each group. Stable for any log w."""
    dims = (dim,) if isinstance(dim, int) else dim
    count = math.prod(log_w.shape[d] for d in dims)
    return torch.logsumexp(log_w, dim=dims) - math.log(count)


def normalised_weights(log_w: Tensor) -> Tensor:
    """w̃ = softmax over the K axis, detached."""
    return torch.softmax(log_w.detach(), dim=K_AXIS)


def _losses(theta_loss: Tensor, phi_loss: Tensor, p: Particles) -> Losses:
    return Losses(theta_loss, phi_loss, p.log_w.detach())


# --------------------------------------------------------------------------- the estimators
def vae(p: Particles) -> Losses:
    """ELBO = (1/K) Σ_k log w_k for θ and φ."""
    loss = -p.log_w.mean()
    return _losses(loss, loss, p)


def iwae(p: Particles) -> Losses:
    """L_K = logsumexp_k log w_k − log K for θ and φ (Burda et al. 2016)."""
    loss = -log_mean_exp(p.log_w).mean()
    return _losses(loss, loss, p)


def miwae(p: Particles) -> Losses:
    """(1/M) Σ_m L_K^{(m)} for θ and φ (Rainforth et al. 2018, eq. 9)."""
    loss = -log_mean_exp(p.log_w).mean()  # mean over the M groups and the batch
    return _losses(loss, loss, p)


def ciwae(p: Particles, beta: float) -> Losses:
    """β·ELBO + (1−β)·L_K on the same samples, for θ and φ (Rainforth et al. 2018, eq. 8)."""
    log_w = p.log_w
    loss = -(beta * log_w.mean(K_AXIS) + (1.0 - beta) * log_mean_exp(log_w)).mean()
    return _losses(loss, loss, p)


def piwae(p: Particles) -> Losses:
    """θ: L_{MK} over all M·K samples. φ: MIWAE(M, K) on the same samples (Rainforth et al. 2018, §4)."""
    log_w = p.log_w
    theta_loss = -log_mean_exp(log_w, dim=(0, K_AXIS)).mean()
    phi_loss = -log_mean_exp(log_w).mean()
    return _losses(theta_loss, phi_loss, p)


def dreg(p: Particles) -> Losses:
    """θ: L_K. φ: Σ_k w̃_k² ∂log w_k/∂z_k ∂z_k/∂φ (Tucker et al. 2019, eq. 5): unbiased for ∇_φ L_K."""
    theta_loss = -log_mean_exp(p.log_w).mean()
    phi_loss = -(normalised_weights(p.log_w) ** 2 * p.log_w_stopped).sum(K_AXIS).mean()
    return _losses(theta_loss, phi_loss, p)


def stl(p: Particles) -> Losses:
    """θ: L_K. φ: Σ_k w̃_k ∂log w_k/∂z_k ∂z_k/∂φ, q's parameters stopped (Roeder et al. 2017); biased for K>1."""
    theta_loss = -log_mean_exp(p.log_w).mean()
    phi_loss = -(normalised_weights(p.log_w) * p.log_w_stopped).sum(K_AXIS).mean()
    return _losses(theta_loss, phi_loss, p)


def rws(p: Particles) -> Losses:
    """θ: L_K (wake-θ). φ: wake-φ, Σ_k w̃_k ∇_φ log q(z_k|x) with z, w̃ detached: forward KL, mass-covering."""
    theta_loss = -log_mean_exp(p.log_w).mean()
    phi_loss = -(normalised_weights(p.log_w) * p.log_q_detached_z).sum(K_AXIS).mean()
    return _losses(theta_loss, phi_loss, p)


def vr(p: Particles, alpha: float) -> Losses:
    """Rényi bound (1/(1−α)) log (1/K) Σ_k w_k^{1−α} for θ and φ (Li & Turner 2016). α=0: IWAE; α→1: ELBO."""
    loss = -(log_mean_exp((1.0 - alpha) * p.log_w) / (1.0 - alpha)).mean()
    return _losses(loss, loss, p)


@dataclass(frozen=True)
class ObjectiveSpec:
    fn: Callable[..., Losses]
    params: tuple[str, ...]  # run keys this objective reads, besides k: "m", "beta", "alpha"
    formula: str
    shows: str

    def uses_m(self) -> bool:
        return "m" in self.params


OBJECTIVES: dict[str, ObjectiveSpec] = {
    "vae": ObjectiveSpec(vae, ("k",), "θ, φ: ∇ ELBO = ∇ (1/K) Σ log w_k",
                         "reverse KL: q locks onto one mode (mode-seeking)"),
    "iwae": ObjectiveSpec(iwae, ("k",), "θ, φ: ∇ L_K = ∇ log (1/K) Σ w_k",
                          "tighter bound; encoder-gradient SNR falls like 1/√K"),
    "miwae": ObjectiveSpec(miwae, ("k", "m"), "θ, φ: ∇ (1/M) Σ_m L_K^(m)",
                           "M groups of K: encoder SNR ∝ √(M/K), a middle way"),
    "ciwae": ObjectiveSpec(ciwae, ("k", "beta"), "θ, φ: ∇ [β·ELBO + (1−β)·L_K]",
                           "a convex mix of ELBO and IWAE on the same samples"),
    "piwae": ObjectiveSpec(piwae, ("k", "m"), "θ: ∇ L_MK;  φ: ∇ MIWAE(M, K)",
                           "tight bound for θ, high-SNR bound for φ"),
    "dreg": ObjectiveSpec(dreg, ("k",), "θ: ∇ L_K;  φ: Σ w̃² ∂log w/∂z ∂z/∂φ",
                          "unbiased IWAE φ-gradient whose SNR rises with K"),
    "stl": ObjectiveSpec(stl, ("k",), "θ: ∇ L_K;  φ: Σ w̃ ∂log w/∂z ∂z/∂φ (q stopped)",
                         "sticking the landing: zero variance at the exact posterior, biased for K>1"),
    "rws": ObjectiveSpec(rws, ("k",), "θ: ∇ L_K;  φ: −Σ w̃ ∇ log q(z_k) (wake-φ)",
                         "forward KL(p‖q): q spreads to cover every mode (mass-covering)"),
    "vr": ObjectiveSpec(vr, ("k", "alpha"), "θ, φ: ∇ (1/(1−α)) log (1/K) Σ w^(1−α)",
                        "Rényi-α: α=0 is IWAE, α→1 the ELBO; α<0 more mass-covering"),
}


def compute_losses(objective: str, p: Particles, beta: float = 0.5, alpha: float = 0.5) -> Losses:
    """Dispatch to the objective's function with the run parameters it reads."""
    spec = OBJECTIVES[objective]
    kwargs = {}
    if "beta" in spec.params:
        kwargs["beta"] = beta
    if "alpha" in spec.params:
        kwargs["alpha"] = alpha
    return spec.fn(p, **kwargs)
