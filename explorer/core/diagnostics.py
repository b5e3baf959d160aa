"""ESS and the gradient signal-to-noise probe.

SNR (Rainforth et al. 2018, eq. 4): for fixed parameters and one minibatch, draw R replicate gradient
estimates with independent noise; per scalar parameter SNR_i = |mean_i| / std_i (ddof = 1). We report the
mean over parameters with non-zero variance, and the median. The replicates are one ``torch.func.vmap``
over the noise of a ``vjp``: one forward pass, one backward pass per parameter group.
An SNR estimated from R replicates cannot be told from zero below ≈ 0.8/√R (the estimation floor).

Memory: the probe never holds all R replicates' gradients at once. It runs chunks of replicates sized to
the memory budget (budget.probe_chunk) and merges each chunk's per-parameter mean and squared deviations
into running float64 sums (Chan et al.'s parallel update), so its peak is one chunk whatever R is.

Chosen parameters: the probe can also keep the replicate values of one scalar parameter per group (the
paper's Fig. 2 histograms), at most ``keep`` of them, with that parameter's own mean and standard deviation
over all R. A parameter is named ``NAME[i]``: a name of ``module.named_parameters()`` and a flat index into
it (``parameter_index``); by default the encoder's output bias for q's location in z₁ (``default_encoder_parameter``)
and the first trainable decoder parameter.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, vjp, vmap

from .errors import ConfigError
from .models import Encoder, FlowEncoder, FullGaussianEncoder, GaussianEncoder, LinearEncoder
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
class ParameterReplicates:
    """The replicate gradients of one scalar parameter, as the probe drew them."""

    name: str  # NAME[i], see parameter_index
    values: np.ndarray  # [min(R, keep)] float64: the first replicates' gradients of the group's *loss*
    mean: float  # over all R replicates (the probe's float64 moments)
    sd: float  # ddof = 1, over all R

    @property
    def snr(self) -> float:
        return abs(self.mean) / self.sd if self.sd > 0 else float("nan")


@dataclass(frozen=True)
class SNRResult:
    encoder_mean: float
    encoder_median: float
    decoder_mean: float  # nan when θ is frozen
    decoder_median: float
    replicates: int = 0  # R actually used (fewer than asked only under a time limit)
    chunk: int = 0  # replicates per vectorised chunk (memory)
    encoder_parameter: ParameterReplicates | None = None  # the chosen parameters' replicates, when asked for
    decoder_parameter: ParameterReplicates | None = None  # (None too when θ is frozen)

    @property
    def floor(self) -> float:
        return snr_floor(self.replicates) if self.replicates else float("nan")


class ReplicateMoments:
    """Per-parameter count, mean, sum of squared deviations and max |g| of replicate gradients, merged
    chunk by chunk in float64 (Chan, Golub & LeVeque's parallel update: no catastrophic cancellation)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = self.m2 = self.amax = torch.zeros(0, dtype=torch.float64)

    def add(self, grads: Tensor) -> None:
        """grads: [c, P] replicate gradients of one chunk."""
        g = grads.detach().double()
        c = g.shape[0]
        if c == 0:
            return
        mean = g.mean(0)
        m2 = ((g - mean) ** 2).sum(0)
        amax = g.abs().amax(0) if g.shape[1] else torch.zeros(0, dtype=torch.float64, device=g.device)
        if self.n == 0:
            self.mean, self.m2, self.amax = mean, m2, amax
        else:
            n = self.n + c
            delta = mean - self.mean
            self.mean = self.mean + delta * (c / n)
            self.m2 = self.m2 + m2 + delta**2 * (self.n * c / n)
            self.amax = torch.maximum(self.amax, amax)
        self.n += c

    def parameter(self, index: int) -> tuple[float, float]:
        """(mean, sd with ddof 1) of the parameter at flat ``index``."""
        if self.n < 2:
            return float("nan"), float("nan")
        return float(self.mean[index]), float(torch.sqrt(self.m2[index] / (self.n - 1)))

    def summary(self) -> tuple[float, float]:
        """(mean, median) of |mean|/std (ddof 1) over parameters with std > 0."""
        if self.n < 2 or self.mean.numel() == 0:
            return float("nan"), float("nan")
        std = torch.sqrt(self.m2 / (self.n - 1))
        keep = std > 1e-12 * (self.amax + 1e-30)
        if not bool(keep.any()):
            return float("nan"), float("nan")
        snr = self.mean[keep].abs() / std[keep]
        return float(snr.mean()), float(torch.quantile(snr, 0.5))  # the midpoint median for even counts


def summarise_snr(grads: Tensor) -> tuple[float, float]:
    """grads: [R, P] replicate gradients → (mean, median) of |mean|/std over parameters with std > 0."""
    moments = ReplicateMoments()
    moments.add(grads)
    return moments.summary()


def _split(module: torch.nn.Module, trainable_only: bool) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    live = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad or not trainable_only}
    frozen = {n: t.detach() for n, t in itertools.chain(module.named_parameters(), module.named_buffers()) if n not in live}
    return live, frozen


