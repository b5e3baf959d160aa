"""The posterior panel of one run: the exact p(z|x) as an image with contours, q's contours and samples,
the weighted particles, the mode labels and the exact numbers with their errors; its view follows the
mass calmly (``follow``)."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetricsF

from explorer.core.snapshot import RunView, Snapshot

from .. import theme
from ..theme import Style, fmt
from .arrows import ArrowLayer
from .base import (MAX_MODE_LABELS, SIGMA_LEVELS, Contourer, err_digits, new_plot, Panel, PointsItem,
                   same_array, sanitise_log_density, wrap_lines)


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
        self.plot = plot = new_plot(self.name, view_box=FollowViewBox())
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
        self.arrows = ArrowLayer(plot, self.particles, self.keep_pen)  # the encoder's gradient, per particle

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
            self.arrows.place((x0, x1, y0, y1))

    # ------------------------------------------------------------------ text
    def restyle_text(self, style: Style) -> None:
        theme.style_plot(self.plot, style, "z₁", "z₂")
        for label in self.mode_labels:
            label.setFont(style.font(theme.BASE_FONT_PT - 1))
        self.diverged_text.setFont(style.font(theme.BASE_FONT_PT + 5, bold=True))
        self.warning_text.setFont(style.font(theme.BASE_FONT_PT - 1.5))
        self.pin_text.setFont(style.font(theme.BASE_FONT_PT - 2))
        self.arrows.restyle_text(style)
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
        if not same_array(run.log_post, self._shown_post):
            self._shown_post = run.log_post
            self._set_posterior(snapshot, run)
        if not same_array(run.log_q, self._shown_q):
            self._shown_q = run.log_q
            q = sanitise_log_density(run.log_q)
            if q is None:
                for item in self.q_lines:
                    item.setData([], [])
            else:
                self._set_contours(self.q_lines, self._grid_box(snapshot, run.q_box), *q)

        self.q_samples.setData(run.q_samples)

        self._set_particles(run)
        self.arrows.update(snapshot.show_arrows, run, self.view_rect())
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
