"""Is a run's final report meaningful? A run whose numbers contradict each other is marked ``suspect`` in
summary.json and on screen rather than reported as fine.

Three contradictions, each impossible for a healthy run (thresholds far above Monte Carlo noise):

- q's mass is mostly outside the exact grid's window (q_mass < ``MIN_Q_MASS``): the grid's KL(q‖p),
  KL(p‖q) and exact ELBO then describe the sliver of q inside the window, not q (with lr = 1.0 a VAE
  reported KL(q‖p) = 0.000 beside an ELBO of −1734 this way);
- the MC ELBO and the exact ELBO = log p(x) − KL(q‖p) disagree by more than ``ELBO_GAP`` nats plus half
  the exact ELBO's size: the MC ELBO is an unbiased estimate of the exact one when the window holds q;
- the loss exploded: the last MC ELBO lies more than ``FALL`` nats plus ten times the best value's size
  below the best logged value.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

MIN_Q_MASS = 0.5
ELBO_GAP = 25.0
FALL = 100.0


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def assess_run(final: Mapping[str, Any], history: Mapping[str, np.ndarray] | None = None) -> str | None:
    """The reason a run's final numbers are not to be trusted, or None. ``final``: the run's final metrics
    (log_px, elbo, elbo_exact, q_mass, ...); ``history``: its metric series, {name: [n, 2] (step, value)}."""
    reasons = []
    q_mass = final.get("q_mass")
    if _finite(q_mass) and q_mass < MIN_Q_MASS:
        reasons.append(f"only {q_mass:.1%} of q's mass lies in the exact grid's window, so its KLs and exact "
                       "ELBO do not describe q")
    elbo, exact = final.get("elbo"), final.get("elbo_exact")
    if _finite(elbo) and _finite(exact) and abs(elbo - exact) > ELBO_GAP + 0.5 * abs(exact):
        reasons.append(f"the MC ELBO ({elbo:.4g}) and the exact ELBO ({exact:.4g}) disagree by "
                       f"{abs(elbo - exact):.3g} nats")
    series = (history or {}).get("elbo")
    if series is not None and len(series) >= 2:
        values = np.asarray(series, dtype=np.float64)[:, 1]
        best_at = int(np.nanargmax(values)) if np.isfinite(values).any() else -1
        if best_at >= 0 and values[-1] < values[best_at] - FALL - 10 * abs(values[best_at]):
            step = int(np.asarray(series)[best_at, 0])
            reasons.append(f"the loss exploded: the MC ELBO fell from {values[best_at]:.4g} (step {step}) to "
                           f"{values[-1]:.4g}")
    return "; ".join(reasons) or None
