"""Core speed: the headless Session against a bare PyTorch loop, the vmapped SNR probe against a Python
loop, and the time of the paper's SNR sweep (the command of docs/snr.md).

(a) Session steps/s ÷ bare-loop steps/s, same model, objective, K, batch and data, measured side by side
    (A, B, A, B ...); once with the Session's metric logging and SNR probes at the preset's settings and
    once with them off (view.snr_every = 0, view.log_every huge), so the overhead of the views is visible.
    Target ≥ 0.95 with them off.
(b) replicate_gradients (torch.func.vmap) ÷ replicate_gradients_loop at R = 1000, K = 64. Target ≥ 10×.
(c) wall time of the full ``snr`` sweep of docs/snr.md (median, min, max over the repeats).
(d) a headless Session with the default views (exact numbers every 10 steps, the SNR probe on its "auto"
    cadence) ÷ the same Session with them off, for IWAE K = 64 and K = 1024, one run and four. Target ≥ 0.7.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from typing import Callable

import torch
from torch import nn

from benchmarks import Options, Row
from explorer.core.config import config_from_dict, load_preset
from explorer.core.diagnostics import replicate_gradients, replicate_gradients_loop
from explorer.core.optim_step import adam_step
from explorer.core.session import Session
from explorer.core.snr_sweep import perturbed_optimum, snr_sweep

LOG_2PI = math.log(2.0 * math.pi)

# the sweep recorded in docs/snr.md
SWEEP_FULL = dict(dim=2, estimators=("vae", "iwae", "miwae", "ciwae", "piwae", "dreg", "stl", "rws"), ms=(4,),
                  ks=(1, 3, 10, 30, 100, 300, 1000), replicates=10_000)
SWEEP_QUICK = dict(dim=2, estimators=("iwae", "miwae", "dreg"), ms=(4,), ks=(1, 10, 100), replicates=1000)


# --------------------------------------------------------------------------- measuring
def interleaved(a: Callable[[], float], b: Callable[[], float], repeats: int) -> list[tuple[float, float]]:
    """Run a and b alternately (after one warm-up each); each returns the seconds it measured."""
    a(), b()
    return [(a(), b()) for _ in range(repeats)]


def ratio_row(name: str, pairs: list[tuple[float, float]], invert: bool, target: float | None, note: str = "",
              **extra) -> Row:
    """Per pair: a_time / b_time (invert=False: B faster → <1) or b_time / a_time."""
    ratios = [(tb / ta) if invert else (ta / tb) for ta, tb in pairs]
    med = statistics.median(ratios)
    return Row(name, "ratio", med, min(ratios), max(ratios), "×", f"≥ {target:g}" if target else "",
               None if target is None else med >= target, len(pairs), note, extra)


def absolute_row(name: str, values: list[float], unit: str, note: str = "") -> Row:
    return Row(name, "absolute", statistics.median(values), min(values), max(values), unit, "", None,
               len(values), note)


# --------------------------------------------------------------------------- a bare hand-written loop
class BareLoop:
    """The same model as the Session's run, written out by hand: bimodal problem with the decoder frozen
    at θ* (x|z ~ N((z₁², z₂), σ²I), σ = 0.5), the MLP Gaussian encoder, Adam, one objective."""

    def __init__(self, data: torch.Tensor, objective: str, k: int, batch: int, hidden=(64, 64), lr=0.003,
                 sigma: float = 0.5, seed: int = 0, lean: bool = False):
        torch.manual_seed(seed)
        layers, width = [], data.shape[1]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, 4))
        self.net = nn.Sequential(*layers)
        try:
            self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, fused=True)
        except (RuntimeError, TypeError):
            self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.data, self.objective, self.k, self.batch = data, objective, k, batch
        self.log_sigma = math.log(sigma)
        self.gen = torch.Generator().manual_seed(seed)
        # lean: the Session's two speed tricks (2-long sums as t₀ + t₁, Adam's fused kernel called directly)
        self.sum2 = (lambda t: torch.add(*t.unbind(-1))) if lean else (lambda t: t.sum(-1))
        self.opt_step = (lambda: adam_step(self.opt)) if lean else self.opt.step

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        prior = -0.5 * self.sum2(z**2) - LOG_2PI
        mean = torch.stack([z[..., 0] ** 2, z[..., 1]], -1)
        lik = self.sum2(-0.5 * ((x - mean) / math.exp(self.log_sigma)) ** 2 - self.log_sigma - 0.5 * LOG_2PI)
        return prior + lik

    def step(self) -> None:
        n = self.data.shape[0]
        x = self.data[torch.randperm(n, generator=self.gen)[: self.batch]]
        eps = torch.randn((1, self.k, x.shape[0], 2), generator=self.gen)
        mean, raw = self.net(x).chunk(2, -1)
        log_std = raw.clamp(-7.0, 3.0)
        z = mean + torch.exp(log_std) * eps
        log_q = -0.5 * self.sum2(eps**2) - LOG_2PI - self.sum2(log_std)
        log_w = self.log_joint(x, z) - log_q
        if self.objective == "vae":
            loss = -log_w.mean()
        elif self.objective == "iwae":
            loss = -(torch.logsumexp(log_w, 1) - math.log(self.k)).mean()
        elif self.objective == "rws":  # wake-φ: −Σ w̃ log q(sg(z)|x)
            w = torch.softmax(log_w.detach(), 1)
            zd = z.detach()
            log_q_d = self.sum2(-0.5 * ((zd - mean) * torch.exp(-log_std)) ** 2) - LOG_2PI - self.sum2(log_std)
            loss = -(w * log_q_d).sum(1).mean()
        else:
            raise ValueError(self.objective)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_step()


def _timed(fn: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def _session_vs_bare(name: str, cfg, opts: Options, note: str, lean: bool = False) -> Row:
    session = Session(cfg, device="cpu")
    loops = [BareLoop(session.data.cpu(), r.objective, r.k, cfg.run_train(i).batch_size,
                      tuple(cfg.run_train(i).hidden), cfg.run_train(i).lr, seed=i, lean=lean)
             for i, r in enumerate(cfg.runs)]
    n = 50 if opts.quick else 100  # a multiple of the preset's log (10) and probe (25) periods

    def a() -> float:
        t0 = time.perf_counter()
        session.step(n)
        return time.perf_counter() - t0

    def b() -> float:
        return _timed(lambda: [loop.step() for loop in loops], n)

    pairs = interleaved(a, b, opts.reps(7, 5))
    steps_per_s = statistics.median(n / ta for ta, _ in pairs)
    return ratio_row(name, pairs, invert=True, target=0.95 if "off" in name and not lean else None,
                     note=f"{note}; Session {steps_per_s:.0f} steps/s")


# --------------------------------------------------------------------------- (a) rows
_IWAE = {"problem": {"name": "bimodal"}, "train": {"encoder": "gaussian", "batch_size": 64},
         "runs": [{"objective": "iwae", "k": 64}]}
_OFF = ["view.snr_every=0", "view.log_every=1000000000"]


def row_iwae_views_on(opts: Options) -> list[Row]:
    cfg = config_from_dict({**_IWAE, "view": {"grid": 200, "snr_every": 25, "snr_replicates": 64, "log_every": 10}})
    return [_session_vs_bare("Session ÷ bare loop, IWAE K=64 B=64, views on", cfg, opts,
                             "grid 200 every 10 steps, SNR R=64 every 25")]


def row_iwae_views_off(opts: Options) -> list[Row]:
    cfg = config_from_dict({**_IWAE, "view": {"grid": 200, "snr_every": 0, "log_every": 10**9}})
    return [_session_vs_bare("Session ÷ bare loop, IWAE K=64 B=64, views off", cfg, opts, "training only")]


def row_iwae_views_off_lean(opts: Options) -> list[Row]:
    """The bare loop given the Session's two speed tricks too: what is left is the Session's bookkeeping."""
    cfg = config_from_dict({**_IWAE, "view": {"grid": 200, "snr_every": 0, "log_every": 10**9}})
    return [_session_vs_bare("Session ÷ lean bare loop, IWAE K=64 B=64, views off", cfg, opts,
                             "bare loop also sums 2-long axes by addition, calls fused Adam directly", lean=True)]


def row_scene_views_on(opts: Options) -> list[Row]:
    cfg = load_preset("mode-seeking")
    return [_session_vs_bare("Session ÷ 3 bare loops, mode-seeking, views on", cfg, opts,
                             "preset: grid 200 every 10, SNR R=64 every 25")]


def row_scene_views_off(opts: Options) -> list[Row]:
    cfg = load_preset("mode-seeking", _OFF)
    return [_session_vs_bare("Session ÷ 3 bare loops, mode-seeking, views off", cfg, opts, "training only")]


def row_threads(opts: Options) -> list[Row]:
    """One intra-op thread against one per CPU (torch's usual default), for the mode-seeking scene (views off)."""
    default, many = torch.get_num_threads(), os.cpu_count() or 1
    if many == 1:
        return []
    cfg = load_preset("mode-seeking", _OFF)
    session = Session(cfg, device="cpu")
    n = 20 if opts.quick else 100

    def run(threads: int) -> float:
        torch.set_num_threads(threads)
        try:
            return _timed(lambda: session.step(1), n)
        finally:
            torch.set_num_threads(default)

    pairs = interleaved(lambda: run(many), lambda: run(1), opts.reps(7, 5))
    return [ratio_row(f"mode-seeking steps/s, 1 thread ÷ {many} threads", pairs, invert=False, target=None,
                      note="> 1: extra intra-op threads slow these tiny ops down")]


# --------------------------------------------------------------------------- (b) the vmapped probe
def _probe_row(objective: str, opts: Options) -> Row:
    r, k = (200, 64) if opts.quick else (1000, 64)
    setup = perturbed_optimum(2, 0.1, 0)
    dec, enc, x = setup.decoder, setup.encoder, setup.x
    eps = torch.randn((r, 1, k, 1, 2), generator=torch.Generator().manual_seed(0))
    gt_v, gp_v = replicate_gradients(dec, enc, objective, x, eps)
    gt_l, gp_l = replicate_gradients_loop(dec, enc, objective, x, eps)
    same = torch.allclose(gp_v, gp_l, rtol=1e-4, atol=1e-6) and torch.allclose(gt_v, gt_l, rtol=1e-4, atol=1e-6)

    def a() -> float:
        return _timed(lambda: replicate_gradients(dec, enc, objective, x, eps), 1)

    def b() -> float:
        return _timed(lambda: replicate_gradients_loop(dec, enc, objective, x, eps), 1)

    pairs = interleaved(a, b, opts.reps(7, 5))
    vmap_ms = statistics.median(ta for ta, _ in pairs) * 1e3
    return ratio_row(f"SNR probe vmap ÷ loop speed-up, {objective} R={r} K={k}", pairs, invert=True, target=10.0,
                     note=f"gaussian/linear (the snr setting); vmap {vmap_ms:.0f} ms; "
                          f"same gradients: {'yes' if same else 'NO'}")


def row_probe_iwae(opts: Options) -> list[Row]:
    return [_probe_row("iwae", opts)]


def row_probe_dreg(opts: Options) -> list[Row]:
    return [_probe_row("dreg", opts)]


# --------------------------------------------------------------------------- (c) the sweep
def row_sweep(opts: Options) -> list[Row]:
    spec = SWEEP_QUICK if opts.quick else SWEEP_FULL
    times = []
    for i in range(opts.reps(5, 5)):
        t0 = time.perf_counter()
        snr_sweep(spec["dim"], spec["estimators"], spec["ks"], spec["ms"], spec["replicates"], 0.1, 0)
        times.append(time.perf_counter() - t0)
    what = (f"{len(spec['estimators'])} estimators, M={spec['ms'][0]}, K={','.join(map(str, spec['ks']))}, "
            f"R={spec['replicates']}")
    label = "snr sweep (quick subset)" if opts.quick else "snr sweep of docs/snr.md"
    return [absolute_row(f"{label}, wall time", times, "s", what)]


# --------------------------------------------------------------------------- (d) the views' share
def _views_on_vs_off(k: int, runs: int, opts: Options) -> Row:
    base = {"problem": {"name": "bimodal"}, "train": {"encoder": "gaussian", "batch_size": 64},
            "runs": [{"objective": "iwae", "k": k}] * runs}
    on = Session(config_from_dict(base), device="cpu")  # the default view settings
    off = Session(config_from_dict({**base, "view": {"snr_every": 0, "log_every": 10**9}}), device="cpu")
    n = on.probe_every * (1 if opts.quick else 2)  # whole probe periods (each a multiple of log_every 10 here)
    if n % on.config.view.log_every:
        n += on.config.view.log_every - n % on.config.view.log_every

    def a() -> float:
        return _timed(lambda: on.step(n), 1)

    def b() -> float:
        return _timed(lambda: off.step(n), 1)

    pairs = interleaved(a, b, opts.reps(5, 3))
    return ratio_row(f"headless views on ÷ off, IWAE K={k}, {runs} run{'s' if runs > 1 else ''}", pairs,
                     invert=True, target=0.7,
                     note=f"default views: exact numbers every 10 steps, SNR R=64 every {on.probe_every} (auto)")


def row_views_share(opts: Options) -> list[Row]:
    return [_views_on_vs_off(k, runs, opts) for k in (64, 1024) for runs in (1, 4)]


ROWS: list[Callable[[Options], list[Row]]] = [
    row_iwae_views_off, row_iwae_views_off_lean, row_iwae_views_on, row_scene_views_off, row_scene_views_on,
    row_views_share, row_threads,
    row_probe_iwae, row_probe_dreg, row_sweep,
]
