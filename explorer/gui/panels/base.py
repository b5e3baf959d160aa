"""What the panels share: the Panel base, plot construction, contouring, point items, sanitising,
number formatting and tick helpers."""
from __future__ import annotations

import math
from typing import Callable, Iterable

import contourpy
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPainter, QPaintEngine, QPen, QPixmap, QPolygonF

from explorer.core.snapshot import Snapshot, is_exact

from .. import theme
from ..theme import Style, fmt

# Contours at log-density max − k²/2, k = 1, 2, 3: the 1σ/2σ/3σ ellipses of a Gaussian; the same rule for
# p and q, so the two sets of lines are comparable.
SIGMA_LEVELS = (1.0, 2.0, 3.0)
LOG_FLOOR = 60.0  # log densities more than this below the peak are clipped (exp() is 0 there anyway)
MAX_MODE_LABELS = 8


# --------------------------------------------------------------------------- helpers
def finite_rows(a: np.ndarray | None, cols: int = 2) -> np.ndarray:
    """The rows of an [N, cols] array whose entries are all finite (an empty [0, cols] array for None)."""
    if a is None:
        return np.zeros((0, cols))
    a = np.asarray(a, dtype=np.float64).reshape(-1, cols)
    ok = np.isfinite(a).all(axis=1)
    return a if ok.all() else a[ok]


