"""Toy problems with a 2-D latent (gaussian also allows any dimension).

A problem is a prior p(z), a likelihood p(x|z) with true parameters θ*, a data set drawn from it and a
latent box for the grid. Its learnable decoder family is a small ``nn.Module`` (the problem's own
parametric family, which contains θ*); ``decoder = "mlp"`` swaps in a generic MLP likelihood instead.

Shapes: x is [B, x_dim]; z is [..., B, z_dim] with any leading particle axes (usually [M, K]);
log-densities come back as [..., B].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .digits import IMAGE_SHAPE, N_IMAGES, PIXELS, DigitsSplit, load_split
from .errors import ConfigError, show

LOG_2PI = math.log(2.0 * math.pi)


def log_normal(x: Tensor, mean: Tensor, log_std: Tensor | float) -> Tensor:
    """Elementwise log N(x; mean, exp(log_std)^2)."""
    log_std = torch.as_tensor(log_std, dtype=x.dtype, device=x.device)
    return -0.5 * (((x - mean) * torch.exp(-log_std)) ** 2) - log_std - 0.5 * LOG_2PI


def sum_last(t: Tensor) -> Tensor:
    """``t.sum(-1)``, bit for bit. A last axis of length 2 (the latent here) is summed as t₀ + t₁: torch's
    reduction over an inner axis of 2 costs ~17 µs at [64, 64, 2], the addition ~4 µs."""
    if t.shape[-1] == 2:
        return torch.add(*t.unbind(-1))
    return t.sum(-1)


def std_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * sum_last(z**2) - 0.5 * z.shape[-1] * LOG_2PI


class Decoder(nn.Module):
    """p_θ(x, z) = p_θ(z) p_θ(x|z). Subclasses give ``log_prior`` and ``log_lik``."""

    def log_prior(self, z: Tensor) -> Tensor:  # [..., B, d] -> [..., B]
        raise NotImplementedError

    def log_lik(self, x: Tensor, z: Tensor) -> Tensor:  # x [B, xd], z [..., B, d] -> [..., B]
        raise NotImplementedError

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        return self.log_prior(z) + self.log_lik(x, z)

    def prior_from_noise(self, eps: Tensor, generator: torch.Generator) -> Tensor:
        """A draw from p(z) built from standard-normal ``eps`` [n, d] (default: the prior is N(0, I))."""
        return eps

    def sample_x(self, z: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError


class GaussianLikDecoder(Decoder):
    """A decoder whose likelihood is N(x; mean_θ(z), σ_θ² I) (every problem here)."""

    def lik_mean(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def lik_log_std(self) -> Tensor:
        raise NotImplementedError

    def log_lik(self, x: Tensor, z: Tensor) -> Tensor:
        return sum_last(log_normal(x, self.lik_mean(z), self.lik_log_std()))

    def sample_x(self, z: Tensor, generator: torch.Generator) -> Tensor:
        mean = self.lik_mean(z)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(self.lik_log_std()) * noise


def _param(value: Any) -> nn.Parameter:
    return nn.Parameter(torch.as_tensor(value, dtype=torch.get_default_dtype()).clone())


# --------------------------------------------------------------------------- parametric families
class GaussianFamily(GaussianLikDecoder):
    """z ~ N(μ, I_d), x|z ~ N(z, I_d). θ = μ."""

    def __init__(self, mu: list[float]):
        super().__init__()
        self.mu = _param(mu)

    def log_prior(self, z: Tensor) -> Tensor:
        return std_normal_log_prob(z - self.mu)

    def prior_from_noise(self, eps: Tensor, generator: torch.Generator) -> Tensor:
        return eps + self.mu

    def lik_mean(self, z: Tensor) -> Tensor:
        return z

    def lik_log_std(self) -> Tensor:
        return torch.zeros((), dtype=self.mu.dtype, device=self.mu.device)


class BimodalFamily(GaussianLikDecoder):
    """z ~ N(0, I); x|z ~ N((a z₁², c z₂), σ² I). θ = (a, c, log σ); θ* = (1, 1, log σ*)."""

    def __init__(self, a: float, c: float, log_sigma: float):
        super().__init__()
        self.a, self.c, self.log_sigma = _param(a), _param(c), _param(log_sigma)

    def log_prior(self, z: Tensor) -> Tensor:
        return std_normal_log_prob(z)

    def lik_mean(self, z: Tensor) -> Tensor:
        return torch.stack([self.a * z[..., 0] ** 2, self.c * z[..., 1]], dim=-1)

    def lik_log_std(self) -> Tensor:
        return self.log_sigma


class RingFamily(GaussianLikDecoder):
    """z ~ N(0, I); scalar x|z ~ N(r‖z‖ + c, σ²). θ = (r, c, log σ); θ* = (1, 0, log σ*)."""

    def __init__(self, r: float, c: float, log_sigma: float):
        super().__init__()
        self.r, self.c, self.log_sigma = _param(r), _param(c), _param(log_sigma)

    def log_prior(self, z: Tensor) -> Tensor:
        return std_normal_log_prob(z)

    def lik_mean(self, z: Tensor) -> Tensor:
        # sqrt(|z|² + tiny) keeps the gradient finite at the origin
        radius = torch.sqrt((z**2).sum(-1, keepdim=True) + 1e-12)
        return self.r * radius + self.c

    def lik_log_std(self) -> Tensor:
        return self.log_sigma


class BananaFamily(GaussianLikDecoder):
    """z ~ N(0, I); scalar x|z ~ N(c z₂ − b z₁², σ²). θ = (b, c, log σ); θ* = (b*, 1, log σ*)."""

    def __init__(self, b: float, c: float, log_sigma: float):
        super().__init__()
        self.b, self.c, self.log_sigma = _param(b), _param(c), _param(log_sigma)

    def log_prior(self, z: Tensor) -> Tensor:
        return std_normal_log_prob(z)

    def lik_mean(self, z: Tensor) -> Tensor:
        return (self.c * z[..., 1] - self.b * z[..., 0] ** 2).unsqueeze(-1)

    def lik_log_std(self) -> Tensor:
        return self.log_sigma


class FunnelFamily(GaussianLikDecoder):
    """Neal's funnel prior z₁ ~ N(0, 3²), z₂|z₁ ~ N(0, e^{z₁}); x|z ~ N(a ⊙ z, s² I).

    θ = (a, log s) with θ* = ((1, 1), log s*). The prior is fixed: it is what makes the funnel.
    """

    def __init__(self, a: list[float], log_s: float):
        super().__init__()
        self.a, self.log_s = _param(a), _param(log_s)

    def log_prior(self, z: Tensor) -> Tensor:
        z1, z2 = z[..., 0], z[..., 1]
        # log N(z₂; 0, e^{z₁}) = −½ z₂² e^{−z₁} − ½ z₁ − ½ log 2π, with z₂² e^{−z₁} formed in log space and
        # capped at e^80: deep in the neck (z₁ ≈ −100, a broad q's particle) float32 would overflow to −inf
        # and turn the gradient into NaN. The cap changes nothing representable: such a particle has weight 0.
        scaled_sq = torch.exp((2.0 * torch.log(z2.abs() + 1e-30) - z1).clamp(max=80.0))
        return log_normal(z1, 0.0, math.log(3.0)) - 0.5 * scaled_sq - 0.5 * z1 - 0.5 * LOG_2PI

    def prior_from_noise(self, eps: Tensor, generator: torch.Generator) -> Tensor:
        z1 = 3.0 * eps[:, 0]
        return torch.stack([z1, torch.exp(0.5 * z1) * eps[:, 1]], dim=-1)

    def lik_mean(self, z: Tensor) -> Tensor:
        return self.a * z

    def lik_log_std(self) -> Tensor:
        return self.log_s


class MixtureFamily(GaussianLikDecoder):
    """Prior: a mixture of G isotropic Gaussians on a circle; x|z ~ N(z, s² I) with s large.

    θ = (mixture logits, log s); the component means and width are fixed.
    """

    def __init__(self, logits: list[float], log_s: float, means: Tensor, comp_std: float):
        super().__init__()
        self.logits, self.log_s = _param(logits), _param(log_s)
        self.register_buffer("means", means.to(torch.get_default_dtype()))
        self.comp_log_std = math.log(comp_std)

    def log_prior(self, z: Tensor) -> Tensor:
        comp = log_normal(z.unsqueeze(-2), self.means, self.comp_log_std).sum(-1)  # [..., B, G]
        return torch.logsumexp(comp + torch.log_softmax(self.logits, -1), dim=-1)

    def prior_from_noise(self, eps: Tensor, generator: torch.Generator) -> Tensor:
        idx = torch.multinomial(torch.softmax(self.logits, -1), eps.shape[0], replacement=True, generator=generator)
        return self.means[idx] + math.exp(self.comp_log_std) * eps

    def lik_mean(self, z: Tensor) -> Tensor:
        return z

    def lik_log_std(self) -> Tensor:
        return self.log_s


class MLPDecoder(GaussianLikDecoder):
    """Generic option: the problem's fixed prior, x|z ~ N(MLP_θ(z), σ_θ² I)."""

    def __init__(self, prior: Callable[[Tensor], Tensor], z_dim: int, x_dim: int, hidden: list[int]):
        super().__init__()
        self._prior = prior
        self.net = mlp(z_dim, hidden, x_dim)
        self.log_sigma = _param(0.0)

    def log_prior(self, z: Tensor) -> Tensor:
        return self._prior(z)

    def lik_mean(self, z: Tensor) -> Tensor:
        return self.net(z)

    def lik_log_std(self) -> Tensor:
        return self.log_sigma


