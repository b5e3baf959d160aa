"""The whole picture in one ``GraphicsLayoutWidget``: what the window shows and what ``shot`` exports.

Layout (three or four runs)::

    caption: scene title · step · problem
    posterior run 0 | posterior run 1 | ... | weight colour bar
                   legend of the runs (colour per run)
    data (x-space)    | gradient SNR    | bounds on log p(x)
    sorted weights    | KL divergences  | ESS / K

With one or two runs the data (and weights) panels sit beside the posteriors; with five or more the
posteriors take two rows.

The layout is rebuilt only when the number of runs, the problem, the data dimension or the latent box
changes; every other snapshot just feeds the existing items.
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

from . import export, theme
from .panels import CurvesPanel, DataPanel, ManifoldPanel, PosteriorPanel, ReconstructionPanel, ThumbnailsPanel, WeightsPanel
from .theme import Style

CURVE_KINDS = ("snr", "bounds", "kl", "ess", "heldout")  # heldout: image problems only
# Items that change rarely are drawn from a pixmap of their last rendering (Qt's device-coordinate cache):
# the axes with their grid lines (redrawn only when a range changes), the image of p(z|x) and its contours
# (fixed while the decoder is frozen). Re-rendering them every frame took ~12 of a frame's ~30 ms of
# painting. The caches live in QPixmapCache, whose default 10 MB would evict them every frame.
PIXMAP_CACHE_KB = 128 * 1024


class Figure(pg.GraphicsLayoutWidget):
    """All panels of a snapshot. ``update_snapshot`` is cheap enough to call at 30 Hz."""

    observation_clicked = Signal(int)
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
        self.caption: pg.LabelItem | None = None
        self.key: pg.LabelItem | None = None
        self.legend: pg.LegendItem | None = None
        self.colorbar: pg.ColorBarItem | None = None
        self._legend_samples: list[pg.PlotDataItem] = []
        self._item_cache = True
        if QPixmapCache.cacheLimit() < PIXMAP_CACHE_KB:
            QPixmapCache.setCacheLimit(PIXMAP_CACHE_KB)
        self.ci.setContentsMargins(8, 6, 18, 6)  # room for the last tick label on the right
        self.ci.setSpacing(6)
        self.scene().sigMouseClicked.connect(self._on_scene_click)

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
        key = (len(snapshot.runs), snapshot.problem, x_dim, tuple(float(b) for b in snapshot.box), snapshot.image_shape)
        if key != self._key:
            self._build(len(snapshot.runs), x_dim, snapshot.box, snapshot.image_shape is not None)
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

    def panel_names(self) -> list[str]:
        """Names accepted by the ``panel=`` argument of the exports, in layout order."""
        return [p.name for p in self.panels()]

    def panel(self, name: str):
        for p in self.panels():
            if p.name == name:
                return p
        raise KeyError(f"no panel named {name!r} (panels: {', '.join(self.panel_names()) or 'none yet'})")

    def panels(self) -> list:
        out: list = list(self.posteriors)
        if self.data_panel is not None:
            out.append(self.data_panel)
        out += self.image_panels
        out += [self.curves[k] for k in CURVE_KINDS if k in self.curves]
        if self.weights is not None:
            out.append(self.weights)
        return out

    def reset_views(self) -> None:
        """Undo user zooms: posteriors back to the latent box, curves back to their automatic ranges."""
        for panel in self.panels():
            reset = getattr(panel, "reset_view", None)
            if reset is not None:
                reset()

    def grab_image(self, width: int | None = None, panel: str | None = None) -> QImage:
        """The figure (or one panel) rendered to a QImage ``width`` pixels wide, pens scaled to match."""
        target = self._export_target(panel)
        with self._export_scale(target, width), self._uncached():
            return export.render_image(target, width)

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
        self.ci.clear()
        self.posteriors, self.data_panel, self.curves, self.weights = [], None, {}, None
        self.image_panels = []
        self.caption = self.key = self.legend = self.colorbar = None
        self._legend_samples = []
        self._legend_names = []
        self._caption_html = ""
        self._key_text = None

    def _build(self, n_runs: int, x_dim: int, box: tuple[float, float, float, float], images: bool = False) -> None:
        """Lay out the panels for ``n_runs`` runs (see the module docstring). With fewer than three runs the
        data and weights panels move up beside the posteriors, so no panel is stretched out of shape;
        with more than four runs the posteriors take two rows."""
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
        for kind in CURVE_KINDS if images else CURVE_KINDS[:-1]:
            self.curves[kind] = CurvesPanel(kind, n_runs, style)
        self.weights = WeightsPanel(n_runs, style)

        top = ci.addLayout(row=1, col=0)
        _tight(top)
        rows = 1 if n_runs <= 4 else 2
        per_row = math.ceil(n_runs / rows)
        width = self.width() if self.width() > 200 else self.DEFAULT_SIZE[0]
        for i in range(n_runs):
            panel = PosteriorPanel(i, tuple(box), style, self._lut, self._weight_brushes)
            panel.nominal_width = width / max(per_row, 3) - 20
            top.addItem(panel.plot, row=i // per_row, col=i % per_row)
            top.layout.setColumnStretchFactor(i % per_row, 10)
            self.posteriors.append(panel)
        self.colorbar = pg.ColorBarItem(values=theme.WEIGHT_LOG_RANGE, colorMap=theme.weight_colormap(),
                                        interactive=False, colorMapMenu=False, width=16, pen=theme.FOREGROUND)
        lo, hi = theme.WEIGHT_LOG_RANGE
        self.colorbar.axis.setTicks([[(float(v), theme.log_label(10.0**v)) for v in range(int(lo), int(hi) + 1)]])
        top.addItem(self.colorbar, row=0, col=per_row, rowspan=rows)
        top.layout.setColumnStretchFactor(per_row, 0)
        top.layout.setColumnSpacing(per_row, 28)  # keep the bar's label clear of a panel beside it
        beside = [self.data_panel, self.weights][: max(0, 3 - n_runs)]
        for j, panel in enumerate(beside):
            top.addItem(panel.plot, row=0, col=per_row + 1 + j, rowspan=rows)
            top.layout.setColumnStretchFactor(per_row + 1 + j, 10)

        bottom = ci.addLayout(row=2, col=0)
        _tight(bottom)
        self.legend = pg.LegendItem(colCount=min(max(1, n_runs), 4), frame=False,
                                    labelTextColor=theme.FOREGROUND, horSpacing=12)
        # pyqtgraph's legend ignores transformations (it floats over a zoomable view); in our layout it
        # must scale like everything else in hi-res exports
        self.legend.setFlag(self.legend.GraphicsItemFlag.ItemIgnoresTransformations, False)
        self.legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        bottom.addItem(self.legend, row=0, col=0)
        bottom.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignHCenter)
        for i in range(n_runs):
            sample = pg.PlotDataItem()
            self._legend_samples.append(sample)
            self.legend.addItem(sample, f"run {i}")
        below = [p for p in (self.data_panel, self.curves["snr"], self.curves["bounds"], self.weights,
                             self.curves["kl"], self.curves["ess"]) if p not in beside]
        if images:
            below[1:1] = [*self.image_panels, self.curves["heldout"]]
        split = math.ceil(len(below) / 2)
        for r, chunk in enumerate((below[:split], below[split:])):
            row_layout = bottom.addLayout(row=1 + r, col=0)
            _tight(row_layout)
            for col, panel in enumerate(chunk):
                row_layout.addItem(panel.plot, row=0, col=col)
                row_layout.layout.setColumnStretchFactor(col, 1)
            bottom.layout.setRowStretchFactor(1 + r, 1)
        bottom.layout.setRowStretchFactor(0, 0)

        layout = ci.layout
        layout.setRowStretchFactor(0, 0)
        layout.setRowStretchFactor(1, 13 * rows)
        layout.setRowStretchFactor(2, 10)
        self._style_chrome(style)

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
        one, two = self._key_html(self._style, wrap=False), self._key_html(self._style, wrap=True)
        if self._key_width is None or self._key_width[0] != one:
            self._key_width = (one, _html_width(one), _html_width(two))
        caption = self._caption_html
        free = self.width() - _html_width(caption) - 40
        if self._key_width[1] <= free:  # key on one line beside the caption
            html, caption_html = one, caption
        elif self._key_width[2] <= free:  # on two lines beside it
            html, caption_html = two, caption
        else:  # under the caption, left-aligned
            html, caption_html = "", f"{caption}<br>{one}"
        if (html, caption_html) != self._key_text:
            self._key_text = (html, caption_html)
            theme.set_label(self.key, html)
            self.key.setVisible(bool(html))
            theme.set_label(self.caption, caption_html)

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
            axis.setPen(style.pen(theme.FOREGROUND, theme.W_AXIS))
            axis.setTextPen(pg.mkPen(theme.FOREGROUND))
            axis.setStyle(tickFont=style.font(theme.BASE_FONT_PT - 1))
            axis.setLabel("particle weight w̃", **{"font-size": style.pt_str(theme.BASE_FONT_PT),
                                                   "color": theme.FOREGROUND})
            tick_w = QFontMetricsF(style.font(theme.BASE_FONT_PT - 1)).horizontalAdvance("0.001")
            label_h = QFontMetricsF(style.font(theme.BASE_FONT_PT)).height()
            axis.setWidth(int(math.ceil(tick_w + label_h + 14 * style.font_scale)))
            self.colorbar.layout.setColumnFixedWidth(1, 16 * style.line_scale)
            for name in ("left", "top", "bottom"):
                self.colorbar.getAxis(name).setPen(style.pen(theme.FOREGROUND, theme.W_AXIS))

    @staticmethod
    def _key_html(style: Style, wrap: bool = False) -> str:
        """What the marks in the posterior panels mean."""
        size = style.pt_str(theme.BASE_FONT_PT)
        navy, q, muted = theme.POSTERIOR_LINE, theme.Q_COLOR, theme.MUTED
        gap = "<br>" if wrap else "&nbsp;&nbsp; "
        return (f"<span style='font-size:{size}'>"
                f"<span style='color:{navy}'>━ true posterior p(z|x)</span>&nbsp;&nbsp; "
                f"<span style='color:{q}'>━ q(z|x) &nbsp;● its samples</span>{gap}"
                f"◯ particles: size, shade ∝ w̃&nbsp;&nbsp; "
                f"<span style='color:{muted}'>(contours 1σ, 2σ, 3σ)</span></span>")

    def _apply_style(self, style: Style) -> None:
        self._style = style
        for panel in self.panels():
            panel.apply_style(style)
        self._style_chrome(style)
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
        self._ensure_laid_out()
        if panel is None:
            return self.scene()
        return self.panel(panel).plot

    def _ensure_laid_out(self) -> None:
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
        super().resizeEvent(event)
        if getattr(self, "key", None) is not None and not getattr(self, "closed", False):
            self._update_key()  # (also called from the base __init__, before our attributes exist)

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

    def _on_scene_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        for panel in self._clickable():
            if panel.handle_click(event.scenePos()):
                event.accept()
                return


def _html_width(html: str) -> float:
    doc = QTextDocument()
    doc.setHtml(html)
    return doc.idealWidth()


def _tight(layout: pg.GraphicsLayout) -> None:
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)