def sanitise_log_density(log_d: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(log density clipped to [peak − LOG_FLOOR, peak], peak), or None when nothing is finite."""
    a = np.asarray(log_d, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.all():
        if not finite.any():
            return None
        a = np.where(finite, a, -np.inf)
    peak = float(a.max())
    if not math.isfinite(peak):
        return None
    return np.maximum(a, peak - LOG_FLOOR), peak


class Contourer:
    """Contour lines of densities on one fixed grid. Calls contourpy's serial generator directly with the
    grid's 2-D coordinates cached: ``contourpy.contour_generator`` rebuilds them and masks the input on
    every call, which costs more than tracing the lines (~0.15 ms per level on 200²)."""

    def __init__(self, z1: np.ndarray, z2: np.ndarray):
        # contourpy wants arrays indexed [y, x]; our grids are [i₁, i₂] with z₁ (x) along axis 0
        self.shape = (len(z1), len(z2))
        xx, yy = np.meshgrid(np.asarray(z1, np.float64), np.asarray(z2, np.float64))
        self.x, self.y = np.ascontiguousarray(xx), np.ascontiguousarray(yy)

    def lines(self, log_d: np.ndarray, levels: Iterable[float]) -> list[np.ndarray]:
        """For each level, one [P, 2] array of its contour lines separated by NaN rows. ``log_d`` must be
        finite (see :func:`sanitise_log_density`)."""
        z = np.ascontiguousarray(log_d.T, dtype=np.float64)
        gen = contourpy.SerialContourGenerator(
            self.x, self.y, z, None, corner_mask=True, line_type=contourpy.LineType.ChunkCombinedNan,
            fill_type=contourpy.FillType.OuterOffset, quad_as_tri=False, z_interp=contourpy.ZInterp.Linear,
            x_chunk_size=0, y_chunk_size=0)
        out = []
        for level in levels:
            chunks = gen.lines(level)[0]
            parts = [c for c in chunks if c is not None and len(c)]
            out.append(np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else _EMPTY))
        return out


_EMPTY = np.zeros((0, 2))

NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def _nice_step(value: float) -> float:
    """1, 2 or 5 × 10^k, the smallest ≥ ``value`` (> 0)."""
    scale = 10.0 ** math.floor(math.log10(value))
    return next(m * scale for m in (1.0, 2.0, 5.0, 10.0) if m * scale >= value * (1.0 - 1e-12))


def nice_ceil(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k that is ≥ ``value`` (> 0): the live curves'
    step axis grows in these jumps, so it (and its grid) is redrawn ~10 times per decade, not every frame."""
    if not (math.isfinite(value) and value > 0):
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    for mantissa in NICE_MANTISSAS:
        if mantissa * scale >= value * (1.0 - 1e-12):
            return mantissa * scale
    return 10.0 * scale


def same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether grid ``a`` is the one already drawn (same object, or equal values: ~20 µs for 200²)."""
    if a is None or b is None:
        return False
    return a is b or (a.shape == b.shape and np.array_equal(a, b, equal_nan=True))


def set_xy(item: pg.PlotCurveItem, rows: np.ndarray) -> None:
    if len(rows):
        item.setData(rows[:, 0], rows[:, 1])
    else:
        item.setData([], [])


def peak_decimate(rows: np.ndarray, max_points: int = 2000) -> np.ndarray:
    """At most ~``max_points`` rows of a (step, value) history, keeping each bucket's min and max so
    spikes survive (pyqtgraph's 'peak' downsampling, without PlotDataItem's per-call overhead)."""
    n = len(rows)
    if n <= max_points:
        return rows
    bucket = int(math.ceil(n / (max_points // 2)))
    m = n // bucket
    head = rows[: m * bucket].reshape(m, bucket, 2)
    lo = head[np.arange(m), head[:, :, 1].argmin(axis=1)]
    hi = head[np.arange(m), head[:, :, 1].argmax(axis=1)]
    first_lo = lo[:, 0] <= hi[:, 0]  # keep each pair in step order
    pair = np.where(first_lo[:, None, None], np.stack([lo, hi], 1), np.stack([hi, lo], 1))
    return np.concatenate([pair.reshape(-1, 2), rows[m * bucket:]])


class PointsItem(pg.GraphicsObject):
    """Many same-looking round markers. ``ScatterPlotItem.setData`` costs ~1 ms for 500 points (per-point
    records); this costs ~0.02 ms. On raster devices (the screen, PNG exports) each marker is one sprite of
    a pre-rendered antialiased disc, all drawn by one ``drawPixmapFragments`` call: 0.07 ms for 1000
    markers, where antialiased round ``drawPoints`` take 1.7 ms (a third of a frame's paint time with three
    posterior panels). Vector devices (SVG) get true round points (``drawPoints``, round-capped cosmetic
    pen). The marker size is in device pixels, so it follows the style's pen scaling on export."""

    def __init__(self, color: QColor, size: float = 4.0):
        super().__init__()
        self._poly = QPolygonF()
        self._xy = np.zeros((0, 2))
        self._rect = QRectF()
        self._color = QColor(color)
        self._pen = QPen()
        self._sprite: tuple[tuple[float, float], QPixmap, float] | None = None  # ((size, dpr), pixmap, side)
        self._bounds: QRectF | None = None
        self._fragments = pg.Qt.internals.PrimitiveArray(QPainter.PixmapFragment, 10)
        self.setSize(size)

    def setSize(self, size: float) -> None:  # noqa: N802 (pyqtgraph style)
        pen = QPen(self._color)
        pen.setWidthF(float(size))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setCosmetic(True)
        self.prepareGeometryChange()
        self._pen = pen
        self._sprite = None
        self._bounds = None
        self.update()

    def setData(self, pos: np.ndarray) -> None:  # noqa: N802
        pos = finite_rows(pos)
        poly = pg.functions.create_qpolygonf(len(pos))
        if len(pos):
            pg.functions.ndarray_from_qpolygonf(poly)[:] = pos
            lo, hi = pos.min(axis=0), pos.max(axis=0)
            rect = QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
        else:
            rect = QRectF()
        self.prepareGeometryChange()
        self._poly, self._xy, self._rect = poly, pos, rect
        self._bounds = None
        self.update()

    def _sprite_for(self, dpr: float) -> tuple[QPixmap, float]:
        """The marker, an antialiased disc ``size`` device pixels across, rendered once per size."""
        size = self._pen.widthF()
        if self._sprite is None or self._sprite[0] != (size, dpr):
            side = int(math.ceil(size * dpr)) + 2
            image = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self._color)
            d = size * dpr
            painter.drawEllipse(QRectF((side - d) / 2, (side - d) / 2, d, d))
            painter.end()
            self._sprite = ((size, dpr), QPixmap.fromImage(image), float(side))
        return self._sprite[1], self._sprite[2]

    def boundingRect(self) -> QRectF:  # noqa: N802
        # the pen is cosmetic (pixels): pad by its width mapped to item coordinates. Qt asks a few times per
        # frame and pixelLength is slow: keep the answer until the data, the size or the view changes
        if self._bounds is None:
            px = self.pixelLength(pg.Point(1, 0)) or 0.0
            py = self.pixelLength(pg.Point(0, 1)) or 0.0
            w = self._pen.widthF()
            self._bounds = self._rect.adjusted(-w * px, -w * py, w * px, w * py)
        return self._bounds

    def viewTransformChanged(self) -> None:  # noqa: N802 (pyqtgraph's hook)
        self.prepareGeometryChange()
        self._bounds = None
        super().viewTransformChanged()

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):  # noqa: N802, N803
        if self._rect.isNull():
            return None, None
        return (self._rect.left(), self._rect.right()) if ax == 0 else (self._rect.top(), self._rect.bottom())

    def paint(self, painter, *_):
        n = len(self._xy)
        if not n:
            return
        if painter.paintEngine().type() != QPaintEngine.Type.Raster:  # vector output: real round points
            painter.setRenderHint(painter.RenderHint.Antialiasing, True)
            painter.setPen(self._pen)
            painter.drawPoints(self._poly)
            return
        device = painter.device()
        dpr = float(device.devicePixelRatioF()) if device is not None else 1.0
        sprite, side = self._sprite_for(dpr)
        t = painter.transform()  # item → device; markers are drawn in device pixels
        x, y = self._xy[:, 0], self._xy[:, 1]
        self._fragments.resize(n)
        frags = self._fragments.ndarray()
        frags[:, 0] = t.m11() * x + t.m21() * y + t.dx()  # the centre of each marker
        frags[:, 1] = t.m12() * x + t.m22() * y + t.dy()
        frags[:, 2:6] = (0.0, 0.0, side, side)  # source rectangle in the sprite
        frags[:, 6:10] = (1.0 / dpr, 1.0 / dpr, 0.0, 1.0)  # scale x, scale y, rotation, opacity
        painter.resetTransform()  # the scene restores the painter's state after each item
        painter.drawPixmapFragments(*self._fragments.drawargs(), sprite)

    def __len__(self) -> int:
        return self._poly.size()


