"""The plots of the figure, one class per panel.

Each panel builds its graphics items once in ``__init__``; ``update(snapshot)`` only feeds them new data
(``setData`` / ``setImage`` / ``setText``), and ``apply_style(style)`` re-applies fonts and pens (the
presentation mode, hi-res export). Nothing non-finite ever reaches an item: grids are sanitised, samples
and history rows filtered, the NaN row separators of contour lines aside (``connect='finite'`` is made
for them).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import contourpy
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPainter, QPaintEngine, QPen, QPixmap, QPolygonF

from explorer.core.snapshot import RunView, Snapshot, is_exact

from . import theme
from .theme import DASHED, DOTTED, SOLID, Style, fmt

Box = tuple[float, float, float, float]  # (z1_min, z1_max, z2_min, z2_max)
FOLLOW_FILL = 0.5  # the view changes when what it should show fills less than this in both directions...
FOLLOW_MARGIN = 0.1  # ...or leaves it; a new view has this margin on each side, so it does not jitter


def follow(shown: Box | None, wanted: Box) -> Box:
    """The view to show next: ``shown`` while it contains ``wanted`` and ``wanted`` fills at least
    FOLLOW_FILL of it in one direction (hysteresis: no jitter while training moves q a little); else
    ``wanted`` with a margin."""
    if shown is not None and (min(shown[0], wanted[0]), max(shown[1], wanted[1]),
                              min(shown[2], wanted[2]), max(shown[3], wanted[3])) == shown:
        fill = max((wanted[1] - wanted[0]) / (shown[1] - shown[0]), (wanted[3] - wanted[2]) / (shown[3] - shown[2]))
        if fill >= FOLLOW_FILL:
            return shown
    d1, d2 = FOLLOW_MARGIN * (wanted[1] - wanted[0]), FOLLOW_MARGIN * (wanted[3] - wanted[2])
    return wanted[0] - d1, wanted[1] + d1, wanted[2] - d2, wanted[3] + d2


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


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
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


class Panel:
    """Base: a named PlotItem (what a single-panel export renders) plus restylable pens."""

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
        self.restyle_text(style)

    def restyle_text(self, style: Style) -> None:  # fonts of axes, titles, labels
        pass

    def update(self, snapshot: Snapshot) -> None:
        raise NotImplementedError


def _new_plot(name: str, log_y: bool = False, view_box: pg.ViewBox | None = None) -> pg.PlotItem:
    plot = pg.PlotItem(axisItems={"left": theme.LogAxis("left")} if log_y else None, viewBox=view_box)
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


class FollowViewBox(pg.ViewBox):
    """A ViewBox that says when it is double-clicked (the posterior panel: follow the mass again)."""

    sigDoubleClicked = Signal()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph's name)
        if ev.double() and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigDoubleClicked.emit()
            return
        super().mouseClickEvent(ev)


def _finite_box(box: tuple[float, ...] | None) -> bool:
    return box is not None and all(math.isfinite(b) for b in box) and box[1] > box[0] and box[3] > box[2]


class PosteriorPanel(Panel):
    """True posterior p(z|x_obs) (image + contours), q (contours + samples) and the K weighted particles of
    one run, with equal aspect. The view follows where p and q have their mass (``RunView.view_box``):
    calmly while training runs (``follow``: it moves only when the mass leaves it or fills less
    than half of it), exactly on a paused frame (the same frame always looks the same). A pan or zoom by
    the user pins it; a double-click (or ``reset_view``) lets it follow again."""

    def __init__(self, run_index: int, box: tuple[float, float, float, float], style: Style,
                 lut: np.ndarray, weight_brushes: list):
        super().__init__(style)
        self.run_index = run_index
        self.name = f"posterior-{run_index}"
        self.box = box  # the problem's latent box: the view until a snapshot says where the mass is
        self._weight_brushes = weight_brushes
        self._title = ""
        self._diverged: int | None = None
        self._warning = ""
        self._image_rect: tuple | None = None
        self._contourers: dict[tuple, Contourer] = {}
        self._shown_post: np.ndarray | None = None  # the grids drawn last (snapshots are immutable)
        self._shown_q: np.ndarray | None = None
        self._wanted: tuple[float, float, float, float] | None = None  # what the view should show now
        self._target: tuple[float, float, float, float] | None = None  # the range last set by following

        self.nominal_width = 400.0  # the figure sets this before the first layout pass
        self._run: RunView | None = None
        self._pinned = False
        self.plot = plot = _new_plot(self.name, view_box=FollowViewBox())
        vb = plot.getViewBox()
        vb.setAspectLocked(True, ratio=1.0)
        vb.disableAutoRange()
        self._apply_view(box)
        vb.sigResized.connect(self._on_resized)
        vb.sigRangeChangedManually.connect(self._on_user_zoom)
        vb.sigRangeChanged.connect(self._on_range_changed)
        vb.sigDoubleClicked.connect(self.reset_view)

        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setLookupTable(lut)
        # the image covers p's own region; around it, the view shows the image's colour for density 0
        vb.setBackgroundColor(QColor(*(int(c) for c in lut[0][:3])))
        self.image.setZValue(-10)
        plot.addItem(self.image)

        self.p_lines = [pg.PlotCurveItem(connect="finite", antialias=True) for _ in SIGMA_LEVELS]
        self.q_lines = [pg.PlotCurveItem(connect="finite", antialias=True) for _ in SIGMA_LEVELS]
        for i, item in enumerate(self.p_lines):
            item.setZValue(1)
            plot.addItem(item)
            self.keep_pen(item.setPen, lambda s, i=i: s.pen(theme.POSTERIOR_LINE, theme.W_CONTOUR_P * (1.0 - 0.15 * i)))
        for i, item in enumerate(self.q_lines):
            item.setZValue(2)
            plot.addItem(item)
            self.keep_pen(item.setPen, lambda s, i=i: s.pen(theme.Q_COLOR, theme.W_CONTOUR_Q * (1.0 - 0.15 * i)))

        self.q_samples = PointsItem(theme.qcolor(theme.Q_COLOR, 120))
        self.q_samples.setZValue(3)
        plot.addItem(self.q_samples)
        self.keep_pen(self.q_samples.setSize, lambda s: s.cosmetic_px(3.5))

        self.particles = pg.ScatterPlotItem(symbol="o", antialias=True)
        self.particles.setZValue(4)
        plot.addItem(self.particles)
        self.keep_pen(self.particles.setPen, lambda s: s.pen("#000000", theme.W_MARKER_EDGE))

        self.mode_labels = []
        for _ in range(MAX_MODE_LABELS):
            label = pg.TextItem(anchor=(0.5, 1.0), color=theme.FOREGROUND, fill=pg.mkBrush(255, 255, 255, 190))
            label.setZValue(3.5)  # above q's samples, below the particles
            label.hide()
            plot.addItem(label)
            self.mode_labels.append(label)

        self.diverged_text = pg.TextItem(anchor=(0.5, 0.5), color=theme.DIVERGED_COLOR,
                                         fill=pg.mkBrush(255, 255, 255, 215))
        self.diverged_text.setZValue(20)
        self.diverged_text.hide()
        plot.addItem(self.diverged_text)
        self.diverged_frame = pg.QtWidgets.QGraphicsRectItem(QRectF(box[0], box[2], box[1] - box[0], box[3] - box[2]))
        self.diverged_frame.setZValue(19)
        self.diverged_frame.hide()
        plot.addItem(self.diverged_frame)
        self.keep_pen(self.diverged_frame.setPen, lambda s: s.pen(theme.DIVERGED_COLOR, 4.0))

        self.warning_text = pg.TextItem(anchor=(0.0, 0.0), color=theme.WARNING_COLOR,
                                        fill=pg.mkBrush(255, 255, 255, 200))
        self.warning_text.setZValue(15)
        self.warning_text.hide()
        plot.addItem(self.warning_text)

        self.pin_text = pg.TextItem("view pinned · double-click to follow", anchor=(1.0, 0.0), color=theme.DATA_COLOR,
                                    fill=pg.mkBrush(255, 255, 255, 170))
        self.pin_text.setZValue(15)
        self.pin_text.hide()
        plot.addItem(self.pin_text)
        self.restyle_text(style)
        self._place_overlays()

    # ------------------------------------------------------------------ the view
    @property
    def pinned(self) -> bool:
        return self._pinned

    def set_pinned(self, pinned: bool) -> None:
        """Pin the view where it is (True), or let it follow the mass again (False)."""
        self._pinned = bool(pinned)
        self.pin_text.setVisible(self._pinned)
        if not self._pinned:
            self._target = None
            self._follow()

    def reset_view(self) -> None:
        """Follow the mass again (undoes a user's pan or zoom)."""
        self.set_pinned(False)

    def view_rect(self) -> tuple[float, float, float, float]:
        """What the panel shows now: (z1_min, z1_max, z2_min, z2_max)."""
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        return float(x0), float(x1), float(y0), float(y1)

    def _apply_view(self, box: tuple[float, float, float, float]) -> None:
        self._target = box
        self.plot.getViewBox().setRange(xRange=box[:2], yRange=box[2:], padding=0.0)

    def _follow(self, canonical: bool = False) -> None:
        """Follow ``view_box`` with hysteresis, or (``canonical``: a paused frame) show the snapshot's own
        view, so that the same frame looks the same however the panel got there (a reopened session)."""
        if self._pinned:
            return
        wanted = self._wanted if _finite_box(self._wanted) else self.box
        shown = None if self._target is None or canonical else self.view_rect()
        new = follow(shown, wanted)
        if shown is None or new != shown:
            self._apply_view(new)

    def _on_resized(self, *_):
        if not self._pinned and self._target is not None:
            self._apply_view(self._target)  # the aspect changed: show the same target again
        if self._run is not None:  # text placement depends on the pixel size
            self._set_title(self._run)
            self._set_warning(self._run)
        self._place_overlays()

    def _on_user_zoom(self, *_):
        self.set_pinned(True)

    def _on_range_changed(self, *_):
        self._place_overlays()

    def _place_overlays(self) -> None:
        """Texts and the divergence frame sit at the view's edges: move them with the view."""
        x0, x1, y0, y1 = self.view_rect()
        self.warning_text.setPos(x0, y1)
        self.pin_text.setPos(x1, y1)
        self.diverged_text.setPos(0.5 * (x0 + x1), 0.5 * (y0 + y1))
        self.diverged_frame.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        if self._run is not None:
            self._set_modes(self._run)

    # ------------------------------------------------------------------ text
    def restyle_text(self, style: Style) -> None:
        theme.style_plot(self.plot, style, "z₁", "z₂")
        for label in self.mode_labels:
            label.setFont(style.font(theme.BASE_FONT_PT - 1))
        self.diverged_text.setFont(style.font(theme.BASE_FONT_PT + 5, bold=True))
        self.warning_text.setFont(style.font(theme.BASE_FONT_PT - 1.5))
        self.pin_text.setFont(style.font(theme.BASE_FONT_PT - 2))
        if self._run is not None:
            self._title = ""
            self._set_title(self._run)
            self._warning = ""
            self._set_warning(self._run)

    def title_html(self, run: RunView) -> str:
        """Run name in its colour, then the live exact numbers with their error where it shows (≈ marks
        a number that is not exact): on one line if it fits the panel, else on two, in a smaller font if
        even those would not fit (many runs on a small screen)."""
        m = run.metrics
        color = theme.run_color(run.index)
        first = (f"log p(x) {err_digits(m.get('log_px'), m.get('log_px_err'))} · "
                 f"KL(q‖p) {err_digits(m.get('kl_qp'), m.get('kl_qp_err'))}")
        second = f"KL(p‖q) {err_digits(m.get('kl_pq'), m.get('kl_pq_err'))} · ESS/K {fmt(m.get('ess_frac'))}"
        metrics = QFontMetricsF(self.style.font(theme.BASE_FONT_PT))
        vb_width = self.plot.getViewBox().width()  # the title is centred over the view's column
        width = (vb_width if vb_width > 50 else self.nominal_width) - 12
        points = self.style.pt(theme.BASE_FONT_PT)
        if metrics.horizontalAdvance(f"{first} · {second}") <= width:
            numbers = f"{first} · {second}"
        else:
            numbers = f"{first}<br>{second}"
            widest = max(metrics.horizontalAdvance(first), metrics.horizontalAdvance(second))
            if widest > width:
                points = max(points * width / widest, 0.6 * points)
        name_pt = min(self.style.pt(theme.BASE_FONT_PT + 1), points * 1.1)
        return (f"<span style='color:{color}; font-weight:bold; font-size:{name_pt:.1f}pt'>"
                f"■ {theme.escape(run.name)}</span><br><span style='font-size:{points:.1f}pt'>{numbers}</span>")

    def _set_title(self, run: RunView) -> None:
        title = self.title_html(run)
        if title != self._title:
            self._title = title
            theme.set_title(self.plot, title, self.style)

    # ------------------------------------------------------------------ data
    def update(self, snapshot: Snapshot) -> None:
        run = snapshot.runs[self.run_index]
        self._run = run
        self._set_title(run)
        self._wanted = run.view_box
        self._follow(canonical=snapshot.paused)

        # p(z|x) is unchanged from frame to frame when the decoder is frozen, q while paused: skip both
        if not _same_array(run.log_post, self._shown_post):
            self._shown_post = run.log_post
            self._set_posterior(snapshot, run)
        if not _same_array(run.log_q, self._shown_q):
            self._shown_q = run.log_q
            q = sanitise_log_density(run.log_q)
            if q is None:
                for item in self.q_lines:
                    item.setData([], [])
            else:
                self._set_contours(self.q_lines, self._grid_box(snapshot, run.q_box), *q)

        self.q_samples.setData(run.q_samples)

        self._set_particles(run)
        self._set_modes(run)
        self._set_diverged(run.diverged_step)
        self._set_warning(run)

    def _grid_box(self, snapshot: Snapshot, box: tuple[float, float, float, float] | None) -> tuple[float, ...]:
        return tuple(box) if _finite_box(box) else tuple(snapshot.box)

    def _set_posterior(self, snapshot: Snapshot, run: RunView) -> None:
        post = sanitise_log_density(run.log_post)
        if post is None:
            self.image.clear()
            for item in self.p_lines:
                item.setData([], [])
            return
        log_p, peak = post
        density = np.exp(log_p - peak)  # in (0, 1]
        u8 = (density * 255.0 + 0.5).astype(np.uint8)  # through the precomputed 256-entry LUT
        self.image.setImage(u8, autoLevels=False, levels=(0, 255))
        b = self._grid_box(snapshot, run.post_box)
        if self._image_rect != (b, u8.shape):
            self._image_rect = (b, u8.shape)
            self.image.setRect(QRectF(b[0], b[2], b[1] - b[0], b[3] - b[2]))
        self._set_contours(self.p_lines, b, log_p, peak)

    def _set_contours(self, items: list[pg.PlotCurveItem], box: tuple[float, ...], log_d: np.ndarray,
                      peak: float) -> None:
        levels = [peak - 0.5 * k * k for k in SIGMA_LEVELS]
        key = (box, log_d.shape)
        contourer = self._contourers.get(key)
        if contourer is None:
            if len(self._contourers) > 8:  # the boxes move while the decoder learns: keep a few
                self._contourers.clear()
            n1, n2 = log_d.shape
            h1, h2 = (box[1] - box[0]) / n1, (box[3] - box[2]) / n2
            contourer = self._contourers[key] = Contourer(box[0] + h1 * (np.arange(n1) + 0.5),
                                                          box[2] + h2 * (np.arange(n2) + 0.5))
        for item, line in zip(items, contourer.lines(log_d, levels)):
            if len(line):
                item.setData(line[:, 0], line[:, 1], connect="finite")
            else:
                item.setData([], [])

    def _set_particles(self, run: RunView) -> None:
        pos = np.asarray(run.particles, dtype=np.float64).reshape(-1, 2)
        w = np.asarray(run.weights, dtype=np.float64).reshape(-1)
        n = min(len(pos), len(w))
        pos, w = pos[:n], w[:n]
        ok = np.isfinite(pos).all(axis=1) & np.isfinite(w)
        pos, w = pos[ok], np.clip(w[ok], 0.0, 1.0)
        if not len(pos):
            self.particles.setData(pos=np.zeros((0, 2)))
            return
        order = np.argsort(w)  # heaviest drawn last, on top
        pos, w = pos[order], w[order]
        lo, hi = theme.WEIGHT_LOG_RANGE
        t = (np.log10(np.maximum(w, 10.0**lo)) - lo) / (hi - lo)
        idx = np.clip((t * (len(self._weight_brushes) - 1)).round().astype(int), 0, len(self._weight_brushes) - 1)
        brushes = [self._weight_brushes[i] for i in idx]
        # half-pixel steps: the scatter's symbol atlas caches each (size, brush) it has drawn once
        sizes = np.round((self.style.px(4.5) + self.style.px(15.5) * np.sqrt(w)) * 2.0) / 2.0
        self.particles.setData(pos=pos, size=sizes, brush=brushes)

    def _set_modes(self, run: RunView) -> None:
        """Label each posterior mode with its mass under p and under q along the view's bottom edge, under
        the mode, stacking upwards where labels would overlap (the top edge is left to warnings)."""
        b = self.view_rect()
        modes = [md for md in run.modes[:MAX_MODE_LABELS]
                 if math.isfinite(md.center[0]) and math.isfinite(md.p_mass) and math.isfinite(md.q_mass)]
        if len(modes) < 2:  # one basin: the title's KLs say it all
            modes = []
        px, py = self._pixel_size()
        metrics = QFontMetricsF(self.mode_labels[0].textItem.font())
        row_h = (metrics.height() + 6) * py
        rows: list[list[tuple[float, float]]] = []
        shown = 0
        for mode in sorted(modes, key=lambda md: md.center[0]):
            text = f"p {mode.p_mass:.0%} · q {mode.q_mass:.0%}"
            half = 0.5 * (metrics.horizontalAdvance(text) + 10) * px
            cx = min(max(mode.center[0], b[0] + half), b[1] - half)
            row = next((r for r, taken in enumerate(rows) if all(abs(cx - x) > half + h for x, h in taken)),
                       len(rows))
            if row == len(rows):
                rows.append([])
            rows[row].append((cx, half))
            label = self.mode_labels[shown]
            shown += 1
            label.setText(text)
            label.setPos(cx, b[2] + row * row_h)
            label.show()
        for label in self.mode_labels[shown:]:
            label.hide()

    def _pixel_size(self) -> tuple[float, float]:
        """View units per screen pixel (a guess from the nominal width before the first layout)."""
        px, py = self.plot.getViewBox().viewPixelSize()
        if not (math.isfinite(px) and px > 0 and math.isfinite(py) and py > 0):
            x0, x1, _, _ = self.view_rect()
            px = py = (x1 - x0) / max(self.nominal_width, 100.0)
        return px, py

    def _set_warning(self, run: RunView) -> None:
        """The run's warnings (a skipped SNR probe, why a number is approximate), one line each across the
        top of the view, broken into several where the panel is narrow: never cut short with '…'."""
        lines = [f"approximate: {run.approximate}"] if run.approximate else []
        lines += [f"⚠ {w}" for w in run.warnings if not w.startswith("diverged")]
        x0, x1, _, _ = self.view_rect()
        width_px = max(60.0, (x1 - x0) / self._pixel_size()[0] - 10)
        metrics = QFontMetricsF(self.warning_text.textItem.font())
        warning = "\n".join(wrap_lines(lines, metrics, width_px))
        if warning != self._warning:
            self._warning = warning
            self.warning_text.setText(warning)
            self.warning_text.setVisible(bool(warning))

    def _set_diverged(self, step: int | None) -> None:
        if step == self._diverged:
            return
        self._diverged = step
        if step is None:
            self.diverged_text.hide()
            self.diverged_frame.hide()
        else:
            self.diverged_text.setText(f"DIVERGED at step {step}")
            self.diverged_text.show()
            self.diverged_frame.show()

    @property
    def diverged_visible(self) -> bool:
        return self.diverged_text.isVisible()


# --------------------------------------------------------------------------- data
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
        self.plot = plot = _new_plot(self.name)
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
# kind -> (title, y label, log y, [(metric, pen style, legend word)])
CURVE_KINDS: dict[str, tuple[str, str, bool, list[tuple[str, Qt.PenStyle, str]]]] = {
    "snr": ("gradient SNR", "SNR", True,
            [("snr_encoder", SOLID, "encoder φ"), ("snr_decoder", DASHED, "decoder θ")]),
    "bounds": ("bounds on log p(x)", "nats", False,
               [("bound", SOLID, "MC L_K"), ("elbo", DASHED, "MC ELBO")]),
    "kl": ("KL divergences (quadrature)", "nats", False,
           [("kl_qp", SOLID, "KL(q‖p)"), ("kl_pq", DASHED, "KL(p‖q)")]),
    "ess": ("ESS / K", "ESS / K", False, [("ess_frac", SOLID, "ESS/K")]),
}
_STYLE_WORD = {SOLID: "solid", DASHED: "dashed", DOTTED: "dotted"}


class CurvesPanel(Panel):
    """History curves of one group of metrics, one colour per run (shared legend in the figure)."""

    def __init__(self, kind: str, n_runs: int, style: Style):
        super().__init__(style)
        self.kind = kind
        self.name = kind
        self.n_runs = n_runs
        title, ylabel, log_y, series = CURVE_KINDS[kind]
        self.series = series
        self.log_y = log_y
        self.ylabel = ylabel
        self._last: dict[tuple[int, str], tuple[int, float, float]] = {}
        self._floor: float | None = None
        keys = [f"{_STYLE_WORD[pen]}: {word}" for _, pen, word in series] if len(series) > 1 else []
        if kind == "bounds":
            keys.append("dotted: exact log p(x)")
        self.title_text = title
        self.keys_text = " · ".join(keys)

        self.plot = plot = _new_plot(self.name, log_y)
        plot.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
        if log_y:
            plot.setLogMode(x=False, y=True)
        # y range: fixed for ESS/K; else robust (2-98 % quantiles, plus the latest values and the
        # references), so one wild MC estimate cannot flatten every curve, until the user zooms
        self._y_values: dict[tuple[int, str], np.ndarray] = {}
        self._y_dirty = False
        self._user_zoomed = False
        # x range: first step to nice_ceil(last step) (see nice_ceil), set here rather than by autorange
        self._x_range: tuple[float, float] | None = None
        self._y_range: tuple[float, float] | None = None
        vb = plot.getViewBox()
        vb.enableAutoRange(axis="y", enable=False)
        vb.enableAutoRange(axis="x", enable=False)
        vb.sigRangeChangedManually.connect(self._on_user_zoom)
        vb.sigResized.connect(self._on_resized)
        self._title = ""
        if kind == "ess":
            plot.setYRange(0.0, 1.0, padding=0.03)

        # PlotCurveItem, not PlotDataItem: setData costs 0.01 ms instead of 0.2 ms; long histories are
        # peak-decimated here and log-y values are passed as log10 (the axis is in log mode)
        self.curves: dict[tuple[int, str], pg.PlotCurveItem] = {}
        for i in range(n_runs):
            color = theme.run_color(i)
            for metric, pen_style, _ in series:
                # antialiasing off on screen (a third of the paint time); exports antialias regardless
                item = pg.PlotCurveItem(antialias=False)
                plot.addItem(item)
                self.keep_pen(item.setPen, lambda s, c=color, ps=pen_style: s.pen(c, theme.W_CURVE, ps))
                self.curves[(i, metric)] = item

        self.reference: pg.PlotCurveItem | None = None
        self.run_references: list[pg.PlotCurveItem] = []
        if kind == "bounds":  # exact log p(x): one black line when every run has the same model
            self.reference = pg.PlotCurveItem(antialias=True)
            self.reference.setZValue(-1)
            plot.addItem(self.reference)
            self.keep_pen(self.reference.setPen, lambda s: s.pen(theme.FOREGROUND, theme.W_REFERENCE, DOTTED))
            for i in range(n_runs):
                item = pg.PlotCurveItem(antialias=True)
                item.setZValue(-1)
                item.hide()
                plot.addItem(item)
                self.keep_pen(item.setPen, lambda s, c=theme.run_color(i): s.pen(c, theme.W_REFERENCE, DOTTED))
                self.run_references.append(item)

        self.floor_line: pg.InfiniteLine | None = None
        if kind == "snr":
            self.floor_line = pg.InfiniteLine(angle=0, movable=False, label="estimation floor 0.8/√R",
                                              labelOpts={"position": 0.02, "anchors": [(0, 0), (0, 0)],
                                                         "color": theme.MUTED})
            self.floor_line.setZValue(-2)
            self.floor_line.hide()
            plot.addItem(self.floor_line)
            self.keep_pen(self.floor_line.setPen, lambda s: s.pen(theme.MUTED, theme.W_REFERENCE, DASHED))
        self.restyle_text(style)

    def _title_html(self, style: Style) -> str:
        """Title, then the line-style key in small grey text, broken into lines if it does not fit."""
        if not self.keys_text:
            return self.title_text
        font = style.font(theme.BASE_FONT_PT - 1)
        vb_width = self.plot.getViewBox().width()
        width = vb_width + 40 if vb_width > 50 else 400.0
        keys = self.keys_text
        if QFontMetricsF(font).horizontalAdvance(keys) > width - 16:
            keys = keys.replace(" · ", "<br>")
        return (f"{self.title_text}<br><span style='color:{theme.MUTED}; "
                f"font-size:{style.pt_str(theme.BASE_FONT_PT - 1)}'>{keys}</span>")

    def _on_resized(self, *_) -> None:
        title = self._title_html(self.style)
        if title != self._title:
            self._title = title
            theme.set_title(self.plot, title, self.style)

    def restyle_text(self, style: Style) -> None:
        self._title = self._title_html(style)
        theme.style_plot(self.plot, style, "step", self.ylabel, self._title)
        if self.floor_line is not None:
            self.floor_line.label.setFont(style.font(theme.BASE_FONT_PT - 1))

    def update(self, snapshot: Snapshot) -> None:
        for run in snapshot.runs:
            if run.index >= self.n_runs:
                continue
            hist = snapshot.history.get(run.name, {})
            for metric, _, _ in self.series:
                self._set_series(self.curves[(run.index, metric)], (run.index, metric), hist.get(metric))
        if self.kind == "bounds":
            self._update_reference(snapshot)
        if self.floor_line is not None:
            floor = snapshot.snr_floor
            if floor != self._floor:
                self._floor = floor
                self._y_dirty = True
                if floor is not None and math.isfinite(floor) and floor > 0:
                    self.floor_line.show()  # the label only reformats while visible
                    self.floor_line.setPos(math.log10(floor))
                    self.floor_line.label.setFormat(
                        f"estimation floor 0.8/√R (R = {snapshot.snr_replicates})")
                else:
                    self.floor_line.hide()
        if self._y_dirty and not self._user_zoomed and self.kind != "ess":
            self._set_y_range()
        if not self._user_zoomed:
            self._set_x_range()

    def _set_series(self, item: pg.PlotCurveItem, key: tuple[int, str], rows: np.ndarray | None) -> None:
        rows = finite_rows(rows)
        if self.log_y and len(rows):
            rows = rows[rows[:, 1] > 0]
        sig = (len(rows), float(rows[-1, 0]) if len(rows) else 0.0, float(rows[-1, 1]) if len(rows) else 0.0,
               float(rows[0, 0]) if len(rows) else 0.0)
        if self._last.get(key) == sig:
            return  # unchanged history: skip the redraw
        self._last[key] = sig
        rows = peak_decimate(rows)
        if self.log_y and len(rows):
            rows = np.column_stack([rows[:, 0], np.log10(rows[:, 1])])
        set_xy(item, rows)
        self._y_values[key] = rows[:, 1]
        self._y_dirty = True

    def _on_user_zoom(self, *_) -> None:
        self._user_zoomed = True

    def _set_x_range(self) -> None:
        """From the first step shown to nice_ceil(the last): changes only when the last step passes a nice
        value, so the step axis is not redrawn on every frame."""
        extents = [(sig[3], sig[1]) for sig in self._last.values() if sig[0] > 0]
        if not extents:
            return
        lo = min(first for first, _ in extents)
        hi = max(last for _, last in extents)
        target = (lo, lo + nice_ceil(hi - lo))
        if target != self._x_range:
            self._x_range = target
            self.plot.setXRange(*target, padding=0.02)

    def reset_view(self) -> None:
        """Back to automatic ranges after a user zoom."""
        self._user_zoomed = False
        self._x_range = self._y_range = None
        self._set_x_range()
        if self.kind == "ess":
            self.plot.setYRange(0.0, 1.0, padding=0.03)
        else:
            self._set_y_range()

    def _set_y_range(self) -> None:
        self._y_dirty = False
        # the bounds panel frames L_K and log p(x): an IWAE's MC ELBO can sit 1000 nats below them and
        # would flatten both; it runs off the bottom instead
        visible = [v for key, v in self._y_values.items() if len(v) and self._item(key).isVisible()
                   and (self.kind != "bounds" or key[1] != "elbo")]
        if not visible:
            return
        values = np.concatenate(visible)
        lo, hi = np.quantile(values, [0.02, 0.98])
        must = [v[-1] for v in visible]  # the latest values always show
        refs = [v for key, v in self._y_values.items() if key[1] == "log_px" and len(v) and self._item(key).isVisible()]
        if refs:
            ref = np.concatenate(refs)
            must += [ref.min(), ref.max()]
        lo, hi = min([lo, *must]), max([hi, *must])
        if self.floor_line is not None and self._floor and self._floor > 0:
            # room below the floor's line for its label, one text line high
            floor = math.log10(self._floor)
            height_px = max(self.plot.getViewBox().height(), 60.0)
            label_px = QFontMetricsF(self.floor_line.label.textItem.font()).height() + 6
            lo_with_floor = min(lo, floor)
            units_per_px = (hi - lo_with_floor) * 1.12 / max(height_px - label_px, 20.0)
            lo = min(lo, floor - min(label_px * units_per_px, 0.6))  # at most 0.6 decade of room
        span = hi - lo
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return
        if span < 1e-9:
            span = max(abs(hi) * 0.1, 0.1)
            lo, hi = lo - span / 2, hi + span / 2
        # snap both ends outwards to a grid of span/20 (a 1-2-5 step): the range, and with it the axis and
        # its grid lines, then changes only when a value crosses a grid line, not on every frame; and it
        # stays a function of the snapshot alone, so the same snapshot always draws the same picture
        step = _nice_step(span / 20.0)
        lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
        span = hi - lo
        target = (lo - 0.06 * span, hi + 0.06 * span)
        if target != self._y_range:
            self._y_range = target
            self.plot.setYRange(*target, padding=0.0)

    def _item(self, key: tuple[int, str]) -> pg.PlotCurveItem:
        if key[0] == -1:
            assert self.reference is not None
            return self.reference
        if key[1] == "log_px" and self.kind == "bounds" and key not in self.curves:
            return self.run_references[key[0]]
        return self.curves[key]

    def _update_reference(self, snapshot: Snapshot) -> None:
        latest = [r.metrics.get("log_px") for r in snapshot.runs]
        finite = [v for v in latest if v is not None and math.isfinite(v)]
        shared = len(finite) == len(latest) and (max(finite) - min(finite) <= 1e-6 * (1.0 + abs(finite[0])))
        assert self.reference is not None
        self.reference.setVisible(shared)
        for item in self.run_references:
            item.setVisible(not shared)
        if shared:
            run = snapshot.runs[0]
            self._set_series(self.reference, (-1, "log_px"), snapshot.history.get(run.name, {}).get("log_px"))
        else:
            for run, item in zip(snapshot.runs, self.run_references):
                self._set_series(item, (run.index, "log_px"), snapshot.history.get(run.name, {}).get("log_px"))


# --------------------------------------------------------------------------- weights
class WeightsPanel(Panel):
    """Each run's normalised weights w̃ of its K particles, sorted, on a log axis from 10⁻⁶ to 1, with the
    uniform weight 1/K dotted."""

    Y_RANGE = (-6.0, 0.25)  # log10 w̃; lighter weights fall below the axis

    def __init__(self, n_runs: int, style: Style):
        super().__init__(style)
        self.name = "weights"
        self.n_runs = n_runs
        self._uniform: list[float | None] = [None] * n_runs
        self.plot = plot = _new_plot(self.name, log_y=True)
        plot.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
        plot.setLogMode(x=False, y=True)
        plot.setYRange(*self.Y_RANGE, padding=0.02)
        plot.getViewBox().enableAutoRange(axis="y", enable=False)
        # x: rank 1 … the largest K, set when K changes (autorange would follow the number of non-zero
        # weights, which changes every frame, and redraw the axis with it)
        plot.getViewBox().enableAutoRange(axis="x", enable=False)
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