_PARAMETER = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?:\[(?P<index>\d+)\])?")


def probe_parameters(module: torch.nn.Module, trainable_only: bool) -> list[tuple[str, torch.Tensor]]:
    """The parameters of ``module`` in the order the probe flattens their gradients."""
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad or not trainable_only]


def parameter_index(module: torch.nn.Module, spec: str, trainable_only: bool, key: str) -> tuple[int, str]:
    """The flat index, in the probe's gradient vector of ``module``, of the parameter ``NAME[i]`` (``NAME``
    alone: element 0), and its canonical name. Raises ConfigError naming ``key`` for a name that is not
    there or an index out of range."""
    match = _PARAMETER.fullmatch(spec.strip())
    params = probe_parameters(module, trainable_only)
    names = ", ".join(f"{n}[0..{p.numel() - 1}]" for n, p in params[:12]) + (" ..." if len(params) > 12 else "")
    if match is None:
        raise ConfigError(f"{key}: expected NAME or NAME[i], got {spec[:80]!r} (parameters: {names or 'none'})")
    offset = 0
    for name, p in params:
        if name == match["name"]:
            index = int(match["index"] or 0)
            if index >= p.numel():
                raise ConfigError(f"{key}: {name} has {p.numel()} elements, got index {index}")
            return offset + index, f"{name}[{index}]"
        offset += p.numel()
    raise ConfigError(f"{key}: no parameter named {match['name']!r} (parameters: {names or 'none'})")


def default_encoder_parameter(encoder: Encoder) -> str:
    """The encoder's output bias for q's location in z₁: its mean (Gaussians), the flow's shift μ(x)."""
    if isinstance(encoder, LinearEncoder):
        return "b[0]"
    if isinstance(encoder, (GaussianEncoder, FullGaussianEncoder)):
        return f"net.{len(encoder.net) - 1}.bias[0]"  # the mean comes first in the last layer's output
    if isinstance(encoder, FlowEncoder):
        return "base.bias[0]"
    return f"{probe_parameters(encoder, False)[0][0]}[0]"