class Readout:
    """A hover readout: a small text box beside the cursor inside one plot, on the side away from the
    nearest edges. Filled only when the mouse moves (Figure routes the scene's mouse moves): a still
    mouse costs nothing per frame."""

    def __init__(self, plot: pg.PlotItem, style: Style):
        self.plot = plot
        self.item = pg.TextItem(anchor=(0.0, 1.0), color=theme.FOREGROUND, fill=pg.mkBrush(255, 255, 255, 230),
                                border=pg.mkPen(theme.MUTED))
        self.item.setZValue(30)
        self.item.hide()
        plot.addItem(self.item, ignoreBounds=True)
        self.set_style(style)

    def set_style(self, style: Style) -> None:
        self.item.textItem.setFont(style.font(theme.BASE_FONT_PT - 1))

    def show(self, x: float, y: float, html: str) -> None:
        """The readout ``html`` by the point (``x``, ``y``) in view units."""
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        self.item.setAnchor((-0.04 if x < 0.5 * (x0 + x1) else 1.04, 1.08 if y < 0.5 * (y0 + y1) else -0.08))
        self.item.setHtml(html)
        self.item.setPos(x, y)
        self.item.show()

    def hide(self) -> None:
        self.item.hide()

    @property
    def text(self) -> str:
        return self.item.textItem.toPlainText() if self.item.isVisible() else ""


