"""The held-out evaluation of an image problem: each run's exact log p(x) and KL(q‖p), with the MC ELBO and
L_K beside them, averaged over a fixed set of test images (``Problem.heldout``), as a background job of
the Session (``Session._jobs``: the Player gives it slices of time beside training).

A job evaluates *copies* of the runs' decoders and encoders taken at the step it was queued (training goes
on meanwhile), one image at a time, with the shown observation's own tools (core/exact.py): log p(x) by
adaptive cubature over the region that the mass search finds from the problem's box and q's region;
E_q[log p(x, z) − log q] in q's noise space; KL(q‖p) = log p(x) − that ELBO. Each image's error estimate
bounds its own error, so the error of an average is the average of the errors.

One image's integral takes ~80 000 decoder evaluations (0.1–0.2 s on one busy core), far more than a
frame. So a job *replays* it (:class:`Replay`): the integration is deterministic given the values of
log p(x, z), so each slice runs it again from the start, answers the evaluations already made from a
memo and makes new ones in chunks of ``CHUNK`` points until the slice's time is up; then an exception
unwinds it. What is replayed is numpy bookkeeping, and the result is bit for bit that of one
uninterrupted integration (a test checks it).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import exact
from .cubature import Box, hull
from .objectives import draw, log_mean_exp
from .seeding import derive

CHUNK = 4096  # decoder evaluations between two looks at the clock (~3 ms of a 64-pixel MLP decoder)
MIN_SLICE_S = 0.02  # a slice lasts at least this long (replaying an image takes up to ~13 ms of it; a frame is 33)
Q_BOX_C = 3.0  # q's region seeds the search: the image of the ε-square [−3, 3]²
RIM = 32  # points per side of that square
F32_EPS = float(torch.finfo(torch.float32).eps)
#: the metrics a finished evaluation gives each run (with ``test_step`` and ``test_images``)
HELDOUT_METRICS = ("test_log_px", "test_kl_qp", "test_elbo", "test_bound", "test_log_px_err", "test_kl_qp_err")

Evaluate = Callable[[str, np.ndarray], np.ndarray]  # (kind, inputs [N, 2]) -> outputs [N, ...]


class _OutOfTime(Exception):
    """Unwinds a replayed computation when its slice is over."""


class Replay:
    """``fn(evaluate)`` run again and again until it returns, ``evaluate(kind, inputs)`` answered from a memo
    where it was answered before (the i-th call of a replay is the i-th of every replay: ``fn`` must be
    deterministic given the answers) and by ``evaluators[kind]`` in chunks of ``chunk`` rows where not.
    ``run(seconds)`` returns (True, result) when ``fn`` returned, (False, None) when the time ran out;
    each run makes at least one chunk of progress."""

    def __init__(self, fn: Callable[[Evaluate], Any], evaluators: dict[str, Callable[[np.ndarray], np.ndarray]],
                 chunk: int = CHUNK):
        self._fn, self._evaluators, self._chunk = fn, evaluators, chunk
        self._memo: list[tuple[str, np.ndarray, np.ndarray]] = []
        self._partial: list[np.ndarray] = []  # the chunks of the call in progress
        self._pending: tuple[str, np.ndarray, None] | None = None  # that call's kind and inputs
        self._deadline = 0.0
        self._calls = 0
        self._progressed = False
        self.evaluations = 0  # rows evaluated so far (each once)

    def run(self, seconds: float) -> tuple[bool, Any]:
        self._deadline = time.perf_counter() + seconds
        self._calls, self._progressed = 0, False
        try:
            return True, self._fn(self._evaluate)
        except _OutOfTime:
            return False, None

    def _evaluate(self, kind: str, inputs: np.ndarray) -> np.ndarray:
        i = self._calls
        self._calls += 1
        if i < len(self._memo):
            memo_kind, memo_in, memo_out = self._memo[i]
        else:  # the call in progress, if any
            memo_kind, memo_in, memo_out = self._pending if self._pending is not None else (kind, inputs, None)
        if memo_kind != kind or not np.array_equal(memo_in, inputs):
            raise RuntimeError(f"replay diverged at evaluation {i} ({kind}): the computation is not deterministic")
        if memo_out is not None:
            return memo_out
        if self._pending is None:
            self._pending = (kind, np.array(inputs, copy=True), None)
        done = sum(len(c) for c in self._partial)
        while done < len(inputs):
            if self._progressed and time.perf_counter() > self._deadline:
                raise _OutOfTime
            out = self._evaluators[kind](np.ascontiguousarray(inputs[done : done + self._chunk]))
            self._partial.append(out)
            done += len(out)
            self.evaluations += len(out)
            self._progressed = True
        out = np.concatenate(self._partial) if self._partial else self._evaluators[kind](inputs[:0])
        self._memo.append((kind, self._pending[1], out))
        self._partial, self._pending = [], None
        return out


@dataclass(frozen=True)
class ImageNumbers:
    """One image's exact numbers (nan where the integral found nothing finite)."""

    log_px: exact.Estimate
    kl_qp: exact.Estimate


