"""Encoders q_φ(z|x). All are reparameterised: z = T_φ(ε; x) with ε ~ N(0, I) drawn by the caller, so
runs can share noise. All give log q exactly (the flow includes its log-determinant).

Shapes: x [B, x_dim]; ε and z [..., B, d] with explicit particle axes, usually [M, K, B, d];
log q [..., B].
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .errors import ConfigError
from .problems import mlp, std_normal_log_prob, sum_last

LOG_STD_MIN, LOG_STD_MAX = -7.0, 3.0


class Conditional:
    """q_φ(·|x) for one batch x: sampling and densities that share the encoder's pass over x.

    The objectives evaluate q twice or three times on one draw: log q at the samples, log q(sg(z)|x)
    (RWS) and log q_{sg(φ)}(z|x) (DReG, STL). This generic version calls the encoder again each time;
    encoders whose pass over x yields the distribution's parameters (the diagonal Gaussians) override
    it and run that pass once per step.
    """

    def __init__(self, encoder: "Encoder", x: Tensor):
        self.encoder, self.x = encoder, x

    def rsample(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        """z = T_φ(ε; x) and log q_φ(z|x)."""
        return self.encoder.rsample(self.x, eps)

    def log_prob(self, z: Tensor) -> Tensor:
        """log q_φ(z|x)."""
        return self.encoder.log_prob(z, self.x)

    def log_prob_stopped(self, z: Tensor) -> Tensor:
        """log q_{sg(φ)}(z|x): φ's parameters stopped, so φ reaches it only through z."""
        enc = self.encoder
        params = {n: t.detach() for n, t in itertools.chain(enc.named_parameters(), enc.named_buffers())}
        return functional_call(enc, params, (z, self.x))


