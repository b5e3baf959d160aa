"""A fast, torch-free fake of ``Session.snapshot()`` for GUI tests and benchmarks.

It builds a realistic :class:`Snapshot` of the bimodal problem (z ~ N(0, I), x|z ~ N((z₁², z₂), σ²I)):
the exact log posterior on an n×n grid, a Gaussian q per run (mode-seeking for the first run, covering
both modes for the others), q samples, K particles with their normalised importance weights, and
histories of every metric as [T, 2] (step, value) rows. For 1-D data it uses the ring problem instead
(scalar x = ‖z‖ + noise), so the data panel shows a histogram.
"""
from __future__ import annotations

import numpy as np

from explorer.core.snapshot import METRICS, ModeView, RunView, Snapshot

BOX_2D = (-3.0, 3.0, -3.0, 3.0)
BOX_1D = (-3.5, 3.5, -3.5, 3.5)
OBJECTIVES = (("vae", 1), ("iwae", 64), ("rws", 64), ("dreg", 16))


def _logsumexp(a: np.ndarray) -> float:
    m = a.max()
    return float(m + np.log(np.exp(a - m).sum()))


def _log_gauss2(z1: np.ndarray, z2: np.ndarray, mean: tuple[float, float], std: tuple[float, float]) -> np.ndarray:
    return (-0.5 * (((z1 - mean[0]) / std[0]) ** 2 + ((z2 - mean[1]) / std[1]) ** 2)
            - np.log(2 * np.pi * std[0] * std[1]))


