"""The data panel: the data set in x-space (a scatter for 2-D x, a histogram for 1-D x) with the shown
observation, an *x-pad*: drag the observation anywhere in x-space (2-D: the star; 1-D: the line), nudge it
with the arrow keys once it has focus, or click a data point to snap to it."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QGraphicsItem

from explorer.core.snapshot import Snapshot

from .. import theme
from ..theme import Style
from .base import finite_rows, new_plot, Panel


NUDGE_FRACTION = 0.02  # an arrow key moves x_obs by this fraction of the visible range (Shift: five times)
X_LIMIT = 1e3  # |x| a free observation may have (core/problems.py LOCATION: what problem.x_obs accepts)
_ARROWS = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, 1), Qt.Key.Key_Down: (0, -1)}


class _Nudged:
    """A marker that takes keyboard focus on a click, and turns arrow keys into ``on_nudge(dx, dy)``."""

    on_nudge: Callable[[float, float], None] | None = None

    def _take_keys(self) -> None:
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsFocusable, True)  # type: ignore[attr-defined]

    def keyPressEvent(self, ev) -> None:  # noqa: N802 (Qt's name)
        step = _ARROWS.get(Qt.Key(ev.key()))
        if step is None or self.on_nudge is None:
            ev.ignore()
            return
        ev.accept()
        scale = 5.0 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1.0
        self.on_nudge(step[0] * scale, step[1] * scale)


class _StarMarker(_Nudged, pg.TargetItem):
    """x_obs in 2-D x: a star dragged anywhere (pyqtgraph's TargetItem), sized in pixels by the style."""

    def __init__(self) -> None:
        pg.TargetItem.__init__(self, pos=(0.0, 0.0), size=22, symbol="star", movable=True)
        self._take_keys()

    def set_size(self, px: float) -> None:
        self.scale, self._shape = px, None
        self.prepareGeometryChange()
        self.update()


class _LineMarker(_Nudged, pg.InfiniteLine):
    """x_obs in 1-D x: a vertical line dragged along the axis."""

    def __init__(self, **kwargs) -> None:
        pg.InfiniteLine.__init__(self, angle=90, movable=True, **kwargs)
        self._take_keys()


HINTS_2D = ("drag ★ anywhere · click a point to snap · arrows nudge", "drag ★ · click a point · arrows nudge",
            "drag ★ · click a point")
HINTS_1D = ("drag the line · click to pick the nearest x · arrows nudge", "drag the line · click an x · arrows nudge",
            "drag the line · click an x")


class DataPanel(QObject):
    """The data set in x-space (scatter for 2-D x, histogram for 1-D x) with x_obs highlighted. A click
    picks the nearest data point (2-D: within a few pixels; 1-D: nearest in x) and emits its index; a drag
    of the marker, or an arrow key once it has focus, emits the new point (``observation_moved``, a tuple
    of x_dim floats) at every move: the controller coalesces them."""

    observation_clicked = Signal(int)
    observation_moved = Signal(object)
    CLICK_RADIUS_PX = 12.0

    def __init__(self, x_dim: int, style: Style):
        QObject.__init__(self)
        self._panel = Panel(style)
        self.name = "data"
        self.x_dim = x_dim
        self._data: np.ndarray | None = None
        self._obs: int | None = -1
        self._x_obs: tuple[float, ...] | None = None
        self._held = False  # a GIF's fixed range: new data and a far x leave the view alone
        self.plot = plot = new_plot(self.name)
        plot.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
        if x_dim >= 2:
            self.points = pg.ScatterPlotItem(symbol="o", pen=None, brush=theme.qcolor(theme.DATA_COLOR, 130),
                                             antialias=True)
            plot.addItem(self.points)
            self._panel.keep_pen(self.points.setSize, lambda s: s.px(5.0))
            self.obs_marker = _StarMarker()
            self.obs_marker.setBrush(theme.qcolor(theme.OBS_COLOR))
            self.obs_marker.setHoverBrush(theme.qcolor(theme.OBS_COLOR, 170))
            self.obs_marker.setZValue(5)
            self.obs_marker.setVisible(False)  # until a snapshot places it
            plot.addItem(self.obs_marker)
            self._panel.keep_pen(self.obs_marker.setPen, lambda s: s.pen("#000000", 1.0))
            self._panel.keep_pen(self.obs_marker.setHoverPen, lambda s: s.pen("#000000", 2.0))
            self._panel.keep_pen(self.obs_marker.set_size, lambda s: s.px(22.0))
        else:
            self.hist = pg.PlotCurveItem(x=np.array([0.0, 1.0]), y=np.array([0.0]), stepMode="center",
                                         fillLevel=0.0, brush=theme.qcolor(theme.DATA_COLOR, 90))
            plot.addItem(self.hist)
            self._panel.keep_pen(self.hist.setPen, lambda s: s.pen(theme.DATA_COLOR, 1.2))
            self.obs_line = self.obs_marker = _LineMarker(label="x_obs", labelOpts={
                "position": 0.92, "color": theme.OBS_COLOR, "fill": pg.mkBrush(255, 255, 255, 200)})
            self.obs_line.setZValue(5)
            plot.addItem(self.obs_line)
            self._panel.keep_pen(self.obs_line.setPen, lambda s: s.pen(theme.OBS_COLOR, 2.5))
            self._panel.keep_pen(self.obs_line.setHoverPen, lambda s: s.pen(theme.OBS_COLOR, 4.0))
        self.obs_marker.sigPositionChanged.connect(self._on_marker_moved)
        self.obs_marker.sigPositionChangeFinished.connect(self._on_marker_moved)
        self.obs_marker.on_nudge = self.nudge
        self._hint = ""
        plot.geometryChanged.connect(self._on_resized)
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

    def _on_resized(self) -> None:
        if self._fitting_hint() != self._hint:
            theme.set_title(self.plot, self._title(), self.style)

    def _fitting_hint(self) -> str:
        """The longest hint that fits the panel's width (the title is centred: a wider one was cut off at
        the figure's left edge in a narrow panel, e.g. 1024 px or talk style at 1280 px)."""
        hints = (HINTS_2D if self.x_dim >= 2 else HINTS_1D)
        metrics = QFontMetricsF(self.style.font(theme.BASE_FONT_PT - 1))
        room = self.plot.width() - 12.0
        return next((h for h in hints if metrics.horizontalAdvance(h) <= room), hints[-1])

    def _title(self) -> str:
        self._hint = hint = self._fitting_hint()
        if self._obs is None and self._x_obs is not None:
            obs = "x_obs = (" + ", ".join(f"{v:.2f}" for v in self._x_obs[:2]) + ")"
        else:
            obs = f"x_obs = data[{self._obs}]" if self._obs is not None and self._obs >= 0 else "data"
        return f"{obs}<br><span style='color:{theme.MUTED}; font-size:{self.style.pt_str(theme.BASE_FONT_PT - 1)}'>{hint}</span>"

    def update(self, snapshot: Snapshot) -> None:
        data = snapshot.data
        if self._data is None or data is not self._data and not np.array_equal(data, self._data):
            self._data = data
            self._set_data(data)
        x = np.asarray(snapshot.x_obs, dtype=np.float64).reshape(-1)
        x_obs = tuple(float(v) for v in x)
        if snapshot.observation != self._obs or x_obs != self._x_obs:
            self._obs, self._x_obs = snapshot.observation, x_obs
            if not self.obs_marker.moving:  # a drag leads; the snapshot catches up with it
                self._place(x)
            theme.set_title(self.plot, self._title(), self.style)

    def _place(self, x: np.ndarray) -> None:
        """The marker at x (hidden where x is not finite), without emitting a move."""
        shown = bool(np.isfinite(x[: min(2, self.x_dim)]).all())
        self.obs_marker.setVisible(shown)
        if shown:
            self.obs_marker.blockSignals(True)
            self.obs_marker.setPos((float(x[0]), float(x[1])) if self.x_dim >= 2 else float(x[0]))
            self.obs_marker.blockSignals(False)
            self._keep_in_view(x)

    def hold_range(self, rect: tuple[float, float, float, float]) -> None:
        """Show ``rect`` and keep it whatever the next snapshots hold (a GIF's frames), until released."""
        self._held = True
        self.plot.getViewBox().setRange(xRange=rect[:2], yRange=rect[2:], padding=0.0)

    def release_range(self) -> None:
        self._held = False
        self.plot.getViewBox().enableAutoRange()
        if self._x_obs is not None:
            self._keep_in_view(np.asarray(self._x_obs, dtype=np.float64))

    def _keep_in_view(self, x: np.ndarray) -> None:
        """Where x lies outside the data (a free point far from it), show both: the data's box and x."""
        if self._held or self._data is None or not len(self._data):
            return
        cols = min(2, self.x_dim)
        data = finite_rows(np.asarray(self._data, dtype=np.float64)[:, :cols], cols)
        if not len(data):
            return
        lo, hi = data.min(axis=0), data.max(axis=0)
        point = np.asarray(x[:cols], dtype=np.float64)
        if np.all((point >= lo) & (point <= hi)):
            return
        lo, hi = np.minimum(lo, point), np.maximum(hi, point)
        margin = 0.05 * np.maximum(hi - lo, 1e-6)
        ranges = {"xRange": (lo[0] - margin[0], hi[0] + margin[0])}
        if cols == 2:
            ranges["yRange"] = (lo[1] - margin[1], hi[1] + margin[1])
        self.plot.getViewBox().setRange(padding=0.0, **ranges)

    def marker_point(self) -> tuple[float, ...]:
        """Where the marker is now, as a point of x-space (x_dim numbers; a free 2-D pad keeps the other
        coordinates of the shown x, clipped to what problem.x_obs accepts)."""
        pos = self.obs_marker.pos()
        moved = [pos.x(), pos.y()] if self.x_dim >= 2 else [float(self.obs_line.value())]
        rest = list(self._x_obs[len(moved):]) if self._x_obs is not None else [0.0] * (self.x_dim - len(moved))
        return tuple(float(np.clip(v, -X_LIMIT, X_LIMIT)) for v in moved + rest)

    def _on_marker_moved(self, _item: object) -> None:  # a drag (``_place`` moves it with signals blocked)
        self.observation_moved.emit(self.marker_point())

    def nudge(self, dx: float, dy: float) -> None:
        """Move x_obs by (dx, dy) steps of NUDGE_FRACTION of the visible range (emits the new point)."""
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        point = list(self.marker_point())
        point[0] += dx * NUDGE_FRACTION * (x1 - x0)
        if self.x_dim >= 2:
            point[1] += dy * NUDGE_FRACTION * (y1 - y0)
        elif dx == 0:
            return
        self._place(np.asarray(point))
        self.observation_moved.emit(self.marker_point())

    def _set_data(self, data: np.ndarray) -> None:
        if not self._held:
            self.plot.getViewBox().enableAutoRange()  # new data: fit it again (a free x may have widened the view)
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
