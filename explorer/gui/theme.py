"""Colours, fonts and pen widths of the figure, in one place.

Made for a projector: a white background with near-black text, a colour-blind-safe palette per run
(Okabe & Ito 2008, "Color Universal Design", with its yellow last: it vanishes on white), a light
perceptual blue colormap for the true posterior (colorcet CET-L12, so the box edge blends into the page)
with q drawn in vermillion on top of it, and the particles' weights on a neutral light-grey → black
scale (black-edged markers) that reads on both and leaves the hues to the runs.

A :class:`Style` carries the two scale factors that every size goes through: ``font_scale`` and
``line_scale`` (the presentation mode enlarges both), and ``export_scale`` (the ratio of an exported
PNG's width to the widget's), which only pens need: pyqtgraph's pens are cosmetic (a width in device
pixels), so without it lines would get thinner at 2x / 4x exports while text and markers grow.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPen

# --------------------------------------------------------------------------- colours
BACKGROUND = "#FFFFFF"
FOREGROUND = "#1A1A1A"  # text, axes
MUTED = "#5A5A5A"  # secondary text
GRID_ALPHA = 0.25

# Okabe-Ito, ordered for a white background: strongest contrasts first, yellow last.
# Orange and vermillion come late: vermillion is q's colour in the posterior panels.
RUN_COLORS = (
    "#0072B2",  # blue
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
)

POSTERIOR_CMAP = "CET-L12"  # light blues, perceptually uniform; low density = near white
POSTERIOR_LINE = "#0B2A4A"  # contours of p(z|x): dark navy, darker than the darkest image colour
Q_COLOR = "#D55E00"  # q(z|x): vermillion, opposite the blues
WEIGHT_STOPS = ("#F4F4F4", "#9A9A9A", "#000000")  # low → high normalised weight: light grey → black
DIVERGED_COLOR = "#C00000"
WARNING_COLOR = "#B35900"
DATA_COLOR = "#7F7F7F"
OBS_COLOR = Q_COLOR

# log10 of the normalised weight w̃ shown by the particle colour bar; w̃ below 10^-3 takes the bottom colour
WEIGHT_LOG_RANGE = (-3.0, 0.0)


def run_color(index: int) -> str:
    return RUN_COLORS[index % len(RUN_COLORS)]


def qcolor(color: str, alpha: int = 255) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def posterior_colormap() -> pg.ColorMap:
    return pg.colormap.get(POSTERIOR_CMAP)


def posterior_lut() -> np.ndarray:
    """[256, 3] uint8 LUT for the density image, computed once."""
    return posterior_colormap().getLookupTable(0.0, 1.0, 256, alpha=False)


def weight_colormap() -> pg.ColorMap:
    return pg.ColorMap(np.linspace(0.0, 1.0, len(WEIGHT_STOPS)), [QColor(c) for c in WEIGHT_STOPS])


def weight_brushes(n: int = 256) -> list[QBrush]:
    """n brushes along the weight colormap, built once and indexed per frame."""
    lut = weight_colormap().getLookupTable(0.0, 1.0, n, alpha=False)
    return [QBrush(QColor(int(r), int(g), int(b))) for r, g, b in lut]


# --------------------------------------------------------------------------- sizes
BASE_FONT_PT = 10.0
PRESENTATION_FONT_SCALE = 1.55
PRESENTATION_LINE_SCALE = 1.8


@dataclass(frozen=True)
class Style:
    """Scale factors applied to every font, pen width and marker size."""

    font_scale: float = 1.0
    line_scale: float = 1.0  # pens and markers (presentation mode)
    export_scale: float = 1.0  # pens only (hi-res PNG export); markers and text scale with the painter
    presentation: bool = False

    @classmethod
    def normal(cls) -> "Style":
        return cls()

    @classmethod
    def talk(cls) -> "Style":
        return cls(PRESENTATION_FONT_SCALE, PRESENTATION_LINE_SCALE, 1.0, True)

    def exporting(self, scale: float) -> "Style":
        return replace(self, export_scale=max(1.0, float(scale)))

    # sizes
    def pt(self, points: float) -> float:
        return points * self.font_scale

    def pt_str(self, points: float) -> str:
        return f"{self.pt(points):.1f}pt"

    def font(self, points: float = BASE_FONT_PT, bold: bool = False) -> QFont:
        f = QFont()
        f.setPointSizeF(self.pt(points))
        f.setBold(bold)
        return f

    def px(self, size: float) -> float:
        """A ScatterPlotItem marker size in pixels (the exporter scales those itself)."""
        return size * self.line_scale

    def cosmetic_px(self, size: float) -> float:
        """A size drawn with a cosmetic pen (PointsItem): scaled on export like the pens."""
        return size * self.line_scale * self.export_scale

    def pen(self, color: str | QColor, width: float = 1.5, style: Qt.PenStyle = Qt.PenStyle.SolidLine,
            alpha: int = 255) -> QPen:
        c = QColor(color) if isinstance(color, str) else QColor(color)
        if alpha != 255:
            c.setAlpha(alpha)
        p = pg.mkPen(c, width=width * self.line_scale * self.export_scale, style=style)
        p.setCapStyle(Qt.PenCapStyle.RoundCap if style == Qt.PenStyle.SolidLine else Qt.PenCapStyle.FlatCap)
        p.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        return p


SOLID = Qt.PenStyle.SolidLine
DASHED = Qt.PenStyle.DashLine
DOTTED = Qt.PenStyle.DotLine

# base widths (pixels at scale 1)
W_AXIS = 1.0
W_CURVE = 2.0
W_CONTOUR_P = 1.3
W_CONTOUR_Q = 2.2
W_REFERENCE = 1.5
W_MARKER_EDGE = 0.8


def style_plot(plot: pg.PlotItem, style: Style, xlabel: str | None = None, ylabel: str | None = None,
               title: str | None = None) -> None:
    """Axes, tick fonts, labels and title of one PlotItem at the given style."""
    axis_pen = style.pen(FOREGROUND, W_AXIS)
    text_pen = pg.mkPen(FOREGROUND)
    tick_font = style.font(BASE_FONT_PT - 1)
    for name in ("left", "bottom", "top", "right"):
        axis = plot.getAxis(name)
        axis.setPen(axis_pen)
        axis.setTextPen(text_pen)
        no_si_prefix(axis)
        # maxTickLevel=1: no third tick level, whose grid lines cost more to paint than everything else
        axis.setStyle(tickFont=tick_font, tickLength=int(round(-5 * style.line_scale)),
                      tickTextOffset=int(round(3 * style.font_scale)), maxTickLevel=1)
    label_css = {"font-size": style.pt_str(BASE_FONT_PT), "color": FOREGROUND}
    if xlabel is not None:
        plot.setLabel("bottom", xlabel, **label_css)
    if ylabel is not None:
        plot.setLabel("left", ylabel, **label_css)
    if title is not None:
        set_title(plot, title, style)


def no_si_prefix(axis: pg.AxisItem) -> None:
    """Tick labels in plain numbers, never scaled by an SI prefix ("nats (x0.001)" confuses more than long
    tick labels do). Sets the axis's state directly: pyqtgraph 0.14's ``enableAutoSIPrefix(False)`` first
    recomputes the prefix, and on an axis with a visible label whose values lie in (0, 1] it leaves a
    ×1000 scale behind with the "(x0.001)" hidden (pitfalls.md). Idempotent: safe on every restyle."""
    axis.autoSIPrefix = False
    if axis.autoSIPrefixScale != 1.0 or axis.labelUnitPrefix:
        axis.autoSIPrefixScale = 1.0
        axis.labelUnitPrefix = ""
        axis._updateLabel()


class PlainAxis(pg.AxisItem):
    """An axis whose tick labels are the plotted values: no SI-prefix scale, decided when it is built."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        no_si_prefix(self)

    def updateAutoSIPrefix(self) -> None:  # noqa: N802 (pyqtgraph's name)
        no_si_prefix(self)  # whoever asks (enableAutoSIPrefix, showLabel), the scale stays 1


