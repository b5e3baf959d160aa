"""The gradient histograms (Rainforth et al. 2018, Fig. 2): the SNR probe's R replicate gradient estimates of
one encoder parameter and one decoder parameter, per run, side by side on common axes.

One row of small plots: the encoder φ's histograms, one per run, then the decoder θ's (when it learns), each
group on common axes under a header naming its parameter. Each histogram
(a density, on the row's common bins) has its mean marked (a solid line in the run's colour), ± one
standard deviation shaded and zero marked (dashed): the picture behind the SNR number |mean| / sd. As K
grows, IWAE's encoder histogram narrows *and* closes in on zero, faster than it narrows; the decoder's
narrows around a mean that stays put. The mean and sd are the probe's own (over all R replicates; the
histogram shows the first ≤ 4096). ``set_frozen(True)`` keeps the axes and bins as they are (animations).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from explorer.core.snapshot import GradientSample, Snapshot

from .. import theme
from ..theme import DASHED, Style, fmt
from .base import Panel, new_plot

GROUPS = (("encoder", "encoder φ"), ("decoder", "decoder θ"))
BINS = 30
TAIL = 0.005  # the x range covers the 0.5–99.5 % quantiles of every run's values (and zero, mean ± sd)
Range = tuple[float, float]


class _GridLayout(pg.GraphicsLayout):
    """The panel's item: a grid of plots. ``getViewBox().prepareForPaint()`` (what the figure calls on each
    panel's item after an update) settles every plot in it."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[pg.PlotItem] = []

    def getViewBox(self) -> "_GridLayout":  # noqa: N802 (pyqtgraph's name)
        return self

    def prepareForPaint(self) -> None:  # noqa: N802
        for plot in self.plots:
            plot.getViewBox().prepareForPaint()


class Histogram:
    """One run's histogram of one parameter: bars, ± sd band, mean line, zero line, and its title."""

    def __init__(self, plot: pg.PlotItem, index: int, keep_pen) -> None:
        self.plot, self.index = plot, index
        color = theme.run_color(index)
        self.band = pg.LinearRegionItem(orientation="vertical", movable=False,
                                        brush=pg.mkBrush(theme.qcolor(color, 45)), pen=pg.mkPen(None))
        self.band.setZValue(-5)
        self.curve = pg.PlotCurveItem(x=np.array([0.0, 1.0]), y=np.array([0.0]), stepMode="center",
                                      fillLevel=0.0, brush=pg.mkBrush(theme.qcolor(color, 110)))
        self.mean_line = pg.InfiniteLine(angle=90, movable=False)
        self.zero_line = pg.InfiniteLine(pos=0.0, angle=90, movable=False)
        self.zero_line.setZValue(-2)
        for item in (self.band, self.curve, self.mean_line, self.zero_line):
            plot.addItem(item)
        keep_pen(self.curve.setPen, lambda s: s.pen(color, theme.W_AXIS))
        keep_pen(self.mean_line.setPen, lambda s: s.pen(color, theme.W_CURVE * 1.3))
        keep_pen(self.zero_line.setPen, lambda s: s.pen(theme.FOREGROUND, theme.W_REFERENCE, DASHED))
        self.note = pg.TextItem(anchor=(0.5, 0.5), color=theme.MUTED)
        plot.addItem(self.note)
        self.sample: GradientSample | None = None
        self.title = ""

    def show(self, sample: GradientSample | None, edges: np.ndarray, missing: str) -> None:
        """Draw ``sample`` on the row's bin ``edges`` (or say why there is nothing: ``missing``)."""
        self.sample = sample
        has = sample is not None and len(sample.values) > 0
        for item in (self.band, self.curve, self.mean_line):
            item.setVisible(has)
        self.note.setVisible(not has)
        if not has:
            self.note.setText(missing)
            self.note.setPos(0.5 * (edges[0] + edges[-1]), 0.5)
            return
        assert sample is not None
        values = np.asarray(sample.values, dtype=np.float64)
        values = values[np.isfinite(values)]
        counts, _ = np.histogram(values, bins=edges)
        density = counts / max(len(values), 1) / np.diff(edges)
        self.curve.setData(edges, density, stepMode="center", fillLevel=0.0)
        mean, sd = float(sample.mean), float(sample.sd)
        if math.isfinite(mean):
            self.mean_line.setPos(mean)
        self.band.setVisible(math.isfinite(mean) and math.isfinite(sd))
        if self.band.isVisible():
            self.band.setRegion((mean - sd, mean + sd))

    @property
    def peak(self) -> float:
        if self.sample is None or not self.curve.isVisible():
            return 0.0
        y = self.curve.getData()[1]
        return float(np.max(y)) if y is not None and len(y) else 0.0


