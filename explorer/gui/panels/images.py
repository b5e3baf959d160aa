"""Panels for problems whose data are images (``Snapshot.image_shape`` set, e.g. the digits):

- :class:`ThumbnailsPanel`, the data panel: a page of the data set as thumbnails, x_obs framed; clicking
  one shows it (the figure connects ``observation_clicked`` as for the scatter data panel);
- :class:`ReconstructionPanel`: x_obs beside each run's reconstruction E[x | z = E_q z], framed in the
  run's colour;
- :class:`ManifoldPanel`: the classic picture of a 2-D latent, the decoder's mean image over a grid of z,
  with the shown x's q samples and K weighted particles of one run on it (a click shows the next run).

Images are drawn dark ink on white, pixel values in [0, 1]; each panel keeps one ImageItem and feeds it.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Signal
from PySide6.QtWidgets import QGraphicsRectItem

from explorer.core.snapshot import RunView, Snapshot

from .. import theme
from ..theme import Style
from .base import Panel, PointsItem, new_plot

COLS, ROWS = 12, 8  # thumbnails per page
GAP = 1  # pixels between thumbnails
INK_LUT = np.linspace(255, 25, 256).astype(np.uint8)[:, None].repeat(3, 1)  # 0 → white, 1 → near black


def _u8(images: np.ndarray) -> np.ndarray:
    """Pixel values in [0, 1] (NaN as 0) as the LUT's 0–255 indices."""
    return (np.clip(np.nan_to_num(np.asarray(images, dtype=np.float64)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def tile(images: np.ndarray, shape: tuple[int, int], cols: int, gap: int = GAP) -> np.ndarray:
    """Row-major images [N, h·w] as one picture of ``cols`` per row with ``gap`` pixels between them:
    [width, height] indexed (x, y) with y up, for an ImageItem in col-major order (row 0 on top)."""
    h, w = shape
    n = len(images)
    rows = max(1, math.ceil(n / cols))
    out = np.zeros((cols * (w + gap) - gap, rows * (h + gap) - gap), np.uint8)
    pictures = _u8(images).reshape(n, h, w)
    for i, picture in enumerate(pictures):
        r, c = divmod(i, cols)
        x0, y0 = c * (w + gap), (rows - 1 - r) * (h + gap)
        out[x0 : x0 + w, y0 : y0 + h] = picture.T[:, ::-1]
    return out


def _image_plot(name: str) -> pg.PlotItem:
    plot = new_plot(name)
    vb = plot.getViewBox()
    vb.setAspectLocked(True, ratio=1.0)
    vb.setMouseEnabled(False, False)
    vb.setBackgroundColor(theme.qcolor(theme.BACKGROUND))
    for axis in ("left", "bottom"):
        plot.hideAxis(axis)
    return plot


class ThumbnailsPanel(QObject):
    """The data set as pages of COLS × ROWS thumbnails (the page holding x_obs), x_obs framed. A click on a
    thumbnail emits its index. The interface of :class:`DataPanel` (plot, update, handle_click)."""

    observation_clicked = Signal(int)

    def __init__(self, style: Style):
        QObject.__init__(self)
        self._panel = Panel(style)
        self.name = "data"
        self._data: np.ndarray | None = None
        self._shape: tuple[int, int] = (1, 1)
        self._page = -1
        self._obs = -1
        self.plot = plot = _image_plot(self.name)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setLookupTable(INK_LUT)
        plot.addItem(self.image)
        self.frame = QGraphicsRectItem()
        self.frame.setZValue(5)
        plot.addItem(self.frame)
        self._panel.keep_pen(self.frame.setPen, lambda s: s.pen(theme.OBS_COLOR, 2.5))
        self.restyle_text(style)

    @property
    def style(self) -> Style:
        return self._panel.style

    def apply_style(self, style: Style) -> None:
        self._panel.apply_style(style)
        self.restyle_text(style)

    def restyle_text(self, style: Style) -> None:
        theme.set_title(self.plot, self._title(), style)

    def _title(self) -> str:
        per = COLS * ROWS
        n = len(self._data) if self._data is not None else 0
        where = f" · data[{self._page * per}–{min(n, (self._page + 1) * per) - 1}] of {n}" if n else ""
        obs = f"x_obs = data[{self._obs}]" if self._obs >= 0 else "data"
        return (f"{obs}{where}<br><span style='color:{theme.MUTED}; font-size:"
                f"{self.style.pt_str(theme.BASE_FONT_PT - 1)}'>click an image to show it</span>")

    def update(self, snapshot: Snapshot) -> None:
        data, shape = snapshot.data, snapshot.image_shape or (1, int(np.asarray(snapshot.data).shape[-1]))
        page = max(snapshot.observation, 0) // (COLS * ROWS)
        if self._data is None or data is not self._data and not np.array_equal(data, self._data) or page != self._page:
            self._data, self._shape, self._page = data, shape, page
            shown = np.asarray(data)[page * COLS * ROWS : (page + 1) * COLS * ROWS]
            picture = tile(shown, shape, COLS)
            self.image.setImage(picture, autoLevels=False, levels=(0, 255))
            self.image.setRect(QRectF(0, 0, picture.shape[0], picture.shape[1]))
            self.plot.getViewBox().setRange(xRange=(0, picture.shape[0]), yRange=(0, picture.shape[1]), padding=0.02)
            self._obs = -1
        if snapshot.observation != self._obs:
            self._obs = snapshot.observation
            self._place_frame()
            theme.set_title(self.plot, self._title(), self.style)

    def _cell(self, i: int) -> tuple[float, float]:
        """Lower-left corner of the page's i-th thumbnail, in view coordinates."""
        h, w = self._shape
        shown = len(np.asarray(self._data)[self._page * COLS * ROWS : (self._page + 1) * COLS * ROWS])
        rows = max(1, math.ceil(shown / COLS))
        r, c = divmod(i, COLS)
        return float(c * (w + GAP)), float((rows - 1 - r) * (h + GAP))

    def _place_frame(self) -> None:
        h, w = self._shape
        x, y = self._cell(self._obs - self._page * COLS * ROWS)
        self.frame.setRect(QRectF(x - 0.5, y - 0.5, w + 1.0, h + 1.0))

    def index_at(self, x: float, y: float) -> int | None:
        """The data index of the thumbnail at view coordinates (x, y), or None (a gap, off the page)."""
        if self._data is None:
            return None
        h, w = self._shape
        n = len(self._data)
        shown = min(COLS * ROWS, n - self._page * COLS * ROWS)
        rows = max(1, math.ceil(shown / COLS))
        c, r = math.floor(x / (w + GAP)), rows - 1 - math.floor(y / (h + GAP))
        inside = 0 <= c < COLS and 0 <= r < rows and x - c * (w + GAP) < w and y - (rows - 1 - r) * (h + GAP) < h
        i = r * COLS + c
        return self._page * COLS * ROWS + i if inside and i < shown else None

    def handle_click(self, scene_pos: QPointF) -> bool:
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return False
        p = vb.mapSceneToView(scene_pos)
        index = self.index_at(p.x(), p.y())
        if index is None:
            return False
        self.observation_clicked.emit(index)
        return True


class ReconstructionPanel(Panel):
    """x_obs, then each run's reconstruction (the decoder's mean image at q's mean), framed in the run's
    colour, in one row."""

    def __init__(self, n_runs: int, style: Style):
        super().__init__(style)
        self.name = "images"
        self.n_runs = n_runs
        self.plot = plot = _image_plot(self.name)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setLookupTable(INK_LUT)
        plot.addItem(self.image)
        self.frames = []
        for i in range(n_runs + 1):
            frame = QGraphicsRectItem()
            frame.setZValue(5)
            plot.addItem(frame)
            color = theme.OBS_COLOR if i == 0 else theme.run_color(i - 1)
            self.keep_pen(frame.setPen, lambda s, c=color: s.pen(c, 2.5))
            self.frames.append(frame)
        self._shape: tuple[int, int] | None = None
        self.restyle_text(style)

    def restyle_text(self, style: Style) -> None:
        theme.set_title(self.plot, "x_obs and each run's reconstruction<br>"
                        f"<span style='color:{theme.MUTED}; font-size:{style.pt_str(theme.BASE_FONT_PT - 1)}'>"
                        "E[x | z] at q's mean, framed in the run's colour</span>", style)

    def update(self, snapshot: Snapshot) -> None:
        shape = snapshot.image_shape
        if shape is None:
            return
        h, w = shape
        blank = np.zeros(h * w, np.float32)
        images = [np.asarray(snapshot.x_obs, np.float32)] + [
            run.reconstruction if run.reconstruction is not None else blank for run in snapshot.runs[: self.n_runs]]
        gap = 2
        picture = tile(np.stack(images), shape, len(images), gap)
        self.image.setImage(picture, autoLevels=False, levels=(0, 255))
        if self._shape != (h, w, len(images)):
            self._shape = (h, w, len(images))
            self.image.setRect(QRectF(0, 0, picture.shape[0], picture.shape[1]))
            for i, frame in enumerate(self.frames):
                frame.setRect(QRectF(i * (w + gap) - 0.5, -0.5, w + 1.0, h + 1.0))
                frame.setVisible(i < len(images))
            self.plot.getViewBox().setRange(xRange=(-1, picture.shape[0] + 1), yRange=(-1, h + 1), padding=0.02)


class ManifoldPanel(Panel):
    """The decoder's mean images over the grid of ``Snapshot.manifold_box`` (one tile per grid cell, in
    latent coordinates), with one run's q samples and weighted particles for x_obs on top. A click shows
    the next run's."""

    def __init__(self, n_runs: int, style: Style, weight_brushes: list):
        super().__init__(style)
        self.name = "manifold"
        self.n_runs = n_runs
        self.run_index = 0
        self._weight_brushes = weight_brushes
        self._box: tuple[float, ...] | None = None
        self._snapshot: Snapshot | None = None
        self._titled: tuple[int, str] | None = None  # (run index, name) the title shows
        self.plot = plot = new_plot(self.name)
        vb = plot.getViewBox()
        vb.setAspectLocked(True, ratio=1.0)
        vb.setMouseEnabled(False, False)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setLookupTable(INK_LUT)
        self.image.setZValue(-10)
        plot.addItem(self.image)
        self.q_samples = PointsItem(theme.qcolor(theme.Q_COLOR, 150))
        self.q_samples.setZValue(3)
        plot.addItem(self.q_samples)
        self.keep_pen(self.q_samples.setSize, lambda s: s.cosmetic_px(3.0))
        self.particles = pg.ScatterPlotItem(symbol="o", antialias=True)
        self.particles.setZValue(4)
        plot.addItem(self.particles)
        self.keep_pen(self.particles.setPen, lambda s: s.pen(theme.Q_COLOR, theme.W_MARKER_EDGE))
        self.restyle_text(style)

    def restyle_text(self, style: Style) -> None:
        theme.style_plot(self.plot, style, "z₁", "z₂", self._title(style))

    def _title(self, style: Style) -> str:
        run = ""
        if self._snapshot is not None and self.run_index < len(self._snapshot.runs):
            r = self._snapshot.runs[self.run_index]
            run = f" · <span style='color:{theme.run_color(r.index)}'>■ {theme.escape(r.name)}</span>"
        return (f"E[x | z]{run}<br><span style='color:{theme.MUTED}; font-size:"
                f"{style.pt_str(theme.BASE_FONT_PT - 1)}'>q's samples, particles · click: next run</span>")

    def next_run(self) -> None:
        """Show the next run's decoder and particles."""
        self.run_index = (self.run_index + 1) % max(self.n_runs, 1)
        if self._snapshot is not None:
            self.update(self._snapshot)

    def handle_click(self, scene_pos: QPointF) -> bool:
        if not self.plot.getViewBox().sceneBoundingRect().contains(scene_pos):
            return False
        self.next_run()
        return True

    def update(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        if not snapshot.runs or snapshot.image_shape is None or snapshot.manifold_box is None:
            return
        self.run_index = min(self.run_index, len(snapshot.runs) - 1)
        run = snapshot.runs[self.run_index]
        if self._titled != (self.run_index, run.name):
            self._titled = (self.run_index, run.name)
            theme.set_title(self.plot, self._title(self.style), self.style)
        self._set_manifold(run, snapshot.image_shape, tuple(snapshot.manifold_box))
        self.q_samples.setData(run.q_samples)
        self._set_particles(run)

    def _set_manifold(self, run: RunView, shape: tuple[int, int], box: tuple[float, ...]) -> None:
        if run.manifold is None:
            self.image.clear()
            return
        n1, n2 = run.manifold.shape[:2]
        # tile (i₁, i₂) covers the grid cell at (z₁, z₂): rows of tiles from the top are z₂ from the top
        rows = [run.manifold[i1, i2] for i2 in reversed(range(n2)) for i1 in range(n1)]
        self.image.setImage(tile(np.stack(rows), shape, n1), autoLevels=False, levels=(0, 255))
        if self._box != box:
            self._box = box
            self.image.setRect(QRectF(box[0], box[2], box[1] - box[0], box[3] - box[2]))
            self.plot.getViewBox().setRange(xRange=box[:2], yRange=box[2:], padding=0.0)

    def _set_particles(self, run: RunView) -> None:
        pos = np.asarray(run.particles, dtype=np.float64).reshape(-1, 2)
        w = np.asarray(run.weights, dtype=np.float64).reshape(-1)[: len(pos)]
        ok = np.isfinite(pos).all(axis=1) & np.isfinite(w)
        pos, w = pos[ok], np.clip(w[ok], 0.0, 1.0)
        if not len(pos):
            self.particles.setData(pos=np.zeros((0, 2)))
            return
        order = np.argsort(w)
        pos, w = pos[order], w[order]
        lo, hi = theme.WEIGHT_LOG_RANGE
        t = (np.log10(np.maximum(w, 10.0**lo)) - lo) / (hi - lo)
        idx = np.clip((t * (len(self._weight_brushes) - 1)).round().astype(int), 0, len(self._weight_brushes) - 1)
        sizes = np.round((self.style.px(3.5) + self.style.px(10.0) * np.sqrt(w)) * 2.0) / 2.0
        self.particles.setData(pos=pos, size=sizes, brush=[self._weight_brushes[i] for i in idx])
