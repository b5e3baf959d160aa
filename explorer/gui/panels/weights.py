"""The sorted normalised importance weights of each run's particles, against the uniform 1/K."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from explorer.core.snapshot import Snapshot

from .. import theme
from ..theme import DOTTED, Style
from .base import new_plot, Panel, PointsItem, set_xy


class WeightsPanel(Panel):
    """Each run's normalised weights w̃ of its K particles, sorted, on a log axis from 10⁻⁶ to 1, with the
    uniform weight 1/K dotted."""

    Y_RANGE = (-6.0, 0.25)  # log10 w̃; lighter weights fall below the axis

    def __init__(self, n_runs: int, style: Style):
        super().__init__(style)
        self.name = "weights"
        self.n_runs = n_runs
        self._uniform: list[float | None] = [None] * n_runs
        self.plot = plot = new_plot(self.name, log_y=True)
        plot.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
        plot.setLogMode(x=False, y=True)
        plot.setYRange(*self.Y_RANGE, padding=0.02)
        plot.getViewBox().enableAutoRange(axis="y", enable=False)
        # x: rank 1 … the largest K, set when K changes (autorange would follow the number of non-zero
        # weights, which changes every frame, and redraw the axis with it)
        plot.getViewBox().enableAutoRange(axis="x", enable=False)
        plot.getViewBox().sigDoubleClicked.connect(self.reset_view)
        self._k_max: int | None = None
        self.curves = []
        self.markers = []
        self.uniform_lines = []
        for i in range(n_runs):
            color = theme.run_color(i)
            item = pg.PlotCurveItem(antialias=False)  # log10 values: the axis is in log mode
            plot.addItem(item)
            self.keep_pen(item.setPen, lambda s, c=color: s.pen(c, theme.W_CURVE))
            self.curves.append(item)
            dots = PointsItem(QColor(color))
            plot.addItem(dots)
            self.keep_pen(dots.setSize, lambda s: s.cosmetic_px(5.5))
            self.markers.append(dots)
            line = pg.InfiniteLine(angle=0, movable=False)
            line.setZValue(-1)
            line.hide()
            plot.addItem(line)
            self.keep_pen(line.setPen, lambda s, c=color: s.pen(c, theme.W_REFERENCE, DOTTED))
            self.uniform_lines.append(line)
        self.restyle_text(style)

    def restyle_text(self, style: Style) -> None:
        title = (f"sorted normalised weights w̃<br><span style='color:{theme.MUTED}; "
                 f"font-size:{style.pt_str(theme.BASE_FONT_PT - 1)}'>dotted: uniform 1/K</span>")
        theme.style_plot(self.plot, style, "rank", "w̃", title)

    def reset_view(self) -> None:
        """Back to rank 1 … K and 10⁻⁶ … 1 after a user zoom."""
        self.plot.setYRange(*self.Y_RANGE, padding=0.02)
        if self._k_max:
            self.plot.setXRange(1, self._k_max, padding=0.04)

    def update(self, snapshot: Snapshot) -> None:
        k_max = max([run.k for run in snapshot.runs] + [2])
        if k_max != self._k_max:
            self._k_max = k_max
            self.plot.setXRange(1, k_max, padding=0.04)
        for run in snapshot.runs:
            if run.index >= self.n_runs:
                continue
            w = np.asarray(run.weights, dtype=np.float64).reshape(-1)
            w = np.sort(w[np.isfinite(w) & (w > 0)])[::-1]
            xy = np.column_stack([np.arange(1, len(w) + 1, dtype=np.float64), np.log10(w)])
            set_xy(self.curves[run.index], xy)
            self.markers[run.index].setData(xy)
            uniform = 1.0 / run.k if run.k > 0 else None
            if uniform != self._uniform[run.index]:
                self._uniform[run.index] = uniform
                line = self.uniform_lines[run.index]
                line.setVisible(uniform is not None)
                if uniform is not None:
                    line.setPos(math.log10(uniform))
