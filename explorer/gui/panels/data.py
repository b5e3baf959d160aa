"""The data panel: the data set in x-space (a scatter for 2-D x, a histogram for 1-D x) with the shown
observation; clicking a point shows it."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Signal

from explorer.core.snapshot import Snapshot

from .. import theme
from ..theme import Style
from .base import finite_rows, new_plot, Panel


class DataPanel(QObject):
    """The data set in x-space (scatter for 2-D x, histogram for 1-D x) with x_obs highlighted. A click
    picks the nearest data point (2-D: within a few pixels; 1-D: nearest in x) and emits its index."""

    observation_clicked = Signal(int)
    CLICK_RADIUS_PX = 12.0

    def __init__(self, x_dim: int, style: Style):
        QObject.__init__(self)
        self._panel = Panel(style)
        self.name = "data"
        self.x_dim = x_dim
        self._data: np.ndarray | None = None
        self._obs = -1
        self.plot = plot = new_plot(self.name)
        plot.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
        if x_dim >= 2:
            self.points = pg.ScatterPlotItem(symbol="o", pen=None, brush=theme.qcolor(theme.DATA_COLOR, 130),
                                             antialias=True)
            plot.addItem(self.points)
            self._panel.keep_pen(self.points.setSize, lambda s: s.px(5.0))
            self.obs_marker = pg.ScatterPlotItem(symbol="star", brush=theme.qcolor(theme.OBS_COLOR), antialias=True)
            self.obs_marker.setZValue(5)
            plot.addItem(self.obs_marker)
            self._panel.keep_pen(self.obs_marker.setPen, lambda s: s.pen("#000000", 1.0))
            self._panel.keep_pen(self.obs_marker.setSize, lambda s: s.px(22.0))
        else:
            self.hist = pg.PlotCurveItem(x=np.array([0.0, 1.0]), y=np.array([0.0]), stepMode="center",
                                         fillLevel=0.0, brush=theme.qcolor(theme.DATA_COLOR, 90))
            plot.addItem(self.hist)
            self._panel.keep_pen(self.hist.setPen, lambda s: s.pen(theme.DATA_COLOR, 1.2))
            self.obs_line = pg.InfiniteLine(angle=90, movable=False, label="x_obs",
                                            labelOpts={"position": 0.92, "color": theme.OBS_COLOR,
                                                       "fill": pg.mkBrush(255, 255, 255, 200)})
            self.obs_line.setZValue(5)
            plot.addItem(self.obs_line)
            self._panel.keep_pen(self.obs_line.setPen, lambda s: s.pen(theme.OBS_COLOR, 2.5))
        self.restyle_text(style)

    @property
    def style(self) -> Style:
        return self._panel.style

    def apply_style(self, style: Style) -> None:
        self._panel.apply_style(style)
        self.restyle_text(style)

    def restyle_text(self, style: Style) -> None:
        if self.x_dim >= 2:
            theme.style_plot(self.plot, style, "x₁", "x₂", self._title())
        else:
            theme.style_plot(self.plot, style, "x", "count", self._title())
            self.obs_line.label.setFont(style.font(theme.BASE_FONT_PT - 1, bold=True))

    def _title(self) -> str:
        hint = "click a point to show it" if self.x_dim >= 2 else "click to pick the nearest x"
        obs = f"x_obs = data[{self._obs}]" if self._obs >= 0 else "data"
        return f"{obs}<br><span style='color:{theme.MUTED}; font-size:{self.style.pt_str(theme.BASE_FONT_PT - 1)}'>{hint}</span>"

    def update(self, snapshot: Snapshot) -> None:
        data = snapshot.data
        if self._data is None or data is not self._data and not np.array_equal(data, self._data):
            self._data = data
            self._set_data(data)
        if snapshot.observation != self._obs:
            self._obs = snapshot.observation
            x = np.asarray(snapshot.x_obs, dtype=np.float64).reshape(-1)
            if self.x_dim >= 2:
                pos = x[None, :2] if np.isfinite(x[:2]).all() else np.zeros((0, 2))
                self.obs_marker.setData(pos=pos)
            elif np.isfinite(x[0]):
                self.obs_line.setPos(float(x[0]))
            theme.set_title(self.plot, self._title(), self.style)

    def _set_data(self, data: np.ndarray) -> None:
        if self.x_dim >= 2:
            self.points.setData(pos=finite_rows(np.asarray(data)[:, :2]))
        else:
            x = finite_rows(np.asarray(data)[:, :1], 1)[:, 0]
            if len(x) == 0:
                self.hist.setData([0.0, 1.0], [0.0])
                return
            bins = int(np.clip(np.sqrt(len(x)) * 1.5, 10, 80))
            counts, edges = np.histogram(x, bins=bins)
            self.hist.setData(edges, counts.astype(float))

    def index_at(self, x: float, y: float) -> int | None:
        """The data index a click at view coordinates (x, y) picks, or None."""
        data = self._data
        if data is None or not len(data):
            return None
        if self.x_dim >= 2:
            sx, sy = self.plot.getViewBox().viewPixelSize()
            pts = np.asarray(data, dtype=np.float64)[:, :2]
            d2 = ((pts[:, 0] - x) / sx) ** 2 + ((pts[:, 1] - y) / sy) ** 2
            d2[~np.isfinite(d2)] = np.inf
            i = int(np.argmin(d2))
            return i if d2[i] <= (self.CLICK_RADIUS_PX * self.style.line_scale) ** 2 else None
        d = np.abs(np.asarray(data, dtype=np.float64)[:, 0] - x)
        d[~np.isfinite(d)] = np.inf
        i = int(np.argmin(d))
        return i if math.isfinite(d[i]) else None

    def handle_click(self, scene_pos: QPointF) -> bool:
        """Emit observation_clicked for a left click at ``scene_pos`` inside this panel's view."""
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return False
        p = vb.mapSceneToView(scene_pos)
        index = self.index_at(p.x(), p.y())
        if index is None:
            return False
        self.observation_clicked.emit(index)
        return True


# --------------------------------------------------------------------------- curves