def plain_axes(log_left: bool = False) -> dict[str, pg.AxisItem]:
    """The shown axes of a panel (bottom, left) as :class:`PlainAxis` (the left one a :class:`LogAxis` for a
    log y); the hidden top and right ones are pyqtgraph's, set by :func:`style_plot`."""
    return {"bottom": PlainAxis("bottom"), "left": LogAxis("left") if log_left else PlainAxis("left")}


def set_title(plot: pg.PlotItem, html: str, style: Style) -> None:
    """A (possibly multi-line, HTML) title. Unlike ``PlotItem.setTitle`` the title row takes the text's
    height instead of a fixed 30 px, and a long title never forces the layout wider than the figure."""
    label = plot.titleLabel
    label.setVisible(True)
    label.setText(html, size=style.pt_str(BASE_FONT_PT + 1), color=FOREGROUND)
    height = float(np.ceil(label.itemRect().height()))
    if getattr(label, "_vx_height", None) != height:
        label._vx_height = height
        label.setMaximumHeight(height)
        plot.layout.setRowFixedHeight(0, height)


class TextLabel(pg.LabelItem):
    """A LabelItem whose text never forces the layout wider than the figure: its minimum width is 0 (the
    preferred width is still the text's). pyqtgraph's resets the minimum to the text width on every
    setText and resize, so a long title or caption pushes panels off the right edge."""

    prefer_text_width = True  # False: preferred width 0 too, so stretch factors alone share the width

    def updateMin(self) -> None:  # noqa: N802 (pyqtgraph's name)
        bounds = self.itemRect()
        hint = {
            Qt.SizeHint.MinimumSize: (0, bounds.height()),
            Qt.SizeHint.PreferredSize: (bounds.width() if self.prefer_text_width else 0, bounds.height()),
            Qt.SizeHint.MaximumSize: (-1, -1),
            Qt.SizeHint.MinimumDescent: (0, 0),
        }
        if hint == getattr(self, "_sizeHint", None):
            return  # new text, same size: no relayout of the whole figure (titles change every frame)
        self.setMinimumWidth(0)
        self.setMinimumHeight(bounds.height())
        self._sizeHint = hint
        self.updateGeometry()