class Panel:
    """Base: a named PlotItem (what a single-panel export renders) plus restylable pens."""

    readout: Readout | None = None

    name: str = ""
    plot: pg.GraphicsWidget

    def __init__(self, style: Style):
        self.style = style
        self._pens: list[tuple[Callable[[object], None], Callable[[Style], object]]] = []

    def keep_pen(self, setter: Callable[[object], None], build: Callable[[Style], object]) -> None:
        """Register a pen (or size) that depends on the style, and apply it now."""
        self._pens.append((setter, build))
        setter(build(self.style))

    def apply_style(self, style: Style) -> None:
        self.style = style
        for setter, build in self._pens:
            setter(build(style))
        if self.readout is not None:
            self.readout.set_style(style)
        self.restyle_text(style)

    def hover(self, x: float | None, y: float | None) -> None:
        """The mouse is at (``x``, ``y``) in view units, or (None, None): outside the view."""
        if self.readout is not None:
            self.readout.hide()

    def restyle_text(self, style: Style) -> None:  # fonts of axes, titles, labels
        pass

    def update(self, snapshot: Snapshot) -> None:
        raise NotImplementedError

    # fixed ranges (a GIF's axes stay put for the whole recording: gif.render_frames)
    def hold_range(self, rect: tuple[float, float, float, float]) -> None:
        """Show ``rect`` and keep it, whatever the snapshots fed next (until :meth:`release_range`)."""
        self.plot.getViewBox().setRange(xRange=rect[:2], yRange=rect[2:], padding=0.0)

    def release_range(self) -> None:
        """Back to the panel's own ranges."""


class ResettableViewBox(pg.ViewBox):
    """A ViewBox that says when it is double-clicked: the panel goes back to its own ranges."""

    sigDoubleClicked = Signal()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph's name)
        if ev.double() and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigDoubleClicked.emit()
            return
        super().mouseClickEvent(ev)


def new_plot(name: str, log_y: bool = False, view_box: pg.ViewBox | None = None) -> pg.PlotItem:
    """A bare PlotItem named ``name``; double-clicking its view (a :class:`ResettableViewBox` unless one
    is given) emits ``plot.getViewBox().sigDoubleClicked``."""
    plot = pg.PlotItem(axisItems=theme.plain_axes(log_left=log_y), viewBox=view_box or ResettableViewBox())
    theme.use_text_label_title(plot)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.getViewBox().setDefaultPadding(0.02)
    plot.setObjectName(name)
    return plot


# --------------------------------------------------------------------------- posterior
def err_digits(value: float | None, err: float | None, digits: int = 2) -> str:
    """A title number with its error: '12.06 ± 0.08' when the error shows at ``digits`` decimals, else
    '12.06' alone; '≈' in front when the number is not exact (error above exact.tolerance)."""
    text = fmt(value, digits)
    if value is None or err is None or not math.isfinite(value):
        return text
    if not math.isfinite(err):
        return f"≈{text}"
    if err >= 0.5 * 10.0**-digits:
        shown = float(f"{err:.1g}")
        text = f"{text} ± {shown:.{max(digits, -math.floor(math.log10(shown)))}f}"
    return text if is_exact(value, err) else f"≈{text}"


def wrap_lines(lines: Iterable[str], metrics: QFontMetricsF, width_px: float) -> list[str]:
    """Each line broken at spaces into lines no wider than ``width_px`` (a single word wider than that
    stays whole): nothing is cut off with '…'."""
    out = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            trial = f"{current} {word}" if current else word
            if current and metrics.horizontalAdvance(trial) > width_px:
                out.append(current)
                current = word
            else:
                current = trial
        out.append(current)
    return out