# --------------------------------------------------------------------------- image likelihoods
LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "gaussian")
_SMALL_LOGIT = 1e-3  # below this |l| the continuous Bernoulli's closed forms are replaced by their series


def _cb_log_norm(logits: Tensor) -> Tensor:
    """log C(λ) of the continuous Bernoulli with λ = σ(l) (Loaiza-Ganem & Cunningham 2019, eq. 7):
    C = 2 artanh(1 − 2λ) / (1 − 2λ) = l / tanh(l/2), → 2 at l = 0 (series: log 2 + l²/12)."""
    small = logits.abs() < _SMALL_LOGIT
    safe = torch.where(small, torch.ones_like(logits), logits)  # no 0/0 in the branch where() discards
    exact = torch.log(safe.abs()) - torch.log(torch.tanh(0.5 * safe).abs())
    return torch.where(small, math.log(2.0) + logits**2 / 12.0, exact)


def _cb_mean(logits: Tensor) -> Tensor:
    """E[x] of the continuous Bernoulli: σ(l)/tanh(l/2) − 1/l, → 1/2 + l/12 near l = 0."""
    small = logits.abs() < _SMALL_LOGIT
    safe = torch.where(small, torch.ones_like(logits), logits)
    return torch.where(small, 0.5 + logits / 12.0, torch.sigmoid(safe) / torch.tanh(0.5 * safe) - 1.0 / safe)