def make_snapshot(n_runs: int = 3, x_dim: int = 2, step: int = 500, n: int = 200, samples: int = 500,
                  k: int | None = None, history_len: int = 50, diverged: int | None = None,
                  observation: int = 0, seed: int = 0, title: str = "Mode-seeking vs mass-covering",
                  missing: tuple[str, ...] = ("snr_decoder",)) -> Snapshot:
    """A Snapshot with ``n_runs`` runs. ``k`` overrides every run's K; ``diverged`` is a run index whose
    ``diverged_step`` is set; ``missing`` metrics are left out of every run's metrics and history."""
    rng = np.random.default_rng(seed)
    box = BOX_2D if x_dim == 2 else BOX_1D
    h1, h2 = (box[1] - box[0]) / n, (box[3] - box[2]) / n
    z1 = (box[0] + h1 * (np.arange(n) + 0.5)).astype(np.float32)
    z2 = (box[2] + h2 * (np.arange(n) + 0.5)).astype(np.float32)
    g1, g2 = np.meshgrid(z1.astype(np.float64), z2.astype(np.float64), indexing="ij")  # [i₁, i₂]

    # data: bimodal x = (z₁², z₂) + noise, or ring x = ‖z‖ + noise; x_obs = data[observation]
    sigma = 0.5 if x_dim == 2 else 0.15
    z_data = rng.standard_normal((512, 2))
    if x_dim == 2:
        data = np.stack([z_data[:, 0] ** 2, z_data[:, 1]], 1) + sigma * rng.standard_normal((512, 2))
        data[0] = (2.0, 0.5)
    else:
        data = np.linalg.norm(z_data, axis=1, keepdims=True) + sigma * rng.standard_normal((512, 1))
        data[0] = (2.0,)
    x = data[observation]

    log_prior = -0.5 * (g1**2 + g2**2) - np.log(2 * np.pi)
    if x_dim == 2:
        log_lik = -0.5 * (((x[0] - g1**2) / sigma) ** 2 + ((x[1] - g2) / sigma) ** 2) - np.log(2 * np.pi * sigma**2)
    else:
        r = np.hypot(g1, g2)
        log_lik = -0.5 * ((x[0] - r) / sigma) ** 2 - 0.5 * np.log(2 * np.pi * sigma**2)
    log_joint = log_prior + log_lik
    log_cell = np.log(h1 * h2)
    log_px = _logsumexp(log_joint) + log_cell
    log_post = log_joint - log_px

    runs = []
    history: dict[str, dict[str, np.ndarray]] = {}
    steps = np.linspace(0, step, history_len).round()
    for i in range(n_runs):
        objective, k_i = OBJECTIVES[i % len(OBJECTIVES)]
        k_i = k if k is not None else k_i
        name = f"{objective.upper()} K={k_i}" + (f" #{i + 1}" if i >= len(OBJECTIVES) else "")
        mode = np.sqrt(max(float(x[0]), 0.1)) if x_dim == 2 else 1.4
        if i == 0:  # mode-seeking: one mode
            mean, std = (mode, float(x[-1]) * 0.8 if x_dim == 2 else 0.0), (0.28, 0.42)
        else:  # covering
            mean, std = (0.15 * i, 0.3 if x_dim == 2 else 0.0), (1.1 + 0.1 * i, 0.6 + 0.2 * i)
        log_q = _log_gauss2(g1, g2, mean, std)
        p = np.exp(log_post) * h1 * h2
        q = np.exp(log_q) * h1 * h2
        kl_qp = float(np.sum(q * (log_q - log_post)))
        kl_pq = float(np.sum(p * (log_post - log_q)))
        q_samples = (np.asarray(mean) + np.asarray(std) * rng.standard_normal((samples, 2))).astype(np.float32)
        particles = (np.asarray(mean) + np.asarray(std) * rng.standard_normal((k_i, 2))).astype(np.float32)
        log_w = _interp_log_post(particles, z1, z2, log_post) + log_px - _log_gauss2(
            particles[:, 0], particles[:, 1], mean, std)
        weights = np.exp(log_w - log_w.max())
        weights /= weights.sum()
        ess_frac = float(1.0 / np.sum(weights**2) / k_i)
        metrics = {
            "log_px": log_px, "elbo": log_px - kl_qp + 0.1 * rng.standard_normal(),
            "bound": log_px - kl_qp / np.sqrt(k_i), "kl_qp": kl_qp, "kl_pq": kl_pq, "ess_frac": ess_frac,
            "snr_encoder": 2.0 / np.sqrt(k_i) + 0.05, "snr_decoder": 3.0 * np.sqrt(k_i),
            "elbo_exact": log_px - kl_qp, "q_mass": 0.999, "n_modes": 2.0, "modes_covered": 1.0 + (i > 0),
        }
        metrics = {m: float(v) for m, v in metrics.items() if m not in missing}
        modes = ()
        if x_dim == 2:
            modes = (ModeView((mode, float(x[1]) * 0.8), 0.5, 0.98 if i == 0 else 0.5),
                     ModeView((-mode, float(x[1]) * 0.8), 0.5, 0.01 if i == 0 else 0.5))
        runs.append(RunView(
            index=i, name=name, objective=objective, encoder="gaussian", k=k_i, m=1, beta=0.5, alpha=0.5,
            lr=3e-3, q_samples=q_samples, particles=particles, weights=weights,
            log_post=log_post.astype(np.float32), log_q=log_q.astype(np.float32), metrics=metrics, modes=modes,
            diverged_step=(step - 20 if diverged == i else None),
            warnings=(f"diverged at step {step - 20}",) if diverged == i else (),
        ))
        hist = {}
        decay = np.exp(-steps / max(step, 1) * 3)
        for metric in METRICS:
            if metric not in metrics:
                continue
            final = metrics[metric]
            values = final + (2.0 * decay if metric not in ("ess_frac", "q_mass") else -0.5 * final * decay)
            if metric.startswith("snr"):
                values = final * (1 + 3 * decay) * np.exp(0.2 * rng.standard_normal(history_len))
                keep = steps % 25 == 0 if history_len > 4 else np.ones_like(steps, bool)
                hist[metric] = np.stack([steps[keep], values[keep]], 1)
                continue
            if metric == "elbo":
                values = values + 0.3 * rng.standard_normal(history_len)
            hist[metric] = np.stack([steps, values], 1)
        history[name] = hist
    return Snapshot(
        step=step, title=title, description="A fake snapshot for GUI tests.", problem="bimodal" if x_dim == 2 else "ring",
        device="cpu", box=box, z1=z1, z2=z2, data=data.astype(np.float32), observation=observation,
        runs=tuple(runs), history=history, snr_replicates=64, snr_floor=0.8 / np.sqrt(64), steps_per_s=120.0,
        paused=False,
    )


def _interp_log_post(points: np.ndarray, z1: np.ndarray, z2: np.ndarray, log_post: np.ndarray) -> np.ndarray:
    """Nearest-cell lookup of the grid log posterior (points outside the box take the edge cell)."""
    i = np.clip(np.searchsorted(z1, points[:, 0]), 0, len(z1) - 1)
    j = np.clip(np.searchsorted(z2, points[:, 1]), 0, len(z2) - 1)
    return log_post[i, j]
