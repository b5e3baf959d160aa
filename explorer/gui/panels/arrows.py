"""The gradient-arrows layer of a posterior panel: each particle's share of the encoder's gradient with
respect to q's location (q's mean; the flow's shift μ(x)) as a thin arrow from the particle, and their sum,
the estimator's gradient for the shown x, as a thick arrow from the location itself (core/anatomy.py).

All arrows of a panel share one scale, so the thick arrow is the sum of the thin ones as drawn (with M > 1
groups the thin ones are group 1's, the thick one all M·K particles'). The scale is a 1-2-5 number that
keeps the longest arrow between LONGEST_MIN and LONGEST_MAX of the view's shorter side, changed only when
it leaves that band, and a note in the panel says it. Arrows point where gradient *ascent* on the
objective moves the location.

The layer also stages the particles for "one step, slowly" (gui/slow_step.py): ``draw`` shows them
unweighted, ``weight`` as usual without arrows, ``arrows`` with the arrows whatever view.arrows says.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from explorer.core.snapshot import RunView

from .. import theme
from ..theme import Style

STAGES = (None, "draw", "weight", "arrows")
LONGEST = 0.22  # the longest arrow after a change of scale, as a share of the view's shorter side
LONGEST_MIN, LONGEST_MAX = 0.08, 0.4  # the band the scale keeps it in
HEAD = 0.3  # arrow head: this share of the arrow's length ...
HEAD_MAX = 0.04  # ... at most this share of the view's shorter side
HEAD_ANGLE = math.radians(28)
ARROW_COLOR = "#000000"
SUM_COLOR = "#C00000"


def nice_scale(value: float) -> float:
    """The largest 1, 2 or 5 × 10^k that is ≤ ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return max(m * power for m in (1.0, 2.0, 5.0) if m * power <= value * (1.0 + 1e-12))


def arrow_segments(starts: np.ndarray, vectors: np.ndarray, head_max: float) -> np.ndarray:
    """[6N, 2] points, in pairs: each arrow's shaft and the two strokes of its head (``connect='pairs'``)."""
    tips = starts + vectors
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)
    head = np.minimum(HEAD * length, head_max)
    out = []
    for sign in (1.0, -1.0):
        c, s = math.cos(HEAD_ANGLE), sign * math.sin(HEAD_ANGLE)
        back = -np.stack([c * unit[:, 0] - s * unit[:, 1], s * unit[:, 0] + c * unit[:, 1]], axis=1)
        out.append((tips, tips + head * back))
    pairs = [(starts, tips), *out]
    return np.stack([np.stack(p, axis=1) for p in pairs], axis=1).reshape(-1, 2)