class ImageDecoder(Decoder):
    """p(z) = N(0, I); pixels independent given z through an MLP's logits l = MLP_θ(z), each
    ``bernoulli``: x ∈ {0, 1} ~ Bernoulli(σ(l)); ``continuous-bernoulli``: x ∈ [0, 1] with density
    C(σ(l)) σ(l)^x (1 − σ(l))^(1−x); ``gaussian``: x ~ N(σ(l), s²) with one learned s."""

    def __init__(self, z_dim: int, x_dim: int, hidden: list[int], likelihood: str):
        super().__init__()
        self.likelihood = likelihood
        self.net = mlp(z_dim, hidden, x_dim)
        if likelihood == "gaussian":
            self.log_sigma = _param(math.log(0.25))

    def log_prior(self, z: Tensor) -> Tensor:
        return std_normal_log_prob(z)

    def log_lik(self, x: Tensor, z: Tensor) -> Tensor:
        logits = self.net(z)
        if self.likelihood == "gaussian":
            return log_normal(x, torch.sigmoid(logits), self.log_sigma).sum(-1)
        log_p = x * logits - torch.nn.functional.softplus(logits)  # x log σ(l) + (1 − x) log(1 − σ(l))
        if self.likelihood == "continuous-bernoulli":
            log_p = log_p + _cb_log_norm(logits)
        return log_p.sum(-1)

    def mean_image(self, z: Tensor) -> Tensor:
        """E[x|z]: the decoder's mean image at each z ([..., x_dim], values in [0, 1])."""
        logits = self.net(z)
        return _cb_mean(logits) if self.likelihood == "continuous-bernoulli" else torch.sigmoid(logits)

    def sample_x(self, z: Tensor, generator: torch.Generator) -> Tensor:
        mean = self.mean_image(z)
        if self.likelihood == "bernoulli":
            return torch.bernoulli(mean, generator=generator)
        raise NotImplementedError(f"sampling x from the {self.likelihood} likelihood is not needed here")


