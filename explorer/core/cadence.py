"""How often the gradient-SNR probe runs when ``view.snr_every = "auto"`` (the default).

A probe draws R replicate gradients of every run at once (vmapped); measured on the development machine
(CPU time, one thread) one probe of R = 64 costs ~29 training steps of the default scene at K = 64 and
~94 at K = 1024: probing every 25 steps, as the first version did, more than doubled the time of a run.
"auto" keeps the probe at about PROBE_SHARE of the training time: it probes every
``max(MIN_PERIOD, R · r(n) / PROBE_SHARE)`` steps, where r(n) is one replicate's cost in training steps
for n particles per replicate (K·M·batch), fitted to those measurements. The period depends on the config
only, never on the clock, so the same config gives the same metric rows bit for bit; an explicit integer
``snr_every`` is used as it is.
"""
from __future__ import annotations

import math

from .config import Config
from .objectives import OBJECTIVES

PROBE_SHARE = 0.15  # of the training time
MIN_PERIOD = 25  # steps: never more often than this
# one replicate's cost in training steps: 0.45 at 4096 particles, +0.255 per doubling (fitted, CPU)
R_4096, R_PER_DOUBLING, R_MIN, R_MAX = 0.45, 0.255, 0.2, 3.0


def replicate_cost(particles: int) -> float:
    """One probe replicate of ``particles`` particles, in training steps of the same run."""
    r = R_4096 + R_PER_DOUBLING * math.log2(max(particles, 1) / 4096)
    return min(R_MAX, max(R_MIN, r))


def probe_period(config: Config) -> int:
    """Steps between SNR probes for ``config`` (0: no probe)."""
    every = config.view.snr_every
    if every != "auto":
        return int(every)
    particles = max(run.k * (run.m if OBJECTIVES[run.objective].uses_m() else 1)
                    * min(config.run_train(i).batch_size, config.problem.n_data)
                    for i, run in enumerate(config.runs))
    steps_per_probe = config.view.snr_replicates * replicate_cost(particles)
    return max(MIN_PERIOD, math.ceil(steps_per_probe / PROBE_SHARE))
