"""The history curves: one panel per group of metrics (SNR, bounds, KLs, ESS), one colour per run."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF

from explorer.core.snapshot import Snapshot

from .. import theme
from ..theme import DASHED, DOTTED, SOLID, Style, fmt

DASHDOT = Qt.PenStyle.DashDotLine
from .base import _nice_step, finite_rows, new_plot, nice_ceil, Panel, peak_decimate, Readout, set_xy


# kind -> (title, y label, log y, [(metric, pen style, legend word)])
CURVE_KINDS: dict[str, tuple[str, str, bool, list[tuple[str, Qt.PenStyle, str]]]] = {
    "snr": ("gradient SNR", "SNR", True,
            [("snr_encoder", SOLID, "encoder φ"), ("snr_decoder", DASHED, "decoder θ")]),
    "bounds": ("bounds on log p(x)", "nats", False,
               [("bound", SOLID, "MC L_K"), ("elbo", DASHED, "MC ELBO"), ("elbo_exact", DASHDOT, "exact ELBO")]),
    # KL(q‖p) = log p(x) − ELBO is the whole gap; its amortisation part (core/amortisation.py) beside it
    "kl": ("KL divergences (quadrature)", "nats", False,
           [("kl_qp", SOLID, "KL(q‖p)"), ("kl_pq", DASHED, "KL(p‖q)"),
            ("amortisation_gap", DOTTED, "amortisation gap of KL(q‖p)")]),
    "ess": ("ESS / K", "ESS / K", False, [("ess_frac", SOLID, "ESS/K")]),
    # image problems: the held-out evaluation (core/heldout.py), averages over the fixed test images
    "heldout": ("held-out test images, mean", "nats", False,
                [("test_bound", SOLID, "MC L_K"), ("test_elbo", DASHED, "MC ELBO"),
                 ("test_log_px", DOTTED, "exact log p(x)")]),
}
#: per panel, the curves that run off the bottom rather than flatten the rest (an IWAE's ELBO, MC or exact)
UNFRAMED = {"bounds": ("elbo", "elbo_exact"), "heldout": ("test_elbo",)}
_STYLE_WORD = {SOLID: "solid", DASHED: "dashed", DOTTED: "dotted", DASHDOT: "dash-dot"}
#: the exact ELBO's error band is drawn where the error is at least this fraction of the plot's height
BAND_VISIBLE = 0.004


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
        self.title_text = title
        self._present = tuple(metric for metric, _, _ in series)  # the series some run has: their keys show
        self.keys_text = self._keys_text()

        self.plot = plot = new_plot(self.name, log_y)
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
        vb.sigDoubleClicked.connect(self.reset_view)
        vb.sigRangeChanged.connect(self._place_zoom_note)
        self._zoom_latest: float | None = None  # the latest step when the user zoomed
        self.zoom_note = pg.TextItem("zoomed · double-click to reset", anchor=(1.0, 0.0), color=theme.DATA_COLOR,
                                     fill=pg.mkBrush(255, 255, 255, 170))
        self.zoom_note.setZValue(15)
        self.zoom_note.hide()
        plot.addItem(self.zoom_note, ignoreBounds=True)
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

        # the exact ELBO ± its error (cubature + truncation), a band in the run's colour
        self.bands: dict[int, tuple[pg.PlotCurveItem, pg.PlotCurveItem, pg.FillBetweenItem]] = {}
        self._band_sig: dict[int, tuple] = {}
        if kind == "bounds":
            for i in range(n_runs):
                lower, upper = pg.PlotCurveItem(), pg.PlotCurveItem()
                band = pg.FillBetweenItem(lower, upper, brush=theme.qcolor(theme.run_color(i), 60))
                band.setZValue(-3)
                plot.addItem(band)
                self.bands[i] = (lower, upper, band)

        self.floor_line: pg.InfiniteLine | None = None
        self._replicates, self._floor_label = 0, ""  # the floor's R and the form of its label shown
        if kind == "snr":
            self.floor_line = pg.InfiniteLine(angle=0, movable=False, label="estimation floor 0.8/√R",
                                              labelOpts={"position": 0.02, "anchors": [(0, 0), (0, 0)],
                                                         "color": theme.MUTED})
            self.floor_line.setZValue(-2)
            self.floor_line.hide()
            plot.addItem(self.floor_line)
            self.keep_pen(self.floor_line.setPen, lambda s: s.pen(theme.MUTED, theme.W_REFERENCE, DASHED))
        self.readout = Readout(plot, style)
        self._run_names: tuple[str, ...] = ()
        self.restyle_text(style)

    def _keys_text(self) -> str:
        """The line-style key of the series some run has (no "dashed: decoder θ" when θ is frozen, no
        amortisation gap with view.q_star off)."""
        shown = [(pen, word) for metric, pen, word in self.series if metric in self._present]
        keys = [f"{_STYLE_WORD[pen]}: {word}" for pen, word in shown] if len(self.series) > 1 else []
        if self.kind == "bounds":
            keys.append("dotted: exact log p(x)")
        return " · ".join(keys)

    def _title_html(self, style: Style) -> str:
        """Title, then the line-style key in small grey text, broken into lines if it does not fit."""
        if not self.keys_text:
            return self.title_text
        font = style.font(theme.BASE_FONT_PT - 1)
        vb_width = self.plot.getViewBox().width()
        width = vb_width + 40 if vb_width > 50 else 400.0
        keys = self.keys_text
        metrics = QFontMetricsF(font)
        points = style.pt(theme.BASE_FONT_PT - 1)
        if metrics.horizontalAdvance(keys) > width - 16:  # two lines at most: plot height is scarce
            words = keys.split(" · ")
            half = (len(words) + 1) // 2
            first, second = " · ".join(words[:half]), " · ".join(words[half:])
            keys = first + "<br>" + second
            widest = max(metrics.horizontalAdvance(first), metrics.horizontalAdvance(second))
            if widest > width - 16:  # still too wide (talk fonts, a narrow panel): a smaller font
                points = max(points * (width - 16) / widest, 0.65 * points)
        return (f"{self.title_text}<br><span style='color:{theme.MUTED}; "
                f"font-size:{points:.1f}pt'>{keys}</span>")

    def _on_resized(self, *_) -> None:
        title = self._title_html(self.style)
        if title != self._title:
            self._title = title
            theme.set_title(self.plot, title, self.style)
        self._set_floor_label()

    def _set_floor_label(self) -> None:
        """The SNR floor's label, the longest form that fits the view (it ran off a narrow panel's right
        edge in talk style at 1024 px)."""
        if self.floor_line is None or not self.floor_line.isVisible():
            return
        r = self._replicates
        forms = (f"estimation floor 0.8/√R (R = {r})", f"floor 0.8/√R (R = {r})", "floor 0.8/√R")
        metrics = QFontMetricsF(self.floor_line.label.textItem.font())
        room = self.plot.getViewBox().width() - 12.0
        text = next((f for f in forms if metrics.horizontalAdvance(f) <= room), forms[-1])
        if text != self._floor_label:
            self._floor_label = text
            self.floor_line.label.setFormat(text)

    def restyle_text(self, style: Style) -> None:
        self.zoom_note.setFont(style.font(theme.BASE_FONT_PT - 2))
        self._title = self._title_html(style)
        theme.style_plot(self.plot, style, "step", self.ylabel, self._title)
        if self.floor_line is not None:
            self.floor_line.label.setFont(style.font(theme.BASE_FONT_PT - 1))
            self._floor_label = ""
            self._set_floor_label()

    def update(self, snapshot: Snapshot) -> None:
        if len(self._run_names) != len(snapshot.runs):
            self._run_names = tuple(r.name for r in snapshot.runs)
        present = tuple(metric for metric, _, _ in self.series
                        if any(metric in snapshot.history.get(r.name, {}) for r in snapshot.runs))
        if present != self._present:
            self._present = present
            self.keys_text = self._keys_text()
            self._on_resized()
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
                    self._replicates, self._floor_label = snapshot.snr_replicates, ""
                    self._set_floor_label()
                else:
                    self.floor_line.hide()
        if self._y_dirty and not self._user_zoomed and self.kind != "ess":
            self._set_y_range()
        if not self._user_zoomed:
            self._set_x_range()
        else:
            self._scroll_to_latest()
        for run in snapshot.runs:  # after the y range: a band shows where it is visible at that range
            if run.index in self.bands:
                hist = snapshot.history.get(run.name, {})
                self._set_band(run.index, hist.get("elbo_exact"), hist.get("elbo_exact_err"))

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

    def _set_band(self, index: int, values: np.ndarray | None, errors: np.ndarray | None) -> None:
        """The exact ELBO ± its error where both are known at a step; none where the error is negligible
        (thinner than BAND_VISIBLE of the plot's height, i.e. the line covers it)."""
        values, errors = finite_rows(values), finite_rows(errors)
        sig = (len(values), len(errors), float(values[-1, 0]) if len(values) else 0.0,
               float(errors[-1, 1]) if len(errors) else 0.0, self._y_range)
        if self._band_sig.get(index) == sig:
            return
        self._band_sig[index] = sig
        lower, upper, band = self.bands[index]
        steps, iv, ie = np.intersect1d(values[:, 0], errors[:, 0], return_indices=True)
        err = np.abs(errors[ie, 1])
        span = (self._y_range[1] - self._y_range[0]) if self._y_range else 0.0
        if not len(steps) or span <= 0 or err.max() < BAND_VISIBLE * span:
            band.hide()
            return
        mid = values[iv, 1]
        rows = peak_decimate(np.column_stack([steps, mid]))
        keep = np.searchsorted(steps, rows[:, 0])
        lower.setData(steps[keep], mid[keep] - err[keep])
        upper.setData(steps[keep], mid[keep] + err[keep])
        band.show()

    # ------------------------------------------------------------------ hover readout
    def hover(self, x: float | None, y: float | None) -> None:
        """The step under the cursor and each run's values there (the nearest logged step of each curve)."""
        if x is None or y is None:
            self.readout.hide()
            return
        lines = [f"<b>step {x:.0f}</b>"]
        for i in range(self.n_runs):
            values = []
            for metric, _, word in self.series:
                value = self._value_at((i, metric), x)
                if value is not None:
                    values.append(f"{word} {value:.3g}" if self.log_y else f"{word} {fmt(value)}")
            if values:
                name = self._run_names[i] if i < len(self._run_names) else f"run {i}"
                lines.append(f"<span style='color:{theme.run_color(i)}'>■</span> {theme.escape(name)}: "
                             + " · ".join(values))
        self.readout.show(x, y, "<br>".join(lines))

    def _value_at(self, key: tuple[int, str], step: float) -> float | None:
        """The curve's value at the logged step nearest ``step`` (as drawn: decimated histories keep their
        peaks), or None when it has no points or is hidden."""
        item = self.curves.get(key)
        if item is None or not item.isVisible():
            return None
        xs, ys = item.getData()
        if xs is None or not len(xs):
            return None
        j = int(np.clip(np.searchsorted(xs, step), 1, len(xs) - 1)) if len(xs) > 1 else 0
        if len(xs) > 1 and abs(xs[j - 1] - step) <= abs(xs[j] - step):
            j -= 1
        return float(10.0 ** ys[j]) if self.log_y else float(ys[j])

    # ------------------------------------------------------------------ the user's zoom
    def _latest_step(self) -> float | None:
        lasts = [sig[1] for sig in self._last.values() if sig[0] > 0]
        return max(lasts) if lasts else None

    def _on_user_zoom(self, *_) -> None:
        """A wheel zoom or a drag: the ranges are the user's until a double-click (or View ▸ Reset Views,
        or R). It never freezes: when training goes on, the zoomed view scrolls to the newest step."""
        self._user_zoomed = True
        self._zoom_latest = self._latest_step()
        self.zoom_note.show()
        self._place_zoom_note()

    def _scroll_to_latest(self) -> None:
        """Steps newer than the zoom: keep the user's zoom (the x width, the y range) with the latest step
        at its right edge."""
        latest = self._latest_step()
        if latest is None or self._zoom_latest is None or latest <= self._zoom_latest:
            return
        x0, x1 = self.plot.getViewBox().viewRange()[0]
        if latest > x1:
            self.plot.setXRange(x0 + latest - x1, latest, padding=0.0)

    def _place_zoom_note(self, *_) -> None:
        if self.zoom_note.isVisible():
            (_, x1), (_, y1) = self.plot.getViewBox().viewRange()
            self.zoom_note.setPos(x1, y1)

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

    def hold_range(self, rect: tuple[float, float, float, float]) -> None:
        self._user_zoomed = True  # the automatic ranges keep out
        super().hold_range(rect)

    def release_range(self) -> None:
        self.reset_view()

    def reset_view(self) -> None:
        """Back to automatic ranges after a user zoom."""
        self._user_zoomed = False
        self._zoom_latest = None
        self.zoom_note.hide()
        self._x_range = self._y_range = None
        self._set_x_range()
        if self.kind == "ess":
            self.plot.setYRange(0.0, 1.0, padding=0.03)
        else:
            self._set_y_range()

    def _set_y_range(self) -> None:
        self._y_dirty = False
        # the bounds panel frames L_K and log p(x): an IWAE's ELBO (MC or exact) can sit 1000 nats below
        # them and would flatten both; it runs off the bottom instead (likewise the held-out MC ELBO)
        visible = [v for key, v in self._y_values.items() if len(v) and self._shown(key)
                   and key[1] not in UNFRAMED.get(self.kind, ())]
        if not visible:
            return
        values = np.concatenate(visible)
        lo, hi = np.quantile(values, [0.02, 0.98])
        must = [v[-1] for v in visible]  # the latest values always show
        refs = [v for key, v in self._y_values.items() if key[1] == "log_px" and len(v) and self._shown(key)]
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

    def _shown(self, key: tuple[int, str]) -> bool:
        """Whether the curve is drawn when its panel shows (a folded, hidden panel still gets its ranges)."""
        return self._item(key).isVisibleTo(self.plot)

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