def default_decoder_parameter(decoder: Decoder) -> str | None:
    """The first trainable decoder parameter's first element; None when θ is frozen."""
    params = probe_parameters(decoder, True)
    return f"{params[0][0]}[0]" if params else None


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
                 max_particles: int = 1 << 21, max_bytes: float | None = None,
                 max_seconds: float | None = None, keep_parameters: Mapping[str, tuple[int, str]] | None = None,
                 keep: int = 4096) -> SNRResult:
    """The SNR probe: R replicates of both groups' gradients on minibatch x, vectorised in chunks.

    A chunk holds as many replicates as fit ``max_bytes`` (default: budget.PROBE_SHARE of the memory budget
    now) and ``max_particles``; at least one. With ``max_seconds``, R is lowered (not below 2) so that the
    estimated time fits, and the result says which R was used. The noise is drawn in one piece when it is
    small (so chunking never changes the numbers), else chunk by chunk.

    ``keep_parameters`` (``choose_parameters``'s answer): also keep the first ``keep`` replicate values of
    those parameters, with their mean and sd over all R.
    """
    from . import budget

    m_eff = m if OBJECTIVES[objective].uses_m() else 1
    per_replicate = m_eff * k * x.shape[0]
    floats, per_rep_seconds = budget.probe_particle_cost(decoder, encoder, objective)
    trainable = sum(p.numel() for p in decoder.parameters() if p.requires_grad) + \
        sum(p.numel() for p in encoder.parameters())
    per_rep_bytes = budget.probe_replicate_bytes(per_replicate, floats, trainable)
    allowance = budget.PROBE_SHARE * budget.memory_budget().bytes if max_bytes is None else max_bytes
    if max_seconds is not None:
        fits = int((max_seconds - budget.T_PROBE) / max(per_replicate * per_rep_seconds, 1e-12))
        replicates = max(2, min(replicates, fits))
    chunk = budget.probe_chunk(per_rep_bytes, replicates, allowance, per_replicate, max_particles)
    shape = (m_eff, k, x.shape[0], encoder.z_dim)
    whole = replicates * per_replicate * encoder.z_dim * x.element_size() <= allowance / 4
    eps_all = torch.randn((replicates, *shape), generator=generator, device=generator.device, dtype=x.dtype) \
        if whole else None
    chosen = dict(keep_parameters or {})
    kept: dict[str, list[Tensor]] = {group: [] for group in chosen}
    theta_moments, phi_moments = ReplicateMoments(), ReplicateMoments()
    for start in range(0, replicates, chunk):
        n = min(chunk, replicates - start)
        eps = eps_all[start:start + n] if eps_all is not None else \
            torch.randn((n, *shape), generator=generator, device=generator.device, dtype=x.dtype)
        g_theta, g_phi = replicate_gradients(decoder, encoder, objective, x, eps, beta, alpha)
        theta_moments.add(g_theta)
        phi_moments.add(g_phi)
        for group, grads in (("encoder", g_phi), ("decoder", g_theta)):
            if group in chosen and start < keep:
                kept[group].append(grads[: keep - start, chosen[group][0]].detach().double().cpu())
        del g_theta, g_phi, eps
    enc = phi_moments.summary()
    dec = theta_moments.summary()
    moments = {"encoder": phi_moments, "decoder": theta_moments}
    parameters = {group: ParameterReplicates(name, torch.cat(kept[group]).numpy() if kept[group] else np.zeros(0),
                                             *moments[group].parameter(index))
                  for group, (index, name) in chosen.items()}
    return SNRResult(enc[0], enc[1], dec[0], dec[1], replicates, chunk,
                     parameters.get("encoder"), parameters.get("decoder"))


def choose_parameters(decoder: Decoder, encoder: Encoder, encoder_parameter: str = "", decoder_parameter: str = "",
                      keys: tuple[str, str] = ("view.gradients_encoder", "view.gradients_decoder"),
                      ) -> dict[str, tuple[int, str]]:
    """group ("encoder", "decoder") → (flat index, name) of the parameters whose replicates the probe keeps:
    the ones named (``NAME[i]``), or the defaults where a name is empty. No decoder entry when θ is frozen.
    A bad name raises ConfigError naming the key in ``keys``."""
    out = {"encoder": parameter_index(encoder, encoder_parameter or default_encoder_parameter(encoder), False,
                                      keys[0])}
    default = default_decoder_parameter(decoder)
    if default is not None:
        out["decoder"] = parameter_index(decoder, decoder_parameter or default, True, keys[1])
    return out
