"""The digits problem (issue 16): what real images cost.

(a) one training step of IWAE on the digits at batch 64, K = 64 (views and probes off), ms;
(b) the exact posterior of one test image on the adaptive window (exact.integrate_posterior, the search
    included) under a decoder trained ``TRAIN_STEPS`` steps, ms per image and nodes;
(c) the live window: one frame of the digits preset (snapshot + update of every panel; the decoder learns,
    so the posterior is refreshed every frame), median and p95 against the 33 ms of a frame at 30 Hz;
(d) the held-out evaluation beside training: each slice the Player gives it (work(0.01)), p50 / p99 / max
    against one frame (33 ms), and the cost of slicing (sliced ÷ whole time for the same images).
"""
from __future__ import annotations

import statistics
import time
import numpy as np
import torch

from benchmarks import Options, Row
from benchmarks.bench_core import absolute_row
from explorer.core import exact, heldout
from explorer.core.config import load_preset
from explorer.core.session import Session

FRAME_MS = 1000.0 / 30.0  # the Player's snapshot period (hz = 30)
TRAIN_STEPS = 1000
OFF = ["view.snr_every=0", "view.log_every=1000000", "problem.eval_every=0"]


def _trained(steps: int) -> Session:
    """One IWAE-64 run of the digits preset trained ``steps`` steps (narrow posteriors, as in use)."""
    session = Session(load_preset("digits", [*OFF, 'runs=[{objective="iwae",k=64}]', "view.samples=0"]), device="cpu")
    session.step(steps)
    return session


def row_digits_training_step(opts: Options) -> list[Row]:
    session = Session(load_preset("digits", [*OFF, 'runs=[{objective="iwae",k=64}]']), device="cpu")
    session.step(20)
    n = 50 if opts.quick else 200
    ms = []
    for _ in range(opts.reps(5, 3)):
        t = time.perf_counter()
        session.step(n)
        ms.append(1e3 * (time.perf_counter() - t) / n)
    return [absolute_row("digits: one IWAE training step, batch 64, K = 64", ms, "ms",
                         f"64 × 64 particles through a 2-64-64-64 Bernoulli decoder; {n} steps per repeat")]


def row_digits_exact_posterior(opts: Options) -> list[Row]:
    session = _trained(200 if opts.quick else TRAIN_STEPS)
    run = session.runs[0]
    x_test, _ = session.problem.heldout()
    images = range(5 if opts.quick else 20)
    per_repeat, nodes = [], []
    for _ in range(opts.reps(5, 2)):
        times = []
        for i in images:
            f = heldout.evaluators(run.decoder, run.encoder, x_test[i : i + 1])["f"]
            t = time.perf_counter()
            post = exact.integrate_posterior(lambda z: f(z)[:, 0], session.problem.box, f_eps=heldout.F32_EPS)
            times.append(1e3 * (time.perf_counter() - t))
            nodes.append(len(post.rule[0].points) if post is not None else 0)
        per_repeat.append(statistics.median(times))
    return [absolute_row("digits: exact posterior of one test image (search + adaptive cubature)", per_repeat, "ms",
                         f"decoder trained {session.step_count} steps; median of {len(images)} images per repeat; "
                         f"{int(np.median(nodes))} cubature nodes (median)")]


def row_digits_live_frame(opts: Options) -> list[Row]:
    from benchmarks.bench_gui import FrameBench

    bench = FrameBench(load_preset("digits", ["problem.eval_every=0"]), warm_steps=50 if opts.quick else 300)
    n = 10 if opts.quick else 30
    try:
        bench.frames(3)
        runs = [1e3 * bench.frames(n) for _ in range(opts.reps(5, 2))]
    finally:
        bench.close()
    work = [r[:, 0] + r[:, 1] for r in runs]
    med, p95 = [float(np.median(w)) for w in work], [float(np.percentile(w, 95)) for w in work]
    note = (f"digits preset: 4 runs, learning decoder; snapshot {statistics.median(float(np.median(r[:, 0])) for r in runs):.1f}"
            f" ms + update {statistics.median(float(np.median(r[:, 1])) for r in runs):.1f} ms; paint "
            f"{statistics.median(float(np.median(r[:, 2])) for r in runs):.1f} ms")
    return [Row("digits: one live frame, snapshot + update, median", "absolute", statistics.median(med), min(med),
                max(med), "ms", f"≤ {FRAME_MS:.0f} ms", statistics.median(med) <= FRAME_MS, len(med), note),
            Row("digits: one live frame, snapshot + update, p95", "absolute", statistics.median(p95), min(p95),
                max(p95), "ms", f"≤ {FRAME_MS:.0f} ms", statistics.median(p95) <= FRAME_MS, len(p95), "")]


def _evaluation(session: Session, n: int, seconds: float) -> tuple[float, list[float]]:
    """Run a held-out evaluation of n images in slices of ``seconds``: (total s, each slice's ms)."""
    x_test, _ = session.problem.heldout()
    job = heldout.HeldOutEvaluation(session.step_count, session.runs, x_test[:n], session.problem.box, 0,
                                    lambda step, results: None)
    slices = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        done = job.work(seconds)
        slices.append(1e3 * (time.perf_counter() - t))
        if done:
            return time.perf_counter() - t0, slices


def row_digits_heldout_slices(opts: Options) -> list[Row]:
    session = _trained(200 if opts.quick else TRAIN_STEPS)
    n = 3 if opts.quick else 10
    p50, p99, worst, ratios = [], [], [], []
    for _ in range(opts.reps(5, 2)):
        sliced, slices = _evaluation(session, n, 0.01)
        whole, _ = _evaluation(session, n, float("inf"))
        p50.append(float(np.percentile(slices, 50)))
        p99.append(float(np.percentile(slices, 99)))
        worst.append(max(slices))
        ratios.append(sliced / whole)
    what = f"{n} test images, IWAE-64 decoder trained {session.step_count} steps, slices of work(0.01)"
    return [
        absolute_row("digits: held-out evaluation, one slice, median", p50, "ms", what),
        Row("digits: held-out evaluation, one slice, p99", "absolute", statistics.median(p99), min(p99), max(p99),
            "ms", f"≤ {FRAME_MS:.0f} ms", statistics.median(p99) <= FRAME_MS, len(p99), "never more than a frame"),
        absolute_row("digits: held-out evaluation, the longest slice", worst, "ms", "max over each repeat's slices"),
        absolute_row("digits: held-out evaluation, sliced ÷ whole", ratios, "×",
                     "the replay's cost: each slice reruns the image's numpy bookkeeping"),
    ]


ROWS = [row_digits_training_step, row_digits_exact_posterior, row_digits_live_frame, row_digits_heldout_slices]