class GradientsPanel(Panel):
    """Per run, histograms of the probe's replicate gradients of one encoder and one decoder parameter."""

    def __init__(self, n_runs: int, style: Style):
        super().__init__(style)
        self.name = "gradients"
        self.n_runs = n_runs
        self.plot = _GridLayout()
        self.plot.setContentsMargins(0, 0, 0, 0)
        self.plot.setSpacing(4)
        self.rows: dict[str, list[Histogram]] = {}
        self.headers: dict[str, pg.LabelItem] = {}
        self._groups: tuple[str, ...] | None = None
        self._frozen = False
        self._ranges: dict[str, tuple[Range, float]] = {}  # group → (x range, y max) shown
        self._header_html: dict[str, str] = {}
        self._drawn: tuple | None = None  # what the last update drew (see _drawn_key); None: redraw
        self._build(("encoder",))

    # ------------------------------------------------------------------ layout
    def _build(self, groups: tuple[str, ...]) -> None:
        self.plot.clear()
        self.plot.plots = []
        self._pens = []
        self.rows, self.headers, self._header_html, self._ranges = {}, {}, {}, {}
        self._groups = groups
        for g, group in enumerate(groups):
            first = g * self.n_runs
            header = theme.TextLabel(justify="left")
            header.prefer_text_width = False  # the header's columns share the width with the other group's
            self.plot.addItem(header, row=0, col=first, colspan=self.n_runs)
            self.headers[group] = header
            row = []
            for i in range(self.n_runs):
                plot = new_plot(f"{self.name}-{group}-{i}")
                plot.getViewBox().enableAutoRange(enable=False)
                plot.getViewBox().setMouseEnabled(x=False, y=False)
                plot.hideAxis("left")
                self.plot.addItem(plot, row=1, col=first + i)
                self.plot.layout.setColumnStretchFactor(first + i, 1)
                self.plot.plots.append(plot)
                row.append(Histogram(plot, i, self.keep_pen))
            self.rows[group] = row
            if g:  # a gap between the groups
                self.plot.layout.setColumnSpacing(first - 1, 24)
        self.restyle_text(self.style)

    def restyle_text(self, style: Style) -> None:
        for row in self.rows.values():
            for hist in row:
                theme.style_plot(hist.plot, style, None, None)
                hist.note.setFont(style.font(theme.BASE_FONT_PT - 1))
                hist.title = ""
        self._header_html = {}
        self._drawn = None

    # ------------------------------------------------------------------ freezing
    @property
    def frozen(self) -> bool:
        return self._frozen

    def set_frozen(self, frozen: bool) -> None:
        """Keep the axes and the bins where they are (True), or follow the data again (False)."""
        self._frozen = bool(frozen)
        self._drawn = None

    # ------------------------------------------------------------------ data
    def update(self, snapshot: Snapshot) -> None:
        drawn = _drawn_key(snapshot)
        if drawn == self._drawn:  # no probe since the last frame (one every ~20 steps): nothing to redraw
            return
        self._drawn = drawn
        samples = {group: [_sample(run.gradients, group) for run in snapshot.runs[: self.n_runs]]
                   for group, _ in GROUPS}
        groups = tuple(g for g, _ in GROUPS if g == "encoder" or any(s is not None for s in samples[g]))
        if groups != self._groups:
            self._build(groups)
        for group in groups:
            row, found = self.rows[group], samples[group]
            x_range = self._x_range(group, found)
            edges = np.linspace(x_range[0], x_range[1], BINS + 1)
            for hist, sample in zip(row, found):
                hist.show(sample, edges, "θ is frozen" if snapshot.runs[hist.index].gradients else "no probe yet")
            y_max = self._y_max(group, row)
            for hist in row:
                hist.plot.setXRange(*x_range, padding=0.0)
                hist.plot.setYRange(0.0, y_max, padding=0.0)
                hist.note.setPos(0.5 * (x_range[0] + x_range[1]), 0.5 * y_max)
            self._ranges[group] = (x_range, y_max)
            self._set_titles(snapshot, group, found)

    def _x_range(self, group: str, found: list[GradientSample | None]) -> Range:
        if self._frozen and group in self._ranges:
            return self._ranges[group][0]
        points = [0.0]
        for s in found:
            if s is None or not len(s.values):
                continue
            v = np.asarray(s.values, dtype=np.float64)
            v = v[np.isfinite(v)]
            if len(v):
                points += [float(np.quantile(v, TAIL)), float(np.quantile(v, 1.0 - TAIL))]
            if math.isfinite(s.mean) and math.isfinite(s.sd):
                points += [s.mean - s.sd, s.mean + s.sd]
        lo, hi = min(points), max(points)
        if not hi > lo:
            lo, hi = lo - 1.0, hi + 1.0
        pad = 0.05 * (hi - lo)
        return lo - pad, hi + pad

    def _y_max(self, group: str, row: list[Histogram]) -> float:
        if self._frozen and group in self._ranges:
            return self._ranges[group][1]
        peak = max([h.peak for h in row] + [0.0])
        return 1.08 * peak if peak > 0 else 1.0

    def _set_titles(self, snapshot: Snapshot, group: str, found: list[GradientSample | None]) -> None:
        word = dict(GROUPS)[group]
        first = next((s for s in found if s is not None), None)
        labels = {s.label for s in found if s is not None}
        what = theme.escape(first.label.split(": ", 1)[-1]) if first is not None else ""
        if len(labels) > 1:
            what += " (differs between runs: see the titles)"
        size = self.style.pt_str(theme.BASE_FONT_PT)
        muted = self.style.pt_str(theme.BASE_FONT_PT - 1)
        if group == "encoder":  # what the marks mean and where the numbers come from, once
            probe = f"R = {first.replicates} gradient estimates at step {first.step}; " if first is not None else ""
            what += (f"<br><span style='color:{theme.MUTED}; font-size:{muted}'>{probe}line: mean, shaded: ± 1 sd, "
                     "dashed: zero</span>")
        html = f"<span style='font-size:{size}'><b>{word}</b>: {what}</span>"
        if html != self._header_html.get(group):
            self._header_html[group] = html
            theme.set_label(self.headers[group], html)
        for hist, sample in zip(self.rows[group], found):
            run = snapshot.runs[hist.index]
            snr = fmt(abs(sample.mean) / sample.sd if sample is not None and sample.sd > 0 else None)
            detail = f" · {theme.escape(sample.parameter)}" if sample is not None and len(labels) > 1 else ""
            title = (f"<span style='color:{theme.run_color(hist.index)}; font-weight:bold'>■ {theme.escape(run.name)}"
                     f"</span> <span style='font-size:{muted}'>|mean|/sd {snr}{detail}</span>")
            if title != hist.title:
                hist.title = title
                theme.set_title(hist.plot, title, self.style)


def _drawn_key(snapshot: Snapshot) -> tuple:
    """What the panel shows of a snapshot: the runs' names and their probes' samples (by step and moments)."""
    return tuple((run.name, tuple((s.group, s.parameter, s.label, s.step, s.replicates, s.mean, s.sd, len(s.values))
                                  for s in run.gradients)) for run in snapshot.runs)


def _sample(samples: tuple[GradientSample, ...], group: str) -> GradientSample | None:
    return next((s for s in samples if s.group == group), None)