def mlp(n_in: int, hidden: list[int], n_out: int, act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- the problem registry
# Ranges of the problem options: every value is a finite number inside them, so the model's float32
# arithmetic (squares of scaled distances, exponentials of log-scales) cannot overflow.
LOCATION = 1e3  # |x0|, |μ|, |b|
SCALE = (1e-3, 1e3)  # σ, s, comp_std, radius
MAX_COMPONENTS = 10_000  # mixture weights (memory is the budget's business: budget.py)


@dataclass(frozen=True)
class OptionSpec:
    default: Any
    help: str
    kind: str = "float"  # float | int | floats | choice
    lo: float = -LOCATION
    hi: float = LOCATION
    choices: tuple[str, ...] = ()  # the allowed values of a choice


def _number(v: Any, key: str, lo: float, hi: float) -> float:
    """A finite number in [lo, hi] (an integer of any size is refused by its value, never by overflow)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"problem.{key}: expected a number, got {show(v)}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise ConfigError(f"problem.{key}: expected a finite number, got {show(v)}")
    if not lo <= f <= hi:
        raise ConfigError(f"problem.{key}: must be in [{lo:g}, {hi:g}], got {show(v)}")
    return f


def check_option(key: str, spec: OptionSpec, v: Any) -> Any:
    """A problem option validated against its spec: type, finiteness and range (length is the builder's)."""
    if v is None and spec.default is None:
        return None
    if spec.kind == "choice":
        if not isinstance(v, str) or v not in spec.choices:
            raise ConfigError(f"problem.{key}: unknown value {show(v)} (choose from {', '.join(spec.choices)})")
        return v
    if spec.kind == "int":
        if isinstance(v, bool) or not isinstance(v, int) or not spec.lo <= v <= spec.hi:
            raise ConfigError(f"problem.{key}: must be an integer in {spec.lo:g}..{spec.hi:g}, got {show(v)}")
        return v
    if spec.kind == "floats":
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"problem.{key}: expected a list of numbers, got {show(v)}")
        if len(v) > MAX_COMPONENTS:
            raise ConfigError(f"problem.{key}: at most {MAX_COMPONENTS:,} numbers, got {len(v):,}")
        for e in v:
            if isinstance(e, bool) or not isinstance(e, (int, float)):
                raise ConfigError(f"problem.{key}: expected a list of numbers, got {show(v)}")
            try:
                _number(e, key, spec.lo, spec.hi)
            except ConfigError as err:  # name the whole list, then what is wrong with the item
                reason = str(err).split(": ", 1)[1].split(", got ")[0].replace("a finite number", "finite numbers")
                raise ConfigError(f"problem.{key}: {reason}, got {show(v)}") from None
        return [float(e) for e in v]
    return _number(v, key, spec.lo, spec.hi)


@dataclass
class Problem:
    """A toy problem, resolved from its options. ``box`` = (z1_min, z1_max, z2_min, z2_max)."""

    name: str
    summary: str
    x_dim: int
    z_dim: int
    box: tuple[float, float, float, float]
    x0: list[float]
    make_family: Callable[[bool], Decoder]  # make_family(at_truth) -> decoder at θ* or at its init
    options: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, int] | None = None  # x is an image of this many rows × columns (views draw it so)
    learned_decoder_only: bool = False  # no θ* to freeze: learn_decoder must be true (and is by default)

    def check_shared(self, learn_decoder: bool, n_data: int) -> None:
        """This problem's limits on the shared [problem] keys (a ConfigError naming the key)."""

    def heldout(self) -> tuple[Tensor, int] | None:
        """Held-out data to evaluate the runs on, and the steps between evaluations (0: only at the end);
        None where there are none (a toy's data come from the model itself)."""
        return None

    def true_decoder(self) -> Decoder:
        return self.make_family(True)

    def decoder(self, kind: str = "param", learn: bool = False, hidden: list[int] | None = None) -> Decoder:
        """The model p_θ used in training. ``learn=False`` freezes θ = θ*."""
        if kind == "mlp":
            truth = self.true_decoder()
            for p in truth.parameters():
                p.requires_grad_(False)
            dec: Decoder = MLPDecoder(truth.log_prior, self.z_dim, self.x_dim, hidden or [64, 64])
        else:
            dec = self.make_family(not learn)
        if not learn:
            for p in dec.parameters():
                p.requires_grad_(False)
        return dec

    def sample_data(self, n: int, generator: torch.Generator) -> Tensor:
        """n observations: x[0] is the problem's showcase observation x0, the rest are drawn from θ*."""
        truth = self.true_decoder()
        with torch.no_grad():
            z = self.sample_prior(n - 1, generator)
            x = truth.sample_x(z, generator)
        x0 = torch.tensor([self.x0], dtype=x.dtype)
        return torch.cat([x0, x], dim=0)

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        eps = torch.randn(n, self.z_dim, generator=generator)
        with torch.no_grad():
            return self.true_decoder().prior_from_noise(eps, generator)


