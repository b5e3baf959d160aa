"""The whole picture in one ``GraphicsLayoutWidget``: what the window shows and what ``shot`` exports.

Layout (three runs, a large figure)::

    caption: scene title · step · problem                    key of the marks
    posterior run 0 | posterior run 1 | posterior run 2 | weight colour bar
    [curve tabs, when folded]    legend of the runs (colour per run)
    data (x-space)    | gradient SNR    | bounds on log p(x)
    sorted weights    | KL divergences  | ESS / K

Where things go at each size is :func:`explorer.gui.layout.plan`'s decision: square posterior views as
large as the figure allows, wrapped into two rows for 4–5 runs where that makes them larger, the data
(and weights) panels beside them with one or two runs, and the curve rows folded into two tabs (click
one, or :meth:`Figure.show_curve_row`) before the posteriors would shrink for them.

The panels are made only when the number of runs, the problem, the data dimension or the latent box
changes, and placed again only when the plan changes; every other snapshot just feeds the items.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetricsF, QGuiApplication, QImage, QPixmapCache, QTextDocument
from PySide6.QtWidgets import QApplication, QGraphicsItem, QSizePolicy

from explorer.core.snapshot import Snapshot

from . import export, layout, theme
from .panels import (CurvesPanel, DataPanel, GradientsPanel, ManifoldPanel, PosteriorPanel, ReconstructionPanel,
                     ThumbnailsPanel, WeightsPanel)
from .theme import Style

CURVE_KINDS = ("snr", "bounds", "kl", "ess", "heldout")  # heldout: image problems only
GRADIENTS_SHARE = 0.22  # of the figure's height, for the gradient histograms' row when it shows
CURVE_TAB_WORDS = {"data": "data", "snr": "SNR", "bounds": "bounds", "weights": "weights", "kl": "KL", "ess": "ESS"}
# Items that change rarely are drawn from a pixmap of their last rendering (Qt's device-coordinate cache):
# the axes with their grid lines (redrawn only when a range changes), the image of p(z|x) and its contours
# (fixed while the decoder is frozen). Re-rendering them every frame took ~12 of a frame's ~30 ms of
# painting. The caches live in QPixmapCache, whose default 10 MB would evict them every frame.
PIXMAP_CACHE_KB = 128 * 1024


class Figure(pg.GraphicsLayoutWidget):
    """All panels of a snapshot. ``update_snapshot`` is cheap enough to call at 30 Hz."""

    observation_clicked = Signal(int)
    observation_moved = Signal(object)  # the x-pad (panels/data.py): a point of x-space
    DEFAULT_SIZE = (1600, 1000)

    def __init__(self, parent=None, presentation: bool = False):
        super().__init__(parent)
        self.setBackground(theme.BACKGROUND)
        self._style = Style.talk() if presentation else Style.normal()
        self._lut = theme.posterior_lut()
        self._weight_brushes = theme.weight_brushes()
        self._key: tuple | None = None
        self._snapshot: Snapshot | None = None
        self._caption_html = ""
        self._key_text: tuple[str, str] | None = None
        self._key_width: tuple[str, float, float] | None = None
        self._legend_names: list[str] = []
        self.posteriors: list[PosteriorPanel] = []
        self.data_panel: DataPanel | ThumbnailsPanel | None = None
        self.image_panels: list = []  # image problems: reconstructions, manifold (panels/images.py)
        self.curves: dict[str, CurvesPanel] = {}
        self.weights: WeightsPanel | None = None
        self.gradients: GradientsPanel | None = None  # with view.gradients: a row of histograms at the bottom
        self._gradients_frozen = False
        self.caption: pg.LabelItem | None = None
        self.key: pg.LabelItem | None = None
        self.legend: pg.LegendItem | None = None
        self.colorbar: pg.ColorBarItem | None = None
        self._legend_samples: list[pg.PlotDataItem] = []
        self.curve_tabs: list[theme.TextLabel] = []
        self._top: pg.GraphicsLayout | None = None
        self._below: pg.GraphicsLayout | None = None
        self._curve_rows: list[pg.GraphicsLayout] = []
        self._plan: layout.Plan | None = None
        self._fold = True  # curve rows may fold into tabs (a window); exports made headless show them all
        self._curve_tab = 0
        self._colorbar_width = 60.0
        self._item_cache = True
        if QPixmapCache.cacheLimit() < PIXMAP_CACHE_KB:
            QPixmapCache.setCacheLimit(PIXMAP_CACHE_KB)
        self.ci.setContentsMargins(8, 6, 18, 6)  # room for the last tick label on the right
        self.ci.setSpacing(6)
        self.scene().sigMouseClicked.connect(self._on_scene_click)
        # hover readouts: the scene's mouse moves, at most 30 a second, to the panel under the cursor
        self._hover_proxy = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)
        self._hovered = None

    # ------------------------------------------------------------------ public API
    @property
    def presentation(self) -> bool:
        return self._style.presentation

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """Show ``snapshot``: rebuild the layout if its shape changed, else only feed new data."""
        data = np.asarray(snapshot.data)
        x_dim = int(data.shape[1]) if data.ndim == 2 else 1
        key = (len(snapshot.runs), snapshot.problem, x_dim, tuple(float(b) for b in snapshot.box),
               snapshot.show_gradients, snapshot.image_shape)
        if key != self._key:
            self._build(len(snapshot.runs), x_dim, snapshot.box, snapshot.image_shape is not None)
            if snapshot.show_gradients:
                self._add_gradients(len(snapshot.runs))
            self._key = key
            self._set_item_cache(self._item_cache)
        self._snapshot = snapshot
        self._update_caption(snapshot)
        self._update_legend(snapshot)
        for panel in self.panels():
            panel.update(snapshot)
            # settle ranges and view transforms now: pyqtgraph defers them to the paint, where the items they
            # move ask for a second paint of their panels
            panel.plot.getViewBox().prepareForPaint()

    def set_presentation(self, on: bool) -> None:
        """Talk mode: larger fonts, thicker lines and markers."""
        if on == self._style.presentation:
            return
        self._apply_style(Style.talk() if on else Style.normal())

    def set_fold(self, fold: bool) -> None:
        """Whether the curve rows may fold into tabs when space is short (the window), or always all show
        (a picture made headless: ``shot``, ``render_snapshot``)."""
        if fold != self._fold:
            self._fold = fold
            self._plan = None
            self._place()

    def panel_names(self) -> list[str]:
        """Names accepted by the ``panel=`` argument of the exports, in layout order."""
        return [p.name for p in self.panels()]

    def panel(self, name: str):
        """The panel called ``name`` (``posterior``: the first run's, as ``posterior-0``)."""
        if name == "posterior" and self.posteriors:
            return self.posteriors[0]
        for p in self.panels():
            if p.name == name:
                return p
        raise KeyError(f"no panel named {name!r} (panels: {', '.join(self.panel_names()) or 'none yet'})")

    def has_panel(self, name: str) -> bool:
        try:
            self.panel(name)
        except KeyError:
            return False
        return True

    def panels(self) -> list:
        out: list = list(self.posteriors)
        if self.data_panel is not None:
            out.append(self.data_panel)
        out += self.image_panels
        out += [self.curves[k] for k in CURVE_KINDS if k in self.curves]
        if self.weights is not None:
            out.append(self.weights)
        if self.gradients is not None:
            out.append(self.gradients)
        return out

    def set_gradients_frozen(self, frozen: bool) -> None:
        """Freeze the gradient histograms' axes (animations), now and after a rebuild."""
        self._gradients_frozen = bool(frozen)
        if self.gradients is not None:
            self.gradients.set_frozen(frozen)

    def reset_views(self) -> None:
        """Undo user zooms (View ▸ Reset Views, R): posteriors follow the mass again, curves and the rest
        go back to their automatic ranges. A double-click does this for one panel."""
        for panel in self.panels():
            reset_view(panel)

    def grab_image(self, width: int | None = None, panel: str | None = None) -> QImage:
        """The figure (or one panel) rendered to a QImage ``width`` pixels wide, pens scaled to match. A
        panel with one curve per run gets the run legend above it, at the same scale."""
        target = self._export_target(panel)
        with self._export_scale(target, width), self._uncached():
            image = export.render_image(target, width)
            if panel is not None and self._panel_needs_legend(panel):
                scale = image.width() / max(export.exporter_source_width(target), 1.0)
                legend_width = export.exporter_source_width(self.legend) * scale
                legend = export.render_image(self.legend, max(1, round(legend_width)))
                image = export.stack_images(legend, image, theme.BACKGROUND)
            return image

    def _panel_needs_legend(self, name: str) -> bool:
        """Whether a panel exported alone needs the run legend: the curves and the sorted weights draw a
        line per run in its colour (a posterior's title names its run; the data panel has no runs)."""
        return self.legend is not None and (name in self.curves or name == "weights")

    def export_png(self, path: str | os.PathLike, width: int | None = None, panel: str | None = None) -> str:
        """Write a PNG (``width`` pixels wide; default: as on screen). Returns the path written."""
        return str(export.write_png(self.grab_image(width, panel), path))

    def export_svg(self, path: str | os.PathLike, panel: str | None = None) -> str:
        target = self._export_target(panel)
        with self._uncached():
            return str(export.write_bytes(export.render_svg(target), path))

    def copy_to_clipboard(self, width: int | None = None) -> None:
        QGuiApplication.clipboard().setImage(self.grab_image(width))

    # ------------------------------------------------------------------ building
    def _teardown(self) -> None:
        if self.data_panel is not None:
            self.data_panel.observation_clicked.disconnect(self.observation_clicked)
            if hasattr(self.data_panel, "observation_moved"):
                self.data_panel.observation_moved.disconnect(self.observation_moved)
        self.ci.clear()
        self.posteriors, self.data_panel, self.curves, self.weights, self.gradients = [], None, {}, None, None
        self.image_panels = []
        self._hovered = None
        self.caption = self.key = self.legend = self.colorbar = None
        self._top = self._below = None
        self._curve_rows, self.curve_tabs = [], []
        self._plan = None
        self._legend_samples = []
        self._legend_names = []
        self._caption_html = ""
        self._key_text = None

    def _build(self, n_runs: int, x_dim: int, box: tuple[float, float, float, float], images: bool = False) -> None:
        """Make the panels for ``n_runs`` runs and the chrome around them, then place them for the figure's
        size (:meth:`_place`; the arithmetic is :func:`explorer.gui.layout.plan`)."""
        self._teardown()
        style = self._style
        ci = self.ci

        head = ci.addLayout(row=0, col=0)
        _tight(head)
        self.caption = theme.TextLabel(justify="left")
        head.addItem(self.caption, row=0, col=0)
        self.key = theme.TextLabel(justify="right")
        head.addItem(self.key, row=0, col=1)

        if images:  # the data are images: thumbnails, reconstructions, the decoded manifold, held-out curves
            self.data_panel = ThumbnailsPanel(style)
            self.image_panels = [ReconstructionPanel(n_runs, style), ManifoldPanel(n_runs, style, self._weight_brushes)]
        else:
            self.data_panel = DataPanel(x_dim, style)
        self.data_panel.observation_clicked.connect(self.observation_clicked)
        if hasattr(self.data_panel, "observation_moved"):  # the x-pad; image data are picked, not dragged
            self.data_panel.observation_moved.connect(self.observation_moved)
        for kind in CURVE_KINDS if images else CURVE_KINDS[:-1]:
            self.curves[kind] = CurvesPanel(kind, n_runs, style)
        self.weights = WeightsPanel(n_runs, style)
        for i in range(n_runs):
            self.posteriors.append(PosteriorPanel(i, tuple(box), style, self._lut, self._weight_brushes))
        self.colorbar = pg.ColorBarItem(values=theme.WEIGHT_LOG_RANGE, colorMap=theme.weight_colormap(),
                                        interactive=False, colorMapMenu=False, width=16, pen=theme.FOREGROUND)
        lo, hi = theme.WEIGHT_LOG_RANGE
        self.colorbar.axis.setTicks([[(float(v), theme.log_label(10.0**v)) for v in range(int(lo), int(hi) + 1)]])
        self._top = ci.addLayout(row=1, col=0)
        _tight(self._top)
        ci.layout.setAlignment(self._top, Qt.AlignmentFlag.AlignHCenter)  # when height limits the views

        legend_row = ci.addLayout(row=2, col=0)
        _tight(legend_row)
        self.curve_tabs = [theme.TextLabel(justify="left") for _ in range(2)]
        tabs = legend_row.addLayout(row=0, col=0)
        _tight(tabs)
        for i, tab in enumerate(self.curve_tabs):
            tabs.addItem(tab, row=0, col=i)
        self.legend = pg.LegendItem(colCount=min(max(1, n_runs), 6), frame=False,
                                    labelTextColor=theme.FOREGROUND, horSpacing=12)
        # pyqtgraph's legend ignores transformations (it floats over a zoomable view); in our layout it
        # must scale like everything else in hi-res exports
        self.legend.setFlag(self.legend.GraphicsItemFlag.ItemIgnoresTransformations, False)
        self.legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        legend_row.addItem(self.legend, row=0, col=1)
        spacer = theme.TextLabel()
        legend_row.addItem(spacer, row=0, col=2)  # grows like the tabs: the legend stays centred
        for item in (tabs, spacer):
            item.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        legend_row.layout.setColumnStretchFactor(0, 1)
        legend_row.layout.setColumnStretchFactor(2, 1)
        for i in range(n_runs):
            sample = pg.PlotDataItem()
            self._legend_samples.append(sample)
            self.legend.addItem(sample, f"run {i}")

        self._below = ci.addLayout(row=3, col=0)
        _tight(self._below)
        self._curve_rows = []
        for r in range(2):
            row_layout = self._below.addLayout(row=r, col=0)
            _tight(row_layout)
            self._curve_rows.append(row_layout)
        layout = ci.layout
        for row, stretch in enumerate((0, 0, 0, 1)):
            layout.setRowStretchFactor(row, stretch)
        for panel in self.panels():
            vb = view_box(panel)
            if vb is not None and not hasattr(panel, "reset_view"):  # on pyqtgraph's auto-range: a
                vb.sigDoubleClicked.connect(lambda p=panel: reset_view(p))  # double-click resets it
        self._plan = None
        self._style_chrome(style)
        self._place()

    # ------------------------------------------------------------------ placing (layout.plan)
    def _layout_metrics(self, width: float) -> layout.Metrics:
        """The chrome's pixel sizes at the current style and figure ``width``, from its fonts (see
        layout.Metrics; the key of the marks takes more lines on a narrow figure)."""
        st = self._style
        line = lambda pt: QFontMetricsF(st.font(pt)).height()  # noqa: E731
        base = theme.BASE_FONT_PT
        axis_h = line(base - 1) + line(base) + 10  # tick labels, the axis label
        axis_w = QFontMetricsF(st.font(base - 1)).horizontalAdvance("\u22122") + line(base) + 6
        beside, under = self._key_lines(width)
        caption_h = max(line(base + 5), beside * line(base)) + under * line(base) + 6
        return layout.Metrics(
            caption_h=caption_h, legend_h=line(base + 1) + 26,
            title_h=line(base + 1) + 2 * line(base) + 6, axis_h=axis_h, axis_w=axis_w,
            colorbar_w=self._colorbar_width + 28 + 16 * st.line_scale,
            curve_min_h=line(base + 1) + 2 * line(base - 1) + axis_h + 80 * st.font_scale**0.5,
            good_side=260.0 * st.font_scale**0.5, min_side=140.0)

    def _place(self) -> None:
        """Put the panels where :func:`layout.plan` says for the current size; nothing when the plan is the
        one in place (a resize within one plan only stretches)."""
        if not self.posteriors:
            return
        width, height = self.width(), self.height()
        if width < 200 or height < 200:
            width, height = self.DEFAULT_SIZE
        metrics = self._layout_metrics(width)
        if self.gradients is not None:  # their row takes a share of the height
            height = height * (1.0 - GRADIENTS_SHARE)
        plan = layout.plan(width, height, len(self.posteriors), metrics, fold=self._fold)
        if plan == self._plan:
            return
        self._plan = plan
        top = self._top.layout
        _empty(top)
        for i, panel in enumerate(self.posteriors):
            row, col = divmod(i, plan.per_row)
            top.addItem(panel.plot, row, col)
            top.setAlignment(panel.plot, Qt.AlignmentFlag.AlignCenter)
            panel.plot.setMaximumWidth(plan.side + metrics.axis_w + 4)
            panel.nominal_width = plan.side
            top.setColumnStretchFactor(col, 10)
        top.addItem(self.colorbar, 0, plan.per_row, plan.rows, 1)
        top.setColumnSpacing(plan.per_row, 28)  # keep the bar's label clear of a panel beside it
        for j, name in enumerate(plan.beside_names):
            panel = self.panel(name)
            panel.plot.show()
            top.addItem(panel.plot, 0, plan.per_row + 1 + j, plan.rows, 1)
            top.setColumnStretchFactor(plan.per_row + 1 + j, 10)
        self.ci.layout.setRowFixedHeight(1, plan.top_h)
        for row_layout, names in zip(self._curve_rows, self._curve_groups()):
            grid = row_layout.layout
            _empty(grid)
            for col, name in enumerate(names):
                panel = self.panel(name)
                panel.plot.show()
                grid.addItem(panel.plot, 0, col)
                grid.setColumnStretchFactor(col, 1)
        self._show_curve_rows()

    def _curve_groups(self) -> tuple[tuple[str, ...], ...]:
        """The plan's two rows of panels below the posteriors; for image data the reconstructions, the
        manifold and the held-out curves join them after the data panel (the rows split evenly)."""
        groups = self._plan.curve_groups
        if not self.image_panels:
            return groups
        below = [name for group in groups for name in group]
        below[1:1] = [*(p.name for p in self.image_panels), "heldout"]
        split = math.ceil(len(below) / 2)
        return tuple(below[:split]), tuple(below[split:])

    @property
    def curves_folded(self) -> bool:
        """Whether only one row of the curve panels shows (a small figure: see layout.plan)."""
        return self._plan is not None and self._plan.curve_rows == 1

    def show_curve_row(self, index: int) -> None:
        """Which row of the curve panels shows while they are folded (0 or 1)."""
        self._curve_tab = 1 if index else 0
        self._show_curve_rows()

    def _show_curve_rows(self) -> None:
        below = self._below.layout
        _empty(below)
        shown = [0, 1] if not self.curves_folded else [self._curve_tab]
        for r, row_layout in enumerate(self._curve_rows):
            row_layout.setVisible(r in shown)
        for position, r in enumerate(shown):
            below.addItem(self._curve_rows[r], position, 0)
            below.setRowStretchFactor(position, 1)
        self._set_tab_text()

    def _set_tab_text(self) -> None:
        """The two tabs of folded curves, the shown one in bold; hidden while both rows show."""
        for i, (tab, names) in enumerate(zip(self.curve_tabs, self._curve_groups())):
            tab.setVisible(self.curves_folded)
            words = "/".join(CURVE_TAB_WORDS.get(n, n) for n in names)  # short: the run legend shares the row
            size = self._style.pt_str(theme.BASE_FONT_PT)
            gap = "&nbsp;" * 3 if i else ""  # the two tabs apart, at any font size
            if i == self._curve_tab:
                html = f"{gap}<span style='font-size:{size}; font-weight:bold'>▾ {words}</span>"
            else:
                html = f"{gap}<span style='font-size:{size}; color:{theme.MUTED}'><u>▸ {words}</u></span>"
            theme.set_label(tab, html)

    def _add_gradients(self, n_runs: int) -> None:
        """The gradient histograms (panels/gradients.py) as a row under everything else; the plan leaves
        them GRADIENTS_SHARE of the height."""
        self.gradients = GradientsPanel(n_runs, self._style)
        self.gradients.set_frozen(self._gradients_frozen)
        self.ci.addItem(self.gradients.plot, row=4, col=0)
        self.ci.layout.setRowStretchFactor(4, 1)
        self._plan = None
        self._place()

    # ------------------------------------------------------------------ per frame
    def _update_caption(self, s: Snapshot) -> None:
        muted = theme.MUTED
        parts = [f"step {s.step}", f"problem: {s.problem}"]
        html = (f"<span style='font-size:{self._style.pt_str(theme.BASE_FONT_PT + 5)}; font-weight:bold'>"
                f"{theme.escape(s.title)}</span>&nbsp;&nbsp;&nbsp;"
                f"<span style='color:{muted}; font-size:{self._style.pt_str(theme.BASE_FONT_PT + 1)}'>"
                f"{' · '.join(parts)}</span>")
        if html != self._caption_html and self.caption is not None:
            self._caption_html = html
            self._update_key()

    def _update_key(self) -> None:
        """The key of the posterior marks, right of the caption: on two lines when one does not fit."""
        if self.key is None or self.caption is None:
            return
        keys = [self._key_html(self._style, lines) for lines in (1, 2, 3)]
        beside, under = self._key_lines(self.width())
        caption = self._caption_html
        if beside:
            html, caption_html = keys[beside - 1], caption
        else:
            html, caption_html = "", f"{caption}<br>{keys[under - 1]}"
        if (html, caption_html) != self._key_text:
            self._key_text = (html, caption_html)
            theme.set_label(self.key, html)
            self.key.setVisible(bool(html))
            theme.set_label(self.caption, caption_html)
            self._place()  # the caption's height may have changed the plan

    def _key_lines(self, width: float) -> tuple[int, int]:
        """How the key goes at a figure ``width``: (lines beside the caption, 0) when 1 or 2 lines fit
        there, else (0, lines under the caption: as few as fit)."""
        keys = [self._key_html(self._style, lines) for lines in (1, 2, 3)]
        if self._key_width is None or self._key_width[0] != keys[0]:
            self._key_width = (keys[0], *(_html_width(k) for k in keys))
        widths = self._key_width[1:]
        free = width - _html_width(self._caption_html) - 40
        for lines in (1, 2):
            if widths[lines - 1] <= free:
                return lines, 0
        return 0, next((n for n, w in zip((1, 2, 3), widths) if w <= width - 30), 3)

    def _update_legend(self, s: Snapshot) -> None:
        names = [r.name for r in s.runs]
        if names == self._legend_names or self.legend is None:
            return
        self._legend_names = names
        size = self._style.pt_str(theme.BASE_FONT_PT + 1)
        for (_, label), name in zip(self.legend.items, names):
            label.setText(name, size=size, color=theme.FOREGROUND)
        self.legend.updateSize()

    # ------------------------------------------------------------------ style
    def _style_chrome(self, style: Style) -> None:
        """Fonts and pens of what is not a panel: legend, colour bar, caption."""
        for i, sample in enumerate(self._legend_samples):
            sample.setPen(style.pen(theme.run_color(i), theme.W_CURVE * 1.5))
        if self.legend is not None:
            size = style.pt_str(theme.BASE_FONT_PT + 1)
            self.legend.opts["labelTextSize"] = size
            for sample, label in self.legend.items:
                label.setText(label.text, size=size, color=theme.FOREGROUND)
                sample.update()
            self.legend.updateSize()
        self._key_text = None
        self._update_key()
        if self.colorbar is not None:
            axis = self.colorbar.axis
            theme.no_si_prefix(axis)
            axis.setPen(style.pen(theme.FOREGROUND, theme.W_AXIS))
            axis.setTextPen(pg.mkPen(theme.FOREGROUND))
            axis.setStyle(tickFont=style.font(theme.BASE_FONT_PT - 1))
            axis.setLabel("particle weight w̃", **{"font-size": style.pt_str(theme.BASE_FONT_PT),
                                                   "color": theme.FOREGROUND})
            tick_w = QFontMetricsF(style.font(theme.BASE_FONT_PT - 1)).horizontalAdvance("0.001")
            label_h = QFontMetricsF(style.font(theme.BASE_FONT_PT)).height()
            self._colorbar_width = math.ceil(tick_w + label_h + 14 * style.font_scale)
            axis.setWidth(int(self._colorbar_width))
            self.colorbar.layout.setColumnFixedWidth(1, 16 * style.line_scale)
            for name in ("left", "top", "bottom"):
                self.colorbar.getAxis(name).setPen(style.pen(theme.FOREGROUND, theme.W_AXIS))

    @staticmethod
    def _key_html(style: Style, lines: int = 1) -> str:
        """What the marks in the posterior panels mean, on 1, 2 or 3 lines."""
        size = style.pt_str(theme.BASE_FONT_PT)
        navy, q, muted = theme.POSTERIOR_LINE, theme.Q_COLOR, theme.MUTED
        gap = "&nbsp;&nbsp; "
        return (f"<span style='font-size:{size}'>"
                f"<span style='color:{navy}'>━ true posterior p(z|x)</span>&nbsp;&nbsp; "
                f"<span style='color:{q}'>━ q(z|x) &nbsp;● its samples</span>{'<br>' if lines >= 2 else gap}"
                f"◯ particles: size, shade ∝ w̃{'<br>' if lines >= 3 else gap}"
                f"<span style='color:{muted}'>contours 1σ 2σ 3σ · mode labels: its mass under p · q</span>"
                f"</span>")

    def _apply_style(self, style: Style) -> None:
        self._style = style
        for panel in self.panels():
            panel.apply_style(style)
        self._style_chrome(style)
        self._plan = None  # the chrome's sizes changed with the fonts
        self._place()
        if self._snapshot is not None:
            self._caption_html = ""
            self._legend_names = []
            self.update_snapshot(self._snapshot)

    # ------------------------------------------------------------------ item caches
    def _cached_items(self) -> Iterator[QGraphicsItem]:
        """The items drawn from a pixmap cache on screen (see PIXMAP_CACHE_KB)."""
        for item in self.scene().items():
            if isinstance(item, pg.AxisItem):
                yield item
        for panel in self.posteriors:
            yield panel.image
            yield from panel.p_lines

    def _set_item_cache(self, on: bool) -> None:
        mode = QGraphicsItem.CacheMode.DeviceCoordinateCache if on else QGraphicsItem.CacheMode.NoCache
        for item in self._cached_items():
            item.setCacheMode(mode)

    @contextlib.contextmanager
    def _uncached(self) -> Iterator[None]:
        """Exports render every item directly, exactly as without the screen's caches."""
        if not self._item_cache:
            yield
            return
        self._item_cache = False
        self._set_item_cache(False)
        try:
            yield
        finally:
            self._item_cache = True
            self._set_item_cache(True)

    # ------------------------------------------------------------------ export plumbing
    def _export_target(self, panel: str | None):
        self.ensure_laid_out()
        self.hide_readouts()  # a readout is for the screen
        if panel is None:
            return self.scene()
        return self.panel(panel).plot

    def ensure_laid_out(self) -> None:
        """Exports need a shown, laid-out widget (pitfalls.md): show a parentless figure offscreen."""
        if not self.isVisible() and self.parent() is None:
            if self.width() < 200 or self.height() < 200:
                self.resize(*self.DEFAULT_SIZE)
            self.show()
            QApplication.processEvents()

    @contextlib.contextmanager
    def _export_scale(self, target, width: int | None) -> Iterator[None]:
        """Scale pen widths by export width / screen width for the duration of an export."""
        scale = 1.0
        if width is not None:
            source = export.exporter_source_width(target)
            if source > 0:
                scale = float(width) / source
        if scale <= 1.0:
            yield
            return
        base = self._style
        exporting = base.exporting(scale)
        for panel in self.panels():
            panel.apply_style(exporting)
        self._style_pens_only(exporting)
        try:
            yield
        finally:
            for panel in self.panels():
                panel.apply_style(base)
            self._style_pens_only(base)

    def _style_pens_only(self, style: Style) -> None:
        for i, sample in enumerate(self._legend_samples):
            sample.setPen(style.pen(theme.run_color(i), theme.W_CURVE * 1.5))
        if self.colorbar is not None:
            for name in ("left", "top", "bottom", "right"):
                self.colorbar.getAxis(name).setPen(style.pen(theme.FOREGROUND, theme.W_AXIS))

    # ------------------------------------------------------------------ events
    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        ready = getattr(self, "key", None) is not None and not getattr(self, "closed", False)
        if ready:  # (the base __init__ resizes too, before our attributes exist)
            self._place()  # first: the base class sizes the layout to the view, within the new plan's limits
        super().resizeEvent(event)
        if ready:
            self._update_key()

    def close(self) -> bool:
        """Drop every panel before pyqtgraph clears the scene, so no Python wrapper outlives its item."""
        self._teardown()
        self._key = None
        self._snapshot = None
        return super().close()

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().mousePressEvent(event)
        self._accept_data_panel_click(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        self._accept_data_panel_click(event)

    def _clickable(self) -> list:
        """The panels a left click does something in: the data panel (it picks x_obs), the manifold."""
        if self.data_panel is None:
            return []
        return [self.data_panel, *(p for p in self.image_panels if hasattr(p, "handle_click"))]

    def _accept_data_panel_click(self, event) -> None:
        """A left click on the data panel (or the manifold) is ours, even where no item took it."""
        if event.button() != Qt.MouseButton.LeftButton:
            return
        scene_pos = self.mapToScene(event.position().toPoint())
        if any(p.plot.getViewBox().sceneBoundingRect().contains(scene_pos) for p in self._clickable()):
            event.accept()

    def _on_mouse_moved(self, args) -> None:
        """Tell the panel under the cursor where it is (view units), and the one it left that it left."""
        pos = args[0]
        under = None
        for panel in self.panels():
            vb = view_box(panel)
            if vb is not None and hasattr(panel, "hover") and panel.plot.isVisible() \
                    and vb.sceneBoundingRect().contains(pos):
                under = panel
                break
        if self._hovered is not None and self._hovered is not under and self._hovered in self.panels():
            self._hovered.hover(None, None)
        self._hovered = under
        if under is not None:
            point = under.plot.getViewBox().mapSceneToView(pos)
            under.hover(point.x(), point.y())

    def hide_readouts(self) -> None:
        if self._hovered is not None and self._hovered in self.panels():
            self._hovered.hover(None, None)
        self._hovered = None

    def _on_scene_click(self, event) -> None:
        if self.data_panel is None or event.button() != Qt.MouseButton.LeftButton:
            return
        for i, tab in enumerate(self.curve_tabs):
            if tab.isVisible() and tab.sceneBoundingRect().contains(event.scenePos()):
                self.show_curve_row(i)
                event.accept()
                return
        for panel in self._clickable():
            if panel.handle_click(event.scenePos()):
                event.accept()
                return


def view_box(panel) -> pg.ViewBox | None:
    """The panel's one ViewBox, or None (the gradient histograms are a grid of plots)."""
    get = getattr(panel.plot, "getViewBox", None)
    return get() if get is not None else None


def reset_view(panel) -> None:
    """A panel back to its own ranges: its ``reset_view``, else pyqtgraph's auto-range."""
    reset = getattr(panel, "reset_view", None)
    if reset is not None:
        reset()
    elif view_box(panel) is not None:
        view_box(panel).enableAutoRange()


def _html_width(html: str) -> float:
    doc = QTextDocument()
    doc.setHtml(html)
    return doc.idealWidth()


def _tight(grid: pg.GraphicsLayout) -> None:
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setSpacing(6)


def _empty(grid) -> None:
    """Take every item out of a QGraphicsGridLayout (the items live on) and reset its rows and columns."""
    for r in range(grid.rowCount()):
        grid.setRowStretchFactor(r, 0)
    for c in range(grid.columnCount()):
        grid.setColumnStretchFactor(c, 0)
        grid.setColumnSpacing(c, grid.horizontalSpacing())
    while grid.count():
        grid.removeAt(0)

