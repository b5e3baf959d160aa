"""The paper's SNR-vs-K experiment (Rainforth et al. 2018, §5.1, Figs. 2–3), headless.

Gaussian problem z ~ N(μ, I_d), x|z ~ N(z, I_d), linear encoder q = N(Ax + b, (2/3) I). At the analytic
optimum (μ* = mean of the data, A* = I/2, b* = μ*/2) every parameter is perturbed by N(0, ε²). For one
data point and each estimator, M and K we draw R replicate gradients (vectorised) and report the mean
per-parameter SNR of the encoder (φ = A, b) and decoder (θ = μ) gradients. Theory: decoder SNR ∝ √(MK);
IWAE encoder SNR ∝ √(M/K); DReG encoder SNR ∝ √K.

``dump`` (``snr --dump-replicates``) also keeps every replicate gradient of one encoder and one decoder
parameter per point, as gradients of the objective (the ascent direction, as the window's histograms show
them), so the paper's Fig. 2 can be remade from the JSON.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .diagnostics import ParameterReplicates, choose_parameters, gradient_snr, snr_floor
from .models import LinearEncoder
from .objectives import OBJECTIVES
from .problems import make_problem

# fitted log-log slope of SNR against K that theory predicts, where it makes a prediction
THEORY_ENCODER = {"iwae": -0.5, "miwae": -0.5, "piwae": -0.5, "dreg": 0.5, "vae": 0.5}
THEORY_DECODER = 0.5
FLOOR_FACTOR = 2.0


@dataclass(frozen=True)
class SweepSetup:
    decoder: torch.nn.Module
    encoder: LinearEncoder
    x: torch.Tensor  # [1, d]: the single data point whose gradients we probe


def perturbed_optimum(dim: int, perturb: float, seed: int, n_data: int = 1024) -> SweepSetup:
    """The analytic optimum of the gaussian problem's linear model, perturbed by N(0, perturb²)."""
    problem = make_problem("gaussian", {"dim": dim})
    gen = torch.Generator().manual_seed(seed)
    data = problem.sample_data(n_data + 1, gen)[1:]  # drop the showcase point: plain draws from θ*
    mu_star = data.mean(0)
    decoder = problem.decoder("param", learn=True)
    encoder = LinearEncoder(dim, dim)
    with torch.no_grad():
        noise = lambda shape: perturb * torch.randn(shape, generator=gen)  # noqa: E731
        decoder.mu.copy_(mu_star + noise(mu_star.shape))
        encoder.A.copy_(0.5 * torch.eye(dim) + noise((dim, dim)))
        encoder.b.copy_(0.5 * mu_star + noise((dim,)))
    return SweepSetup(decoder, encoder, data[:1])


def snr_sweep(dim: int = 2, estimators: Iterable[str] = ("iwae", "dreg"), ks: Iterable[int] = (1, 10, 100),
              ms: Iterable[int] = (1,), replicates: int = 10_000, perturb: float = 0.1, seed: int = 0,
              beta: float = 0.5, alpha: float = 0.5, device: str = "cpu",
              progress: Callable[[str], None] | None = None, dump: tuple[str, str] | None = None) -> dict[str, Any]:
    """Run the sweep; returns the ``snr --json`` contract dict (plus wall_s and slopes). ``dump``: the
    (encoder, decoder) parameters, ``NAME[i]`` ("" for the defaults), whose replicates each result keeps."""
    setup = perturbed_optimum(dim, perturb, seed)
    dev = torch.device(device)
    decoder, encoder, x = setup.decoder.to(dev), setup.encoder.to(dev), setup.x.to(dev)
    keep = choose_parameters(decoder, encoder, *dump, keys=("--dump-replicates",) * 2) if dump is not None else None
    results = []
    t0 = time.perf_counter()
    for estimator in estimators:
        m_list = list(ms) if OBJECTIVES[estimator].uses_m() else [1]
        for m in m_list:
            for k in ks:
                gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + 7919 * k + m)
                res = gradient_snr(decoder, encoder, estimator, x, k, m, replicates, gen, beta, alpha,
                                   keep_parameters=keep, keep=replicates)
                results.append({"estimator": estimator, "m": m, "k": k,
                                "snr_encoder": res.encoder_mean, "snr_decoder": res.decoder_mean})
                if keep is not None:
                    results[-1].update({f"replicates_{group}": _dumped(kept) for group, kept in
                                        (("encoder", res.encoder_parameter), ("decoder", res.decoder_parameter))})
                if progress:
                    progress(f"{estimator} M={m} K={k}")
    return {"problem": "gaussian", "dim": dim, "replicates": replicates, "perturb": perturb, "seed": seed,
            "beta": beta, "alpha": alpha, "results": results, "slopes": fit_slopes(results, snr_floor(replicates)),
            "wall_s": time.perf_counter() - t0}


def _dumped(kept: ParameterReplicates | None) -> dict[str, Any] | None:
    """One parameter's replicates for the JSON: gradients of the objective (ascent), with mean and sd."""
    if kept is None:
        return None
    return {"parameter": kept.name, "mean": -kept.mean, "sd": kept.sd, "values": (-kept.values).tolist()}


def fit_slopes(results: list[dict[str, Any]], floor: float = 0.0) -> list[dict[str, Any]]:
    """Least-squares slope of log SNR against log K, per (estimator, M), with theory beside it.

    Points below ``FLOOR_FACTOR × floor`` (floor = 0.8/√R) are left out of the fit: there the probe
    measures its own estimation floor, not the SNR. ``k_fitted`` lists the K values that were used.
    """
    out = []
    keys = sorted({(r["estimator"], r["m"]) for r in results}, key=lambda t: (list(OBJECTIVES).index(t[0]), t[1]))
    for estimator, m in keys:
        rows = [r for r in results if r["estimator"] == estimator and r["m"] == m]
        entry: dict[str, Any] = {"estimator": estimator, "m": m}
        for part in ("encoder", "decoder"):
            kept = [r for r in rows if r[f"snr_{part}"] is not None and math.isfinite(r[f"snr_{part}"])
                    and r[f"snr_{part}"] > FLOOR_FACTOR * floor]
            pts = [(math.log(r["k"]), math.log(r[f"snr_{part}"])) for r in kept]
            slope = float(np.polyfit(*zip(*pts), 1)[0]) if len({p[0] for p in pts}) >= 2 else None
            entry[f"{part}_slope"] = slope
            entry[f"{part}_k_fitted"] = [r["k"] for r in kept]
        entry["theory_encoder"] = THEORY_ENCODER.get(estimator)
        entry["theory_decoder"] = THEORY_DECODER
        out.append(entry)
    return out