class DigitsProblem(Problem):
    """scikit-learn's 8 × 8 handwritten digits (core/digits.py): the data are real images, so there is no
    true decoder θ*; the model is an :class:`ImageDecoder` that must be learned. The data set is the
    training split; ``heldout()`` gives the test split's first ``eval_images`` images, the fixed subset
    that the held-out evaluation integrates."""

    def check_shared(self, learn_decoder: bool, n_data: int) -> None:
        if not learn_decoder:
            raise ConfigError("problem.learn_decoder: the digits problem has no true decoder to freeze "
                              "(its data are real images): set learn_decoder = true")
        n_train = len(self._split().train)
        if n_data > n_train:
            raise ConfigError(f"problem.n_data: the digits' training split has {n_train} images "
                              f"(test_images = {self.options['test_images']}), got n_data = {n_data}")

    def _split(self) -> DigitsSplit:
        o = self.options
        return load_split(o["pixels"], o["split_seed"], o["test_images"])

    def true_decoder(self) -> Decoder:
        raise ConfigError("problem.learn_decoder: the digits problem has no true decoder (θ*)")

    def decoder(self, kind: str = "param", learn: bool = False, hidden: list[int] | None = None) -> Decoder:
        """The learned image decoder (``kind`` param and mlp alike: the problem's family is the MLP)."""
        self.check_shared(learn, 0)
        return ImageDecoder(self.z_dim, self.x_dim, hidden or [64, 64], self.options["likelihood"])

    def sample_data(self, n: int, generator: torch.Generator) -> Tensor:
        """The first n training images (the split is fixed by ``split_seed``, not by the session's seed)."""
        self.check_shared(True, n)
        return torch.from_numpy(self._split().train[:n].copy())

    def heldout(self) -> tuple[Tensor, int]:
        """The first ``eval_images`` test images [n, 64] (a fixed subset), and ``eval_every``."""
        o = self.options
        return torch.from_numpy(self._split().test[: o["eval_images"]].copy()), o["eval_every"]

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.z_dim, generator=generator)

def _floats(v: list[float], n: int | None, key: str) -> list[float]:
    """A checked list of numbers (check_option) of length n."""
    if n is not None and len(v) != n:
        raise ConfigError(f"problem.{key}: expected {n} numbers, got {len(v)} ({show(v)})")
    return v


