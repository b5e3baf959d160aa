"""ESS and the gradient signal-to-noise probe.

SNR (Rainforth et al. 2018, eq. 4): for fixed parameters and one minibatch, draw R replicate gradient
estimates with independent noise; per scalar parameter SNR_i = |mean_i| / std_i (ddof = 1). We report the
mean over parameters with non-zero variance, and the median. The replicates are one ``torch.func.vmap``
over the noise of a ``vjp``: one forward pass, one backward pass per parameter group.
An SNR estimated from R replicates cannot be told from zero below ≈ 0.8/√R (the estimation floor).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, vjp, vmap

from .models import Encoder
from .objectives import OBJECTIVES, compute_losses, draw
from .problems import Decoder


def ess(log_w: Tensor, dim: int = 1) -> Tensor:
    """Effective sample size (Σ w)² / Σ w² along ``dim``, computed from log weights."""
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


def ess_frac(log_w: Tensor, dim: int = 1) -> Tensor:
    return ess(log_w, dim) / log_w.shape[dim]


def snr_floor(replicates: int) -> float:
    """SNR below which a probe of R replicates cannot tell the mean from zero."""
    return 0.8 / math.sqrt(replicates)


@dataclass(frozen=True)
class SNRResult:
    encoder_mean: float
    encoder_median: float
    decoder_mean: float  # nan when θ is frozen
    decoder_median: float


def summarise_snr(grads: Tensor) -> tuple[float, float]:
    """grads: [R, P] replicate gradients → (mean, median) of |mean|/std over parameters with std > 0."""
    if grads.numel() == 0 or grads.shape[1] == 0:
        return float("nan"), float("nan")
    g = grads.double()
    std = g.std(0, unbiased=True)
    keep = std > 1e-12 * (g.abs().amax(0) + 1e-30)
    if not bool(keep.any()):
        return float("nan"), float("nan")
    snr = g.mean(0)[keep].abs() / std[keep]
    return float(snr.mean()), float(torch.quantile(snr, 0.5))  # the midpoint median for even counts


def _split(module: torch.nn.Module, trainable_only: bool) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    live = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad or not trainable_only}
    frozen = {n: t.detach() for n, t in itertools.chain(module.named_parameters(), module.named_buffers()) if n not in live}
    return live, frozen


class _LossModule(torch.nn.Module):
    """Both modules under one root, so ``functional_call`` can swap θ and φ and run the objective."""

    def __init__(self, decoder: Decoder, encoder: Encoder, objective: str, x: Tensor, beta: float, alpha: float):
        super().__init__()
        self.decoder, self.encoder = decoder, encoder
        self.objective, self.x, self.beta, self.alpha = objective, x, beta, alpha

    def forward(self, noise: Tensor) -> tuple[Tensor, Tensor]:
        out = compute_losses(self.objective, draw(self.decoder, self.encoder, self.x, noise), self.beta, self.alpha)
        return out.theta_loss, out.phi_loss


def replicate_gradients(decoder: Decoder, encoder: Encoder, objective: str, x: Tensor, eps: Tensor,
                        beta: float = 0.5, alpha: float = 0.5, chunk_size: int | None = None
                        ) -> tuple[Tensor, Tensor]:
    """Per-replicate gradients of θ's loss w.r.t. θ and φ's loss w.r.t. φ.

    eps: [R, M, K, B, d] noise. Returns (theta_grads [R, Pθ], phi_grads [R, Pφ]), flattened.
    """
    theta, theta_fixed = _split(decoder, trainable_only=True)
    phi, phi_fixed = _split(encoder, trainable_only=False)

    model = _LossModule(decoder, encoder, objective, x, beta, alpha)
    prefixed = lambda prefix, d: {f"{prefix}.{n}": t for n, t in d.items()}  # noqa: E731

    def losses(th: dict[str, Tensor], ph: dict[str, Tensor], noise: Tensor) -> tuple[Tensor, Tensor]:
        state = {**prefixed("decoder", {**theta_fixed, **th}), **prefixed("encoder", {**phi_fixed, **ph})}
        return functional_call(model, state, (noise,))

    def one(noise: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        (theta_loss, phi_loss), pullback = vjp(lambda th, ph: losses(th, ph, noise), theta, phi)
        one_, zero = torch.ones_like(theta_loss), torch.zeros_like(theta_loss)
        g_theta = pullback((one_, zero))[0] if theta else {}
        g_phi = pullback((zero, one_))[1]
        return [g.reshape(-1) for g in g_theta.values()], [g.reshape(-1) for g in g_phi.values()]

    g_theta, g_phi = vmap(one, randomness="error", chunk_size=chunk_size)(eps)
    flat = lambda gs: torch.cat(gs, dim=1) if gs else eps.new_zeros(eps.shape[0], 0)  # noqa: E731
    return flat(g_theta), flat(g_phi)


def replicate_gradients_loop(decoder: Decoder, encoder: Encoder, objective: str, x: Tensor, eps: Tensor,
                             beta: float = 0.5, alpha: float = 0.5) -> tuple[Tensor, Tensor]:
    """The same as ``replicate_gradients`` with a Python loop and autograd (the reference and benchmark)."""
    theta = [p for p in decoder.parameters() if p.requires_grad]
    phi = list(encoder.parameters())
    out_t, out_p = [], []
    for noise in eps:
        losses = compute_losses(objective, draw(decoder, encoder, x, noise), beta, alpha)
        g_t = torch.autograd.grad(losses.theta_loss, theta, retain_graph=True, allow_unused=True) if theta else []
        g_p = torch.autograd.grad(losses.phi_loss, phi, allow_unused=True)
        out_t.append(torch.cat([g.reshape(-1) for g in g_t]) if theta else eps.new_zeros(0))
        out_p.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(g_p, phi)]))
    return torch.stack(out_t), torch.stack(out_p)


def gradient_snr(decoder: Decoder, encoder: Encoder, objective: str, x: Tensor, k: int, m: int,
                 replicates: int, generator: torch.Generator, beta: float = 0.5, alpha: float = 0.5,
                 max_particles: int = 1 << 21) -> SNRResult:
    """The SNR probe: R replicates of both groups' gradients on minibatch x, vectorised."""
    m_eff = m if OBJECTIVES[objective].uses_m() else 1
    shape = (replicates, m_eff, k, x.shape[0], encoder.z_dim)
    eps = torch.randn(shape, generator=generator, device=generator.device, dtype=x.dtype)
    per_replicate = m_eff * k * x.shape[0]
    chunk = max(1, min(replicates, max_particles // per_replicate))
    g_theta, g_phi = replicate_gradients(decoder, encoder, objective, x, eps, beta, alpha,
                                         chunk_size=None if chunk >= replicates else chunk)
    enc = summarise_snr(g_phi)
    dec = summarise_snr(g_theta)
    return SNRResult(enc[0], enc[1], dec[0], dec[1])