class ArrowLayer:
    """Arrows and particle stages on one posterior panel's plot (see the module docstring)."""

    def __init__(self, plot: pg.PlotItem, particles: pg.ScatterPlotItem, keep_pen) -> None:
        self.plot, self.particles = plot, particles
        self.shares = pg.PlotCurveItem(connect="pairs", antialias=True)
        self.total = pg.PlotCurveItem(connect="pairs", antialias=True)
        self.shares.setZValue(4.5)  # above the particles
        self.total.setZValue(4.6)
        self.plain = pg.ScatterPlotItem(symbol="o", antialias=True)  # the particles before they are weighted
        self.plain.setZValue(4)
        # top right, half its height down: the mode labels sit along the bottom, and a pinned view's one-line
        # note takes the top right corner
        self.note = pg.TextItem(anchor=(1.0, -0.5), color=theme.FOREGROUND, fill=pg.mkBrush(255, 255, 255, 200))
        self.note.setZValue(15)
        for item in (self.shares, self.total, self.plain, self.note):
            item.hide()
            plot.addItem(item)
        keep_pen(self.shares.setPen, lambda s: s.pen(ARROW_COLOR, 1.2, alpha=200))
        keep_pen(self.total.setPen, lambda s: s.pen(SUM_COLOR, 3.2))
        keep_pen(self.plain.setPen, lambda s: s.pen("#000000", theme.W_MARKER_EDGE))
        keep_pen(self.plain.setSize, lambda s: s.px(9.0))
        self.plain.setBrush(pg.mkBrush(theme.WEIGHT_STOPS[1]))
        self.scale: float | None = None  # arrow length (z units) per unit of gradient
        self.stage: str | None = None
        self._show = False
        self._run: RunView | None = None
        self._view: tuple[float, float, float, float] | None = None
        self._note_html = ""

    # ------------------------------------------------------------------ public
    @property
    def visible(self) -> bool:
        """Whether the arrows are drawn now."""
        return self.total.isVisible()

    def set_stage(self, stage: str | None) -> None:
        """A stage of "one step, slowly" (``STAGES``), or None: as view.arrows says."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (choose from {STAGES})")
        self.stage = stage
        self._draw()

    def restyle_text(self, style: Style) -> None:
        self.note.setFont(style.font(theme.BASE_FONT_PT - 1.5))

    def update(self, show: bool, run: RunView, view: tuple[float, float, float, float]) -> None:
        """A new snapshot: ``show`` is view.arrows, ``view`` the panel's range (z1_min, z1_max, z2_min, z2_max)."""
        self._show, self._run, self._view = show, run, view
        self._draw()

    def place(self, view: tuple[float, float, float, float]) -> None:
        """The panel's range changed: keep the note in its corner and the scale in its band."""
        self._view = view
        if self._run is not None:
            self._draw()

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        run, view = self._run, self._view
        arrows_on = (self._show and self.stage is None) or self.stage == "arrows"
        self.particles.setVisible(self.stage != "draw")
        self.plain.setVisible(self.stage == "draw" and run is not None)
        if self.stage == "draw" and run is not None:
            pos = np.asarray(run.particles, dtype=np.float64).reshape(-1, 2)
            self.plain.setData(pos=pos[np.isfinite(pos).all(axis=1)])
        data = _arrow_data(run) if arrows_on and run is not None and view is not None else None
        for item in (self.shares, self.total, self.note):
            item.setVisible(data is not None)
        if data is None:
            return
        starts, shares, origin, total = data
        side = min(view[1] - view[0], view[3] - view[2])
        longest = max(float(np.max(np.linalg.norm(shares, axis=1), initial=0.0)), float(np.linalg.norm(total)))
        self._rescale(longest, side)
        k = self.scale or 0.0
        self.shares.setData(*arrow_segments(starts, k * shares, HEAD_MAX * side).T, connect="pairs")
        self.total.setData(*arrow_segments(origin[None], k * total[None], 1.5 * HEAD_MAX * side).T, connect="pairs")
        wrt = theme.escape(run.arrows_wrt or "q's location")
        html = (f"<span style='color:{SUM_COLOR}'>━</span> Σ of the particles' shares of ∇ w.r.t. {wrt}"
                f"<br>arrows drawn at {_fmt_scale(k)} × the gradient")
        if html != self._note_html:  # Qt re-lays out rich text on every setHtml: only when it changes
            self._note_html = html
            self.note.setHtml(html)
        self.note.setPos(view[1], view[3])

    def _rescale(self, longest: float, side: float) -> None:
        if not (longest > 0 and math.isfinite(longest) and side > 0):
            return
        if self.scale is None or not LONGEST_MIN * side <= self.scale * longest <= LONGEST_MAX * side:
            self.scale = nice_scale(LONGEST * side / longest)


def _arrow_data(run: RunView) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(particle positions, their shares, the location, the sum), finite rows only; None without arrows."""
    if run.arrows is None or run.arrow_sum is None or run.arrow_origin is None:
        return None
    pos = np.asarray(run.particles, dtype=np.float64).reshape(-1, 2)
    shares = np.asarray(run.arrows, dtype=np.float64).reshape(-1, 2)
    n = min(len(pos), len(shares))
    pos, shares = pos[:n], shares[:n]
    ok = np.isfinite(pos).all(axis=1) & np.isfinite(shares).all(axis=1)
    origin, total = np.asarray(run.arrow_origin, np.float64), np.asarray(run.arrow_sum, np.float64)
    if not (np.isfinite(origin).all() and np.isfinite(total).all()):
        return None
    return pos[ok], shares[ok], origin, total


def _fmt_scale(k: float) -> str:
    return f"{k:g}" if 1e-3 <= k < 1e4 else f"{k:.0e}"