def _square(c: float, k: int) -> np.ndarray:
    t = np.linspace(-c, c, k, endpoint=False)
    return np.concatenate([np.stack([t, np.full(k, -c)], 1), np.stack([np.full(k, c), t], 1),
                           np.stack([-t, np.full(k, c)], 1), np.stack([np.full(k, -c), -t], 1)])


_Q_NODES = np.concatenate([_square(Q_BOX_C, RIM), exact.GH_EPS])  # what one pass through q needs: rim, then GH


def image_numbers(evaluate: Evaluate, problem_box: Box, rng_seed: int) -> ImageNumbers:
    """Exact log p(x) and KL(q‖p) of one image from ``evaluate("f", z)`` = log p(x, z) and
    ``evaluate("q", ε)`` = [z₁, z₂, log q(z|x), log p(x, z)] at z = T_φ(ε; x) (float64 numpy)."""
    at_nodes = evaluate("q", _Q_NODES)
    rim, gh = at_nodes[: 4 * RIM], at_nodes[4 * RIM :]
    q_box = (float(rim[:, 0].min()), float(rim[:, 0].max()), float(rim[:, 1].min()), float(rim[:, 1].max()))
    seed = hull(problem_box, q_box) if all(math.isfinite(b) for b in q_box) else problem_box
    post = exact.integrate_posterior(lambda z: evaluate("f", z)[:, 0], seed, f_eps=F32_EPS)
    if post is None:
        nothing = exact.Estimate(math.nan, math.inf)
        return ImageNumbers(nothing, nothing)

    def q_map(eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = evaluate("q", eps)
        return out[:, 2], out[:, 3]

    side = exact.q_side(gh[:, 2], gh[:, 3], q_map, np.random.default_rng(rng_seed), f_eps=F32_EPS)
    return ImageNumbers(post.log_px, exact.kl_qp(post.log_px, side.neg_elbo))


def evaluators(decoder: Any, encoder: Any, x: Tensor) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``f``: z [N, 2] → log p(x, z) [N, 1]; ``q``: ε [N, 2] → [z₁, z₂, log q, log p(x, z)] [N, 4] (x is [1, D])."""
    device, dtype = x.device, x.dtype
    q = encoder.conditional(x)

    @torch.no_grad()
    def f(z: np.ndarray) -> np.ndarray:
        zt = torch.as_tensor(z, dtype=dtype, device=device)[:, None, :]
        return decoder.log_joint(x, zt).double().cpu().numpy()

    @torch.no_grad()
    def through_q(eps: np.ndarray) -> np.ndarray:
        z, log_q = q.rsample(torch.as_tensor(eps, dtype=dtype, device=device)[:, None, :])
        log_p = decoder.log_joint(x, z)
        return torch.cat([z[:, 0], log_q, log_p], dim=-1).double().cpu().numpy()

    return {"f": f, "q": through_q}


@dataclass
class _RunCopy:
    index: int
    decoder: Any
    encoder: Any
    k: int
    m: int
    images: list[ImageNumbers] = field(default_factory=list)
    mc: tuple[float, float] | None = None  # (MC ELBO, MC L_K) averaged over the images


class HeldOutEvaluation:
    """The held-out numbers of every run at one step, as a background job (``work(seconds) -> done``).

    ``runs`` are the Session's runs (their decoder, encoder, cfg.k and m are copied now); ``x`` the test
    images [N, D]; ``on_done(step, results)`` gets, per run, its metrics (HELDOUT_METRICS, ``test_step``,
    ``test_images``) when the last image is done."""

    name = "held-out evaluation"

    def __init__(self, step: int, runs: Sequence[Any], x: Tensor, problem_box: Box, seed: int,
                 on_done: Callable[[int, list[dict[str, float]]], None]):
        self.step, self.x, self.problem_box, self.seed = step, x, problem_box, seed
        self._on_done = on_done
        self._runs = [_RunCopy(r.index, copy.deepcopy(r.decoder), copy.deepcopy(r.encoder), r.cfg.k, r.m)
                      for r in runs]
        for r in self._runs:
            for p in (*r.decoder.parameters(), *r.encoder.parameters()):
                p.requires_grad_(False)
        self._todo = [(r, i) for r in self._runs for i in range(len(x))]
        self._replay: Replay | None = None

    def work(self, seconds: float) -> bool:
        deadline = time.perf_counter() + max(seconds, MIN_SLICE_S)
        for run in self._runs:
            if run.mc is None:
                run.mc = self._mc(run)
        while self._todo:
            run, i = self._todo[0]
            if self._replay is None:
                x = self.x[i : i + 1]
                box, seed = self.problem_box, derive(self.seed, "heldout", self.step, run.index, i)
                self._replay = Replay(lambda ev, box=box, seed=seed: image_numbers(ev, box, seed),
                                      evaluators(run.decoder, run.encoder, x))
            done, numbers = self._replay.run(max(deadline - time.perf_counter(), 0.0))
            if not done:
                return False
            run.images.append(numbers)
            self._todo.pop(0)
            self._replay = None
            if time.perf_counter() >= deadline and self._todo:
                return False
        self._on_done(self.step, [self._result(r) for r in self._runs])
        return True

    @torch.no_grad()
    def _mc(self, run: _RunCopy) -> tuple[float, float]:
        """MC ELBO and L_K with the run's K (and M), averaged over the images; the noise is seeded by the
        step and the run's shape, so runs of the same shape share it."""
        gen = torch.Generator(device=self.x.device).manual_seed(derive(self.seed, "heldout-mc", self.step, run.m, run.k))
        eps = torch.randn((run.m, run.k, len(self.x), 2), generator=gen, device=self.x.device)
        log_w = draw(run.decoder, run.encoder, self.x, eps).log_w  # [M, K, N]
        return float(log_w.mean()), float(log_mean_exp(log_w).mean())

    def _result(self, run: _RunCopy) -> dict[str, float]:
        log_px = np.array([n.log_px.value for n in run.images])
        kl = np.array([n.kl_qp.value for n in run.images])
        out = {"test_step": float(self.step), "test_images": float(len(run.images)),
               "test_log_px": float(log_px.mean()), "test_kl_qp": float(kl.mean()),
               "test_log_px_err": float(np.mean([n.log_px.err for n in run.images])),
               "test_kl_qp_err": float(np.mean([n.kl_qp.err for n in run.images]))}
        assert run.mc is not None
        out["test_elbo"], out["test_bound"] = run.mc
        return {k: v for k, v in out.items() if math.isfinite(v)}