def _gaussian(o: dict[str, Any]) -> Problem:
    dim = o["dim"]
    mu = o["mu"]
    if mu is None:
        mu = [0.5 if i % 2 == 0 else -0.5 for i in range(dim)]
    mu = _floats(mu, dim, "mu")
    x0 = _floats(o["x0"], dim, "x0") if o["x0"] is not None else [m + (1.0 if i == 0 else 0.5) for i, m in enumerate(mu)]
    half = 4.5
    box = (mu[0] - half, mu[0] + half, mu[min(1, dim - 1)] - half, mu[min(1, dim - 1)] + half)
    return Problem(
        "gaussian", "z ~ N(μ, I), x|z ~ N(z, I): p(z|x) = N((x+μ)/2, ½I) in closed form", dim, dim, box, x0,
        lambda truth: GaussianFamily(mu if truth else [0.0] * dim), o,
    )


def _bimodal(o: dict[str, Any]) -> Problem:
    s = o["sigma"]
    return Problem(
        "bimodal", "x|z ~ N((z₁², z₂), σ²I): two mirror modes z₁ = ±√x₁", 2, 2, (-3.0, 3.0, -3.0, 3.0),
        _floats(o["x0"], 2, "x0"),
        lambda truth: BimodalFamily(1.0, 1.0, math.log(s)) if truth else BimodalFamily(0.5, 0.5, 0.0), o,
    )


def _ring(o: dict[str, Any]) -> Problem:
    s = o["sigma"]
    return Problem(
        "ring", "scalar x|z ~ N(‖z‖, σ²): a thin ring of radius ≈ x", 1, 2, (-3.5, 3.5, -3.5, 3.5),
        _floats(o["x0"], 1, "x0"),
        lambda truth: RingFamily(1.0, 0.0, math.log(s)) if truth else RingFamily(0.5, 0.5, 0.0), o,
    )


def _banana(o: dict[str, Any]) -> Problem:
    s = o["sigma"]
    b = o["b"]
    return Problem(
        "banana", "scalar x|z ~ N(z₂ − b z₁², σ²): a curved ridge", 1, 2, (-3.5, 3.5, -2.5, 4.5),
        _floats(o["x0"], 1, "x0"),
        lambda truth: BananaFamily(b, 1.0, math.log(s)) if truth else BananaFamily(0.1, 0.5, 0.0), o,
    )


def _funnel(o: dict[str, Any]) -> Problem:
    s = o["s"]
    return Problem(
        "funnel", "Neal's funnel prior, x|z ~ N(z, s²I): the scale of z₂ varies as e^{z₁/2}", 2, 2,
        (-7.0, 5.0, -6.0, 6.0), _floats(o["x0"], 2, "x0"),
        lambda truth: FunnelFamily([1.0, 1.0], math.log(s)) if truth else FunnelFamily([0.5, 0.5], 0.0), o,
    )


def _mixture(o: dict[str, Any]) -> Problem:
    s = o["s"]
    weights = o["weights"]
    if len(weights) < 2:
        raise ConfigError(f"problem.weights: need at least 2 positive weights, got {show(weights)}")
    g = len(weights)
    radius = o["radius"]
    angles = torch.arange(g, dtype=torch.float64) * (2 * math.pi / g) + math.pi / 2
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    logits = [math.log(w / sum(weights)) for w in weights]  # finite: weights lie in [1e-30, 1e30]
    comp_std = o["comp_std"]
    edge = radius + 4 * comp_std + 0.5
    return Problem(
        "mixture", "prior = mixture of Gaussians on a circle, x|z ~ N(z, s²I), s large: unequal modes",
        2, 2, (-edge, edge, -edge, edge), _floats(o["x0"], 2, "x0"),
        lambda truth: MixtureFamily(logits if truth else [0.0] * g, math.log(s) if truth else 0.0, means, comp_std),
        o,
    )


def _digits(o: dict[str, Any]) -> Problem:
    if o["likelihood"] == "bernoulli" and o["pixels"] != "binary":
        raise ConfigError("problem.likelihood: 'bernoulli' is a distribution over binary pixels "
                          "(pixels = 'binary'); for scaled pixels choose continuous-bernoulli or gaussian")
    if o["eval_images"] > o["test_images"]:
        raise ConfigError(f"problem.eval_images: at most test_images = {o['test_images']}, got {o['eval_images']}")
    split = load_split(o["pixels"], o["split_seed"], o["test_images"])
    likelihood = o["likelihood"]
    return DigitsProblem(
        "digits", f"8 × 8 handwritten digits ({o['pixels']} pixels), x|z through a learned MLP ({likelihood})",
        split.train.shape[1], 2, (-4.0, 4.0, -4.0, 4.0), split.train[0].tolist(),
        lambda truth: ImageDecoder(2, split.train.shape[1], [64, 64], likelihood), o,
        image_shape=IMAGE_SHAPE, learned_decoder_only=True,
    )


