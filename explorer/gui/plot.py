"""Headless figures of sweeps and runs, in the app's theme (gui/theme.py), to PNG or SVG:

- ``snr``: gradient SNR against K on log-log axes, encoder φ and decoder θ side by side, one line per
  objective (and M, and any other axis), mean ± 95 % interval over seeds, the fitted log-log slope in the
  legend and the K^(±½) reference lines of the theory (Rainforth et al. 2018);
- ``metric``: any final metric against an axis of the sweep, mean ± 95 % interval over seeds;
- ``curves``: training curves from a ``metrics.csv``, one panel per metric, one line per run.

The numbers (means, intervals, slopes) are plain numpy functions, tested on their own; the drawing is
pyqtgraph on an offscreen QApplication, exported through gui/export.py's atomic writers.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyqtgraph as pg

from explorer.core.errors import ConfigError
from explorer.core.sweep import PLOT_KINDS, SweepTable, parse_cell, read_table

from . import export, theme
from .shot import STYLES, _application
from .theme import Style

KINDS = (*PLOT_KINDS, "curves")
PANEL_SIZE = (700, 520)  # pixels of one panel on the offscreen screen; PNG width defaults to the figure's
SNR_METRICS = {"snr_encoder": "encoder φ", "snr_decoder": "decoder θ"}
# axis labels of the metrics (snapshot.METRICS' meanings)
METRIC_LABELS = {"log_px": "exact log p(x) (nats)", "elbo": "ELBO, MC (nats)", "bound": "L_K, MC (nats)",
                 "kl_qp": "KL(q‖p), exact (nats)", "kl_pq": "KL(p‖q), exact (nats)", "ess_frac": "ESS / K",
                 "snr_encoder": "SNR φ", "snr_decoder": "SNR θ", "elbo_exact": "ELBO, exact (nats)",
                 "q_mass": "q's mass in the box", "n_modes": "posterior modes", "modes_covered": "modes q covers"}
DODGE = 0.012  # lines sharing an x are moved apart by this fraction of the x range, so none hides another
CURVE_METRICS = ("bound", "kl_qp", "snr_encoder")

# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
         2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
         2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


# --------------------------------------------------------------------------- numbers
def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (a table to 30, then the
    Cornish-Fisher expansion around z = 1.959964, good to 1e-4 there)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_interval(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, half-width of the 95 % t-interval of the mean, n) over the finite values; the half-width
    is NaN for fewer than two values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan, 0
    if len(v) == 1:
        return float(v[0]), math.nan, 1
    return float(v.mean()), t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v)), len(v)


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x over the points with x, y > 0 (NaN with fewer than
    two distinct x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if len(np.unique(x[keep])) < 2:
        return math.nan
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


@dataclass(frozen=True)
class Line:
    """One line of a figure: its label, x, and the mean with its 95 % interval [lo, hi] at each x."""

    label: str
    x: np.ndarray
    mean: np.ndarray
    lo: np.ndarray  # NaN: no interval (one value)
    hi: np.ndarray
    n: np.ndarray  # values (seeds) behind each mean
    slope: float = math.nan  # log-log slope over every value (SNR figures)


def _values(table: SweepTable, metric: str) -> list[dict[str, Any]]:
    rows = [r for r in table.rows if r["status"] == "ok" and r["metric"] == metric]
    if not rows:
        known = sorted({r["metric"] for r in table.rows if r["metric"]})
        raise ConfigError(f"--metric: no values of {metric!r} in {table.path} (metrics: {', '.join(known) or 'none'})")
    return rows


def _lines(rows: list[dict[str, Any]], x_of: Any, group: Sequence[str], label_of: Any,
           log: bool = False) -> list[Line]:
    """Lines of the rows grouped by the ``group`` columns: at each x, the mean of the values with its 95 %
    interval; ``log``: of log10 of the (positive) values, so the geometric mean and a factor either side,
    with the log-log slope."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(_hashable(r.get(c)) for c in group), []).append(r)
    lines = []
    for members in groups.values():
        if log:
            members = [r for r in members if r["value"] is not None and r["value"] > 0]
            if not members:
                continue
        xs = sorted({x_of(r) for r in members}, key=_order)
        value = (lambda r: math.log10(r["value"])) if log else (lambda r: r["value"])
        stats = np.array([mean_interval(value(r) for r in members if x_of(r) == x) for x in xs]).reshape(-1, 3)
        mean, lo, hi = stats[:, 0], stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1]
        fit = math.nan
        if log:
            mean, lo, hi = 10**mean, 10**lo, 10**hi
            fit = loglog_slope([x_of(r) for r in members], [r["value"] for r in members])
        lines.append(Line(label_of(members), np.array(xs, dtype=object), mean, lo, hi, stats[:, 2], fit))
    return sorted(lines, key=lambda line: line.label)


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, (list, dict)) else v