def use_text_label_title(plot: pg.PlotItem) -> None:
    """Swap a PlotItem's title label for a :class:`TextLabel` (the old one stays, hidden, in the plot)."""
    old = plot.titleLabel
    plot.layout.removeItem(old)
    old.setVisible(False)
    old.setMaximumHeight(0)
    label = TextLabel("", size="11pt")
    label.prefer_text_width = False  # panels in a row share its width evenly, whatever their titles
    label.setParentItem(plot)
    plot.layout.addItem(label, 0, 1)
    plot.titleLabel = label
    label.setVisible(False)
    plot.layout.setRowFixedHeight(0, 0)


def set_label(label: pg.LabelItem, html: str) -> None:
    label.setText(html, color=FOREGROUND)


class LogAxis(PlainAxis):
    """A log axis labelled at decades only (1-2-5 when less than two decades show), minor ticks bare."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 (pyqtgraph's names)
        lo, hi = int(np.floor(minVal)), int(np.ceil(maxVal))
        if hi - lo > 60:  # degenerate range: let pyqtgraph cope
            return super().logTickValues(minVal, maxVal, size, stdTicks)
        inside = lambda v: minVal <= v <= maxVal  # noqa: E731
        decades = [float(v) for v in range(lo, hi + 1) if inside(v)]
        minor = [v + np.log10(m) for v in range(lo, hi) for m in range(2, 10) if inside(v + np.log10(m))]
        step = max(1, int(np.ceil(len(decades) / 6)))  # at most ~6 labels
        if len(decades) >= 2:
            return [(1.0, decades[::step]), (None, minor)]
        labelled = [v + np.log10(m) for v in range(lo - 1, hi + 1) for m in (1, 2, 5) if inside(v + np.log10(m))]
        rest = [m for m in minor if all(abs(m - x) > 1e-9 for x in labelled)]
        return [(0.5, labelled), (None, rest)]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802
        if spacing is None:
            return ["" for _ in values]
        return [log_label(10.0 ** v * scale) for v in values]


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def log_label(x: float) -> str:
    if 1e-3 <= x < 1e4:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.0e}".split("e")
    power = "10" + str(int(exponent)).translate(_SUPERSCRIPT)
    return power if mantissa == "1" else f"{mantissa}·{power}"


def escape(text: str) -> str:
    """Plain text for a Qt rich-text label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a title: a true minus sign, '–' when unknown."""
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}"
    return text.replace("-", "\u2212")