# name -> (builder, option specs). Option defaults are chosen to make the picture clear.
PROBLEMS: dict[str, tuple[Callable[[dict[str, Any]], Problem], dict[str, OptionSpec]]] = {
    "gaussian": (_gaussian, {
        "dim": OptionSpec(2, "latent (and data) dimension", "int", 1, 1000),
        "mu": OptionSpec(None, "prior mean μ* (default [0.5, -0.5, ...])", "floats"),
        "x0": OptionSpec(None, "showcase observation, data[0] (default μ* + (1, 0.5, ...))", "floats"),
    }),
    "bimodal": (_bimodal, {
        "sigma": OptionSpec(0.5, "likelihood noise σ", "float", *SCALE),
        "x0": OptionSpec([2.0, 0.5], "showcase observation, data[0]", "floats"),
    }),
    "ring": (_ring, {
        "sigma": OptionSpec(0.15, "likelihood noise σ (ring thickness)", "float", *SCALE),
        "x0": OptionSpec([2.0], "showcase observation, data[0] (ring radius)", "floats"),
    }),
    "banana": (_banana, {
        "b": OptionSpec(0.5, "curvature b"),
        "sigma": OptionSpec(0.25, "likelihood noise σ", "float", *SCALE),
        "x0": OptionSpec([0.0], "showcase observation, data[0]", "floats"),
    }),
    "funnel": (_funnel, {
        "s": OptionSpec(1.5, "likelihood noise s", "float", *SCALE),
        "x0": OptionSpec([-1.0, 0.0], "showcase observation, data[0]", "floats"),
    }),
    "mixture": (_mixture, {
        "weights": OptionSpec([0.4, 0.25, 0.15, 0.12, 0.08], "mixture weights of the prior's components", "floats",
                              1e-30, 1e30),
        "radius": OptionSpec(2.5, "radius of the circle of component means", "float", *SCALE),
        "comp_std": OptionSpec(0.4, "std of each prior component", "float", *SCALE),
        "s": OptionSpec(2.5, "likelihood noise s (large: the posterior keeps the prior's modes)", "float", *SCALE),
        "x0": OptionSpec([0.3, 0.6], "showcase observation, data[0]", "floats"),
    }),
    "digits": (_digits, {
        "pixels": OptionSpec("binary", "binary (ink ≥ 8 of 16) or scaled to [0, 1]", "choice", choices=PIXELS),
        "likelihood": OptionSpec("bernoulli", "pixel likelihood given z", "choice", choices=LIKELIHOODS),
        "split_seed": OptionSpec(0, "seed of the fixed train/test split", "int", 0, 2**31 - 1),
        "test_images": OptionSpec(297, "images held out as the test split (the rest are the data)", "int",
                                  1, N_IMAGES - 1),
        "eval_images": OptionSpec(100, "test images (the split's first) in the held-out evaluation", "int",
                                  1, N_IMAGES - 1),
        "eval_every": OptionSpec(250, "steps between held-out evaluations (0: only at the end)", "int", 0, 10**9),
    }),
}


def make_problem(name: str, options: dict[str, Any] | None = None) -> Problem:
    """Build a problem from its registry name and (partial) options; unknown names/options raise."""
    if name not in PROBLEMS:
        raise ConfigError(f"problem.name: unknown problem {show(name)} (choose from {', '.join(PROBLEMS)})")
    builder, specs = PROBLEMS[name]
    options = dict(options or {})
    unknown = sorted(set(options) - set(specs))
    if unknown:
        raise ConfigError(
            f"problem.{show(unknown[0])[1:-1]}: unknown option for problem {name!r} (options: {', '.join(specs) or 'none'})"
        )
    resolved = {k: check_option(k, spec, options[k]) if k in options else spec.default for k, spec in specs.items()}
    return builder(resolved)