def _order(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def _free(rows: list[dict[str, Any]], columns: Sequence[str], x_of: Any) -> list[str]:
    """The columns whose value is not fixed by x (an axis zipped with x, or with one value, is fixed by it):
    they split the lines."""
    free = []
    for column in columns:
        seen: dict[Any, Any] = {}
        if any(seen.setdefault(_hashable(x_of(r)), _hashable(r[column])) != _hashable(r[column]) for r in rows):
            free.append(column)
    return free


def _axis_label(members: list[dict[str, Any]], axes: Sequence[str], shown: Sequence[str]) -> list[str]:
    """``name=value`` of the axes, but those whose last part the label shows already (``shown``)."""
    return [f"{a.split('.')[-1]}={members[0][a]}" for a in axes if a.split(".")[-1] not in shown]


def snr_lines(table: SweepTable, metric: str) -> list[Line]:
    """SNR against K: a line per objective, M and axis (but the seed) that K does not fix; the geometric
    mean over seeds with its 95 % interval (a t-interval of log SNR), and the log-log slope."""
    rows = _values(table, metric)
    k_of = lambda r: r["k"]  # noqa: E731
    others = _free(rows, [a for a in table.axes if a != "seed"], k_of)
    by_m = _free(rows, ["m"], k_of) == ["m"]  # M varies at a fixed K: a line per M
    m_varies = by_m and len({r["m"] for r in rows}) > 1

    def label(members: list[dict[str, Any]]) -> str:
        first = members[0]
        text = first["objective"].upper() + (f" M={first['m']}" if by_m and (m_varies or first["m"] != 1) else "")
        return " ".join([text, *_axis_label(members, others, ("objective", "m") if by_m else ("objective",))])

    group = ["objective", "encoder", "beta", "alpha", *(["m"] if by_m else []), *others]
    return _lines(rows, k_of, group, label, log=True)


def metric_lines(table: SweepTable, metric: str, x: str) -> list[Line]:
    """A final metric against axis ``x``: a line per run of the config and per value of the axes (but the
    seed) that ``x`` does not fix; the mean over seeds with its 95 % t-interval."""
    if x not in table.columns or x in ("point", "metric", "value", "status", "error", "run"):
        raise ConfigError(f"--x: {x!r} is not an axis of {table.path} (axes: {', '.join(table.axes) or 'none'})")
    rows = _values(table, metric)
    others = _free(rows, [a for a in table.axes if a not in ("seed", x)], lambda r: r[x])

    def label(members: list[dict[str, Any]]) -> str:
        names = sorted({r["run"] for r in members})
        if len(names) == 1:  # the run's name shows its objective, M and K
            return " ".join([names[0], *_axis_label(members, others, ("objective", "m", "k"))])
        return " ".join([members[0]["objective"].upper(), *_axis_label(members, others, ("objective",))])

    return _lines(rows, lambda r: r[x], ["run_index", "objective", *others], label)


def read_metrics_csv(source: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``run``'s metrics.csv, numbers parsed (ConfigError naming a file that is not one)."""
    path = Path(source)
    if path.is_dir():
        path = path / "metrics.csv"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it ({e.__class__.__name__})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"run", "step"} <= set(rows[0]):
        raise ConfigError(f"{path}: not a metrics.csv (no run and step columns)")
    return [{k: (v if k == "run" else parse_cell(v)) for k, v in row.items()} for row in rows]


def curve_lines(rows: list[dict[str, Any]], metric: str) -> list[Line]:
    """One line per run: the metric against the step (SNR: at the step of each probe)."""
    if metric not in rows[0]:
        raise ConfigError(f"--metric: metrics.csv has no column {metric!r}")
    at = "snr_step" if metric.startswith("snr_") and "snr_step" in rows[0] else "step"
    lines = []
    for run in dict.fromkeys(r["run"] for r in rows):
        pts = [(r[at], r[metric]) for r in rows if r["run"] == run and r[metric] is not None and r[at] is not None]
        xs = np.array([p[0] for p in pts], dtype=object)
        none = np.full(len(pts), math.nan)
        lines.append(Line(run, xs, np.array([p[1] for p in pts], float), none, none, np.ones(len(pts))))
    return lines


# --------------------------------------------------------------------------- drawing
class _Canvas:
    """An offscreen GraphicsLayoutWidget with panels side by side, exported and torn down."""

    def __init__(self, n_panels: int, width: int | None, style: str):
        if style not in STYLES:
            raise ConfigError(f"--style: unknown style {style!r} (choose from {', '.join(STYLES)})")
        if width is not None and not 64 <= width <= 16384:
            raise ConfigError(f"--width: must be in 64..16384 pixels, got {width}")
        self.app = _application()
        self.size = (PANEL_SIZE[0] * n_panels, PANEL_SIZE[1])
        self.width = width
        base = Style.talk() if style == "talk" else Style.normal()
        self.style = base.exporting((width or self.size[0]) / self.size[0])
        self.widget = pg.GraphicsLayoutWidget()
        self.widget.setBackground(theme.BACKGROUND)
        self.widget.resize(*self.size)

    def panel(self, col: int, title: str, xlabel: str, ylabel: str, log_x: bool,
              log_y: bool) -> tuple[pg.PlotItem, pg.LegendItem]:
        """A plot in column ``col`` with its legend in the row below it (never over the data)."""
        axes = {}
        if log_x:
            axes["bottom"] = theme.LogAxis("bottom")
        if log_y:
            axes["left"] = theme.LogAxis("left")
        plot = self.widget.addPlot(row=0, col=col, axisItems=axes or None)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.showGrid(x=True, y=True, alpha=theme.GRID_ALPHA)
        if log_x:
            plot.getAxis("bottom").setLogMode(True)
        if log_y:
            plot.getAxis("left").setLogMode(True)
        theme.style_plot(plot, self.style, xlabel, ylabel, title)
        legend = pg.LegendItem(colCount=2, labelTextColor=theme.FOREGROUND, labelTextSize=self.style.pt_str(9))
        self.widget.addItem(legend, row=1, col=col)
        return plot, legend

    def write(self, out: str | os.PathLike) -> Path:
        self.widget.show()
        self.app.processEvents()
        scene = self.widget.scene()
        if export.check_suffix(out, (".png", ".svg")) == ".png":
            return export.write_png(export.render_image(scene, self.width), out)
        return export.write_bytes(export.render_svg(scene), out)

    def close(self) -> None:
        self.widget.close()
        self.widget.deleteLater()
        self.app.processEvents()


def _draw_line(plot: pg.PlotItem, legend: pg.LegendItem, line: Line, index: int, style: Style, xs: np.ndarray,
               log_y: bool, label: str) -> None:
    """Mean with markers, and the 95 % interval as error bars (in log10 on log axes)."""
    color = theme.run_color(index)
    mean = np.asarray(line.mean, float)
    known = np.isfinite(line.lo) & np.isfinite(line.hi)
    lo, hi = np.where(known, line.lo, mean), np.where(known, line.hi, mean)
    if log_y:
        keep = mean > 0
        xs, mean, lo, hi = xs[keep], mean[keep], lo[keep], hi[keep]
        lo = np.where(lo > 0, lo, mean / 10)  # an interval reaching 0 shows as one decade down
        mean, lo, hi = np.log10(mean), np.log10(lo), np.log10(hi)
    if not len(xs):
        return
    symbol = "osdt+x"[index % 6]
    item = pg.PlotDataItem(xs, mean, pen=style.pen(color, theme.W_CURVE), symbol=symbol, symbolSize=style.px(8),
                           symbolBrush=color, symbolPen=style.pen(color, 1.0))
    plot.addItem(item)
    legend.addItem(item, label)
    if np.any(hi > lo):
        plot.addItem(pg.ErrorBarItem(x=xs, y=mean, top=hi - mean, bottom=mean - lo, beam=0.0,
                                     pen=style.pen(color, theme.W_REFERENCE)))


def _dodged(positions: list[np.ndarray]) -> list[np.ndarray]:
    """The lines' x positions, line i moved by (i − centre) · DODGE of the x range: lines sharing an x
    (and their intervals) sit side by side instead of on top of each other."""
    if not positions:
        return positions
    every = np.concatenate(positions)
    width = float(every.max() - every.min()) if len(every) else 0.0
    return [xs + (i - (len(positions) - 1) / 2) * DODGE * (width or 1.0) for i, xs in enumerate(positions)]


def _references(plot: pg.PlotItem, legend: pg.LegendItem, lines: list[Line], style: Style) -> None:
    """The K^(+½) and K^(−½) lines of the theory, through the centre of the data (log10 space)."""
    xs = np.concatenate([np.log10(np.asarray(line.x, float)) for line in lines])
    ys = np.concatenate([np.log10(line.mean[line.mean > 0]) for line in lines])
    if not len(xs) or not len(ys):
        return
    x0, y0 = float(np.mean(xs)), float(np.mean(ys))
    span = np.array([xs.min(), xs.max()])
    for slope, name in ((0.5, "∝ K^(+½) (theory)"), (-0.5, "∝ K^(−½) (theory)")):
        item = pg.PlotDataItem(span, y0 + slope * (span - x0),
                               pen=style.pen(theme.MUTED, theme.W_REFERENCE, theme.DASHED if slope > 0 else theme.DOTTED))
        plot.addItem(item)
        legend.addItem(item, name)


def plot_snr(source: str | os.PathLike | SweepTable, out: str | os.PathLike, *, metric: str | None = None,
             width: int | None = None, style: str = "normal", title: str | None = None) -> Path:
    """SNR against K (log-log) from a sweep table, one panel per SNR metric (``metric``: comma-separated
    names; default both SNRs that have values)."""
    table = source if isinstance(source, SweepTable) else read_table(source)
    names = _names(metric) or [m for m in SNR_METRICS if any(r["metric"] == m and r["value"] is not None for r in table.rows)]
    if not names:
        raise ConfigError(f"{table.path}: the table has no SNR values (view.snr_every = 0?)")
    panels = [(m, snr_lines(table, m)) for m in names]
    canvas = _Canvas(len(panels), width, style)
    try:
        for col, (metric, lines) in enumerate(panels):
            what = SNR_METRICS.get(metric, metric)
            head = f"gradient SNR, {what}" if title is None else f"{title}: {what}"
            plot, legend = canvas.panel(col, head, "K (particles)", "SNR (mean over parameters)", True, True)
            positions = _dodged([np.log10(np.asarray(line.x, float)) for line in lines])
            for i, (line, xs) in enumerate(zip(lines, positions)):
                slope = "" if math.isnan(line.slope) else f", slope {line.slope:+.2f}".replace("-", "−")
                _draw_line(plot, legend, line, i, canvas.style, xs, True, line.label + slope)
            _references(plot, legend, lines, canvas.style)
        return canvas.write(out)
    finally:
        canvas.close()


def plot_metric(source: str | os.PathLike | SweepTable, out: str | os.PathLike, *, metric: str, x: str | None = None,
                width: int | None = None, style: str = "normal", title: str | None = None) -> Path:
    """A final metric against axis ``x`` (default: the first axis that is not the seed), mean ± 95 %
    interval over seeds; a log x axis when the values are positive and span a factor of 16 or more."""
    table = source if isinstance(source, SweepTable) else read_table(source)
    if x is None:
        axes = [a for a in table.axes if a != "seed"]
        if not axes:
            raise ConfigError(f"--x: {table.path} has no axis but the seed; name the column to plot against")
        x = axes[0]
    lines = metric_lines(table, metric, x)
    values = [v for line in lines for v in line.x]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    log_x = numeric and min(values) > 0 and max(values) / min(values) >= 16
    categories = sorted(set(map(str, values))) if not numeric else []
    canvas = _Canvas(1, width, style)
    try:
        plot, legend = canvas.panel(0, title or f"{metric} against {x}", x, METRIC_LABELS.get(metric, metric),
                                    log_x, False)
        positions = _dodged([np.array([categories.index(str(v)) for v in line.x], float) if not numeric
                             else np.log10(np.asarray(line.x, float)) if log_x else np.asarray(line.x, float)
                             for line in lines])
        for i, (line, xs) in enumerate(zip(lines, positions)):
            _draw_line(plot, legend, line, i, canvas.style, xs, False, line.label)
        if categories:
            plot.getAxis("bottom").setTicks([list(enumerate(categories))])
        return canvas.write(out)
    finally:
        canvas.close()


def plot_curves(source: str | os.PathLike, out: str | os.PathLike, *, metric: str | None = None,
                width: int | None = None, style: str = "normal", title: str | None = None) -> Path:
    """Training curves from a metrics.csv: one panel per metric (``metric``: comma-separated names;
    default bound, kl_qp, snr_encoder), one line per run."""
    rows = read_metrics_csv(source)
    panels = [(m, curve_lines(rows, m)) for m in _names(metric) or CURVE_METRICS]
    canvas = _Canvas(len(panels), width, style)
    try:
        for col, (metric, lines) in enumerate(panels):
            log_y = metric.startswith("snr_")
            plot, legend = canvas.panel(col, f"{title}: {metric}" if title else metric, "step",
                                        METRIC_LABELS.get(metric, metric), False, log_y)
            for i, line in enumerate(lines):
                _draw_line(plot, legend, line, i, canvas.style, np.asarray(line.x, float), log_y, line.label)
        return canvas.write(out)
    finally:
        canvas.close()


def _names(text: str | None) -> list[str]:
    return [m.strip() for m in (text or "").split(",") if m.strip()]


def draw(kind: str, source: Any, out: str | os.PathLike, **options: Any) -> Path:
    """One figure of ``kind`` (snr, metric, curves) from ``source`` to ``out``."""
    if kind not in KINDS:
        raise ConfigError(f"plot: unknown kind {kind!r} (choose from {', '.join(KINDS)})")
    return {"snr": plot_snr, "metric": plot_metric, "curves": plot_curves}[kind](source, out, **options)


def draw_spec_plots(table: SweepTable, plots: Iterable[Mapping[str, Any]], folder: str | os.PathLike) -> list[Path]:
    """The figures a sweep spec asks for ([[plots]]), from its table, into ``folder``."""
    written = []
    for plot in plots:
        options = {k: v for k, v in plot.items() if k not in ("kind", "out")}
        written.append(draw(plot["kind"], table, Path(folder) / plot["out"], **options))
    return written