class Encoder(nn.Module):
    z_dim: int

    def conditional(self, x: Tensor) -> Conditional:
        """q_φ(·|x) for the batch x (see :class:`Conditional`)."""
        return Conditional(self, x)

    def rsample(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """z = T_φ(ε; x) and log q_φ(z|x), differentiable in φ through both."""
        raise NotImplementedError

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        """log q_φ(z|x) at given z (the flow inverts itself)."""
        raise NotImplementedError

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        """log q_φ(z|x): ``forward`` so that ``torch.func.functional_call`` can swap φ (stopped φ, vmap)."""
        return self.log_prob(z, x)


class _DiagConditional(Conditional):
    """N(mean(x), diag(exp(log_std(x)))²) with mean and log-std computed once. Stopping φ's parameters
    is stopping mean and log-std, which depend on φ only through them."""

    def __init__(self, encoder: "DiagGaussianEncoder", x: Tensor):
        super().__init__(encoder, x)
        self.mean, self.log_std = encoder.mean_log_std(x)

    def rsample(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        return _diag_rsample(self.mean, self.log_std, eps)

    def log_prob(self, z: Tensor) -> Tensor:
        return _diag_log_prob(self.mean, self.log_std, z)

    def log_prob_stopped(self, z: Tensor) -> Tensor:
        return _diag_log_prob(self.mean.detach(), self.log_std.detach(), z)


def _diag_rsample(mean: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    return mean + torch.exp(log_std) * eps, std_normal_log_prob(eps) - sum_last(log_std)


def _diag_log_prob(mean: Tensor, log_std: Tensor, z: Tensor) -> Tensor:
    return std_normal_log_prob((z - mean) * torch.exp(-log_std)) - sum_last(log_std)


class DiagGaussianEncoder(Encoder):
    """Shared maths of N(mean(x), diag(exp(log_std(x)))²)."""

    def mean_log_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def conditional(self, x: Tensor) -> Conditional:
        return _DiagConditional(self, x)

    def rsample(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        return _diag_rsample(*self.mean_log_std(x), eps)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        return _diag_log_prob(*self.mean_log_std(x), z)


class LinearEncoder(DiagGaussianEncoder):
    """The paper's toy encoder: N(Ax + b, σ_q² I) with σ_q² = 2/3 fixed. φ = (A, b)."""

    def __init__(self, x_dim: int, z_dim: int, var: float = 2.0 / 3.0):
        super().__init__()
        self.z_dim = z_dim
        self.A = nn.Parameter(torch.zeros(z_dim, x_dim))
        self.b = nn.Parameter(torch.zeros(z_dim))
        nn.init.normal_(self.A, std=0.1)
        self.log_std_value = 0.5 * math.log(var)

    def mean_log_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = x @ self.A.T + self.b
        return mean, torch.full_like(mean, self.log_std_value)


class GaussianEncoder(DiagGaussianEncoder):
    """MLP → (mean, log-std): the usual VAE encoder."""

    def __init__(self, x_dim: int, z_dim: int, hidden: list[int]):
        super().__init__()
        self.z_dim = z_dim
        self.net = mlp(x_dim, hidden, 2 * z_dim)

    def mean_log_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw = self.net(x).chunk(2, dim=-1)
        return mean, raw.clamp(LOG_STD_MIN, LOG_STD_MAX)


class FullGaussianEncoder(Encoder):
    """MLP → (mean, Cholesky factor L): N(mean, L Lᵀ), correlated."""

    def __init__(self, x_dim: int, z_dim: int, hidden: list[int]):
        super().__init__()
        self.z_dim = z_dim
        self.n_tril = z_dim * (z_dim - 1) // 2
        self.net = mlp(x_dim, hidden, 2 * z_dim + self.n_tril)
        self.register_buffer("tril_idx", torch.tril_indices(z_dim, z_dim, offset=-1), persistent=False)

    def mean_chol(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.net(x)
        d = self.z_dim
        mean, log_diag, off = out[..., :d], out[..., d : 2 * d].clamp(LOG_STD_MIN, LOG_STD_MAX), out[..., 2 * d :]
        chol = torch.diag_embed(torch.exp(log_diag))
        if self.n_tril:
            lower = torch.zeros_like(chol)
            lower[..., self.tril_idx[0], self.tril_idx[1]] = off
            chol = chol + lower
        return mean, chol, log_diag

    def rsample(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        mean, chol, log_diag = self.mean_chol(x)
        z = mean + (chol @ eps.unsqueeze(-1)).squeeze(-1)
        return z, std_normal_log_prob(eps) - log_diag.sum(-1)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        mean, chol, log_diag = self.mean_chol(x)
        diff = (z - mean).unsqueeze(-1)
        chol = chol.expand(diff.shape[:-2] + chol.shape[-2:])
        eps = torch.linalg.solve_triangular(chol, diff, upper=False).squeeze(-1)
        return std_normal_log_prob(eps) - log_diag.sum(-1)


class FlowEncoder(Encoder):
    """A conditional affine-coupling flow on a Gaussian base; it can be multi-modal.

    ε ~ N(0, I) → L coupling layers y ← y_b·exp(s(y_a, h)) + t(y_a, h) (alternating halves,
    s = 2·tanh(·/2) keeps it tame) → z = μ(x) + σ(x) ⊙ y. h = embed(x). The coupling nets start at
    zero, so the flow starts as the Gaussian encoder. log q(z|x) = log N(ε) − Σ s − Σ log σ.
    """

    def __init__(self, x_dim: int, z_dim: int, hidden: list[int], n_layers: int = 6):
        super().__init__()
        if z_dim < 2:
            raise ConfigError("train.encoder: the flow needs a latent of dimension ≥ 2")
        self.z_dim = z_dim
        width = hidden[-1] if hidden else 64
        self.embed = mlp(x_dim, hidden[:-1], width)
        self.base = nn.Linear(width, 2 * z_dim)
        self.split = z_dim // 2
        self.couplings = nn.ModuleList()
        for i in range(n_layers):
            n_a = self.split if i % 2 == 0 else z_dim - self.split
            net = mlp(n_a + width, [width], 2 * (z_dim - n_a))
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)
            self.couplings.append(net)

    def _halves(self, i: int) -> tuple[slice, slice]:
        a, b = slice(0, self.split), slice(self.split, self.z_dim)
        return (a, b) if i % 2 == 0 else (b, a)

    def _shift_scale(self, i: int, y_a: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h = h.expand(y_a.shape[:-1] + h.shape[-1:])
        raw_s, t = self.couplings[i](torch.cat([y_a, h], -1)).chunk(2, dim=-1)
        return 2.0 * torch.tanh(raw_s / 2.0), t

    def _context(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = torch.tanh(self.embed(x))
        mean, log_std = self.base(h).chunk(2, dim=-1)
        return h, mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def rsample(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        return self.rsample_given(*self._context(x), eps)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_given(*self._context(x), z)

    def rsample_given(self, h: Tensor, mean: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """z and log q for the context (h, μ, log σ) that ``_context`` makes of an x (or any other: the
        per-x optimum q* of core/amortisation.py sets it freely)."""
        y, log_det = eps, torch.zeros_like(eps[..., 0])
        for i in range(len(self.couplings)):
            a, b = self._halves(i)
            s, t = self._shift_scale(i, y[..., a], h)
            y_b = y[..., b] * torch.exp(s) + t
            y = torch.cat([y[..., a], y_b], -1) if i % 2 == 0 else torch.cat([y_b, y[..., a]], -1)
            log_det = log_det + s.sum(-1)
        z = mean + torch.exp(log_std) * y
        return z, std_normal_log_prob(eps) - log_det - log_std.sum(-1)

    def log_prob_given(self, h: Tensor, mean: Tensor, log_std: Tensor, z: Tensor) -> Tensor:
        y = (z - mean) * torch.exp(-log_std)
        log_det = log_std.sum(-1).expand(y.shape[:-1])
        for i in reversed(range(len(self.couplings))):
            a, b = self._halves(i)
            s, t = self._shift_scale(i, y[..., a], h)
            y_b = (y[..., b] - t) * torch.exp(-s)
            y = torch.cat([y[..., a], y_b], -1) if i % 2 == 0 else torch.cat([y_b, y[..., a]], -1)
            log_det = log_det + s.sum(-1)
        return std_normal_log_prob(y) - log_det


ENCODERS: dict[str, str] = {
    "linear": "the paper's toy: N(Ax+b, (2/3)I), variance fixed",
    "gaussian": "MLP → mean and log-std (diagonal Gaussian)",
    "full-gaussian": "MLP → mean and Cholesky factor (correlated Gaussian)",
    "flow": "conditional affine-coupling flow on a Gaussian base (can be multi-modal)",
}


def make_encoder(name: str, x_dim: int, z_dim: int, hidden: list[int]) -> Encoder:
    if name == "linear":
        return LinearEncoder(x_dim, z_dim)
    if name == "gaussian":
        return GaussianEncoder(x_dim, z_dim, hidden)
    if name == "full-gaussian":
        return FullGaussianEncoder(x_dim, z_dim, hidden)
    if name == "flow":
        return FlowEncoder(x_dim, z_dim, hidden)
    raise ConfigError(f"train.encoder: unknown encoder {name!r} (choose from {', '.join(ENCODERS)})")
