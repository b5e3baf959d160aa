"""The frozen, numpy-only picture of a Session at one step: the only thing that crosses from the worker
thread to the GUI, and what ``shot`` renders headless. Grids are indexed [i₁, i₂] (z₁ along axis 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

EXACT_ABS = 1e-3  # nats: a number is called exact when its error is within max(EXACT_ABS, EXACT_REL·|value|)
EXACT_REL = 1e-3


def tolerance(value: float) -> float:
    """The error within which a number is called exact."""
    return max(EXACT_ABS, EXACT_REL * abs(value)) if math.isfinite(value) else EXACT_ABS


def is_exact(value: float, err: float) -> bool:
    return math.isfinite(value) and err <= tolerance(value)


# Metric names shared by Snapshot.history, metrics.csv and summary.json ("final").
METRICS = (
    "log_px",  # log p_θ(x_obs) by adaptive cubature (core/exact.py); its error estimate is log_px_err
    "elbo",  # MC ELBO for x_obs, the run's K
    "bound",  # MC L_K for x_obs, the run's K (logsumexp − log K)
    "kl_qp",  # KL(q‖p(z|x_obs)) by cubature, ± kl_qp_err
    "kl_pq",  # KL(p(z|x_obs)‖q) by cubature, ± kl_pq_err
    "ess_frac",  # ESS / K of the run's particles for x_obs
    "snr_encoder",  # mean per-parameter gradient SNR of φ (last probe)
    "snr_decoder",  # same for θ (absent when θ is frozen)
    "elbo_exact",  # E_q[log p(x, z) − log q] by cubature = log p(x) − KL(q‖p), ± elbo_exact_err
    "q_mass",  # q's mass inside the posterior's region (RunView.post_box)
    "n_modes",  # posterior basins holding ≥ 5 % of the mass
    "modes_covered",  # of those, how many hold ≥ 5 % of q's mass
    "log_px_err",  # error estimates (quadrature + truncation) of the four numbers above, in nats: a number
    "kl_qp_err",  # is called exact when its error is within exact.tolerance(value) = max(1e-3, 1e-3·|value|)
    "kl_pq_err",
    "elbo_exact_err",
    # the gap log p(x) − ELBO(q_φ) = KL(q‖p) split at the per-x optimum q* of the run's encoder family
    # (core/amortisation.py; Cremer, Li & Duvenaud 2018), exact ELBOs with their errors:
    "approximation_gap",  # log p(x) − ELBO(q*): what the family cannot do at this x
    "amortisation_gap",  # ELBO(q*) − ELBO(q_φ): what one encoder for every x gives away here
    "approximation_gap_err",
    "amortisation_gap_err",
    # the same split of L_K (runs with K > 1 and a K-particle objective), by Monte Carlo, ± its standard error
    "approximation_gap_k",  # log p(x) − L_K(q*)
    "amortisation_gap_k",  # L_K(q*) − L_K(q_φ), on common random numbers
    "approximation_gap_k_err",
    "amortisation_gap_k_err",
    "snr_encoder_param",  # |mean|/sd of the one encoder parameter the gradient histograms show (last probe)
    "snr_decoder_param",  # same for the decoder parameter (absent when θ is frozen)
    # the held-out evaluation of an image problem (core/heldout.py): averages over its fixed test images,
    # at the step in metrics.csv's test_step (summary.json's final: the last step)
    "test_log_px",  # exact log p_θ(x) by cubature, averaged; its error estimate is test_log_px_err
    "test_kl_qp",  # exact KL(q‖p(z|x)), averaged; ± test_kl_qp_err
    "test_elbo",  # MC ELBO with the run's K, averaged
    "test_bound",  # MC L_K with the run's K (and M), averaged
    "test_log_px_err",
    "test_kl_qp_err",
)


@dataclass(frozen=True)
class ModeView:
    center: tuple[float, float]
    p_mass: float
    q_mass: float


@dataclass(frozen=True)
class GradientSample:
    """The SNR probe's R replicate gradient estimates of one scalar parameter (the paper's Fig. 2)."""

    group: str  # "encoder" (φ) or "decoder" (θ)
    parameter: str  # NAME[i] of the module's named_parameters
    label: str  # what the parameter is, in words
    values: np.ndarray  # [n ≤ R] float32: the first n replicates' gradients of the objective (ascent direction)
    mean: float  # over all R replicates (not only the n kept): the probe's own numbers
    sd: float  # ddof = 1
    replicates: int  # R
    step: int  # the step of the probe


@dataclass(frozen=True)
class RunView:
    index: int
    name: str
    objective: str
    encoder: str
    k: int
    m: int
    beta: float
    alpha: float
    lr: float
    q_samples: np.ndarray  # [S, 2] samples of q(z|x_obs)
    particles: np.ndarray  # [K, 2] the K particles of one group for x_obs
    weights: np.ndarray  # [K] their normalised importance weights w̃ (sum to 1)
    log_post: np.ndarray  # [n, n] normalised log p_θ(z|x_obs) on the n × n grid over post_box
    log_q: np.ndarray  # [n', n'] log q_φ(z|x_obs) on the n' × n' grid over q_box
    metrics: Mapping[str, float]  # the METRICS above; a value is absent (not NaN) when unknown
    modes: tuple[ModeView, ...]
    diverged_step: int | None = None  # the step at which the run diverged, or None
    warnings: tuple[str, ...] = ()
    # the regions that follow the mass, (z1_min, z1_max, z2_min, z2_max); None: the snapshot's box
    post_box: tuple[float, float, float, float] | None = None  # where p(z|x_obs) has its mass
    q_box: tuple[float, float, float, float] | None = None  # where q has its mass
    view_box: tuple[float, float, float, float] | None = None  # what the panel should show of both
    approximate: str = ""  # one short line saying why an exact number is only approximate ("" when none is)
    # the per-x optimum q* of the run's family for x_obs (core/amortisation.py), None until it is fitted
    q_star_log_q: np.ndarray | None = None  # [n', n'] log q*(z) on the n' × n' grid over q_star_box
    q_star_box: tuple[float, float, float, float] | None = None
    q_star_note: str = ""  # what q* is or why it is missing ("fitting q* …", "q* of step 120")
    gradients: tuple[GradientSample, ...] = ()  # the last probe's replicates of the chosen parameters
    # each particle's share of the φ-objective's gradient w.r.t. q's location for x_obs (core/anatomy.py),
    # for the particles above ([K, 2], group 1 of M), their sum over all M·K particles ([2]), the location
    # itself ([2], where the sum is drawn from) and what it is ("q's mean", or the flow's shift); None
    # unless view.arrows
    arrows: np.ndarray | None = None
    arrow_sum: np.ndarray | None = None
    arrow_origin: np.ndarray | None = None
    arrows_wrt: str = ""
    # image problems (Snapshot.image_shape set): the decoder's mean image E[x|z] at q's mean for x_obs
    # ([x_dim]), and over the manifold grid ([n, n, x_dim], indexed [i₁, i₂] over Snapshot.manifold_box)
    reconstruction: np.ndarray | None = None
    manifold: np.ndarray | None = None


@dataclass(frozen=True)
class Snapshot:
    step: int
    title: str
    description: str
    problem: str
    device: str
    box: tuple[float, float, float, float]  # the problem's latent box (z1_min, z1_max, z2_min, z2_max)
    z1: np.ndarray  # [n] centres of the n × n grid over box (the runs' own grids are in RunView)
    z2: np.ndarray  # [n]
    data: np.ndarray  # [N, x_dim] the data set in x-space
    observation: int | None  # index of x_obs in data, None when x_obs is a free point of x-space
    runs: tuple[RunView, ...]
    # run name -> metric name -> [T, 2] array of (step, value) rows, finite values only (a step where a
    # metric is unknown or non-finite has no row): this is what the curves plot, NaN-free by construction
    history: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    snr_replicates: int = 64
    snr_floor: float = 0.1  # 0.8/√R: SNRs below this cannot be told from zero
    snr_every: int = 0  # steps between SNR probes (view.snr_every, or what "auto" chose; 0: no probe)
    steps_per_s: float = 0.0
    paused: bool = True
    warnings: tuple[str, ...] = ()
    x_obs: np.ndarray | None = None  # [x_dim] the shown observation (default: data[observation])
    show_gradients: bool = False  # view.gradients: the gradient histograms panel
    show_arrows: bool = False  # view.arrows: the per-particle gradient arrows on the posterior panels
    image_shape: tuple[int, int] | None = None  # x is an image of rows × columns (row-major): draw it so
    manifold_box: tuple[float, float, float, float] | None = None  # the z region of RunView.manifold

    def __post_init__(self) -> None:
        if self.x_obs is None and self.observation is not None:
            object.__setattr__(self, "x_obs", self.data[self.observation])
