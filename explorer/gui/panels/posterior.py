"""The posterior panel of one run: the exact p(z|x) as an image with contours, q's contours and samples,
the weighted particles, the mode labels and the exact numbers with their errors; its view follows the
mass calmly (``follow``)."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QFontMetricsF

from explorer.core.snapshot import RunView, Snapshot

from .. import theme
from ..theme import Style, fmt
from .arrows import ArrowLayer
from .base import (MAX_MODE_LABELS, SIGMA_LEVELS, Contourer, err_digits, new_plot, Panel, PointsItem,
                   Readout, ResettableViewBox, same_array, sanitise_log_density, wrap_lines)


Box = tuple[float, float, float, float]  # (z1_min, z1_max, z2_min, z2_max)
FOLLOW_FILL = 0.5  # the view changes when what it should show fills less than this in both directions...
FOLLOW_MARGIN = 0.1  # ...or leaves it; a new view has this margin on each side, so it does not jitter
GAP_BOX_SHARE = 0.4  # the q* gap box covers at most this share of the view's height
MODE_MASS_LOG = -4.5  # log p − its peak at the 3σ contour: a mode label covers no mass above this
#: the mode labels' font sizes (points before the style's scale) and layouts, tried in turn until all fit
MODE_LABEL_FONTS = ((theme.BASE_FONT_PT - 1, False), (theme.BASE_FONT_PT - 1, True),
                    (theme.BASE_FONT_PT - 2.5, True), (theme.BASE_FONT_PT - 4, True))
MODE_LABEL_RINGS = 6  # a label's nearest corner is at most 6 × 3 % of the view from its mode
MODE_LABEL_TIP = ("A mode of the true posterior (a basin holding at least 5 % of its mass).\n"
                  "p: the posterior mass of this basin; q: q's mass there.")


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


def grid_value(grid: np.ndarray | None, box: tuple[float, ...], x: float, y: float) -> float:
    """The value of a cell-centred [n₁, n₂] ``grid`` over ``box`` in the cell holding (x, y); NaN outside
    the grid (there the density is too small to have been computed)."""
    if grid is None:
        return math.nan
    a = np.asarray(grid)
    if a.ndim != 2 or not a.size:
        return math.nan
    i = math.floor((x - box[0]) / (box[1] - box[0]) * a.shape[0])
    j = math.floor((y - box[2]) / (box[3] - box[2]) * a.shape[1])
    if not (0 <= i < a.shape[0] and 0 <= j < a.shape[1]):
        return math.nan
    return float(a[i, j])


def _sign(v: float) -> float:
    return 0.0 if abs(v) < 1e-9 else math.copysign(1.0, v)


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
        self.plot = plot = new_plot(self.name, view_box=ResettableViewBox())
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
            label = pg.TextItem(anchor=(0.5, 0.5), color=theme.FOREGROUND, fill=pg.mkBrush(255, 255, 255, 190))
            label.setZValue(4.5)  # above the particles: a big particle hid its numbers (labels sit off the mass)
            label.setToolTip(MODE_LABEL_TIP)
            label.hide()
            plot.addItem(label)
            self.mode_labels.append(label)
        self.mode_leaders = pg.PlotCurveItem(antialias=True)  # from a label placed further out to its mode
        self.mode_leaders.setZValue(3.4)
        plot.addItem(self.mode_leaders)
        self.keep_pen(self.mode_leaders.setPen, lambda s: s.pen(theme.MUTED, 1.0))
        self._mode_key: tuple | None = None
        self._post_grid: tuple[np.ndarray, tuple[float, ...]] | None = None  # (log p − peak, its box)
        self._post_version = 0

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
        self.readout = Readout(plot, style)
        self._grid_boxes: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (p's, q's) for the readout
        self._init_q_star()
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

    def hold_range(self, rect: tuple[float, float, float, float]) -> None:
        """Show ``rect`` (widened to the square aspect) and stop following, without the pinned note."""
        self._pinned = True
        self._apply_view(rect)

    def release_range(self) -> None:
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
            self._set_gaps(self._run)
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
        self._place_gaps()
        self.diverged_text.setPos(0.5 * (x0 + x1), 0.5 * (y0 + y1))
        self.diverged_frame.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        if self._run is not None:
            self._set_modes(self._run)
            self.arrows.place((x0, x1, y0, y1))

    # ------------------------------------------------------------------ text
    def restyle_text(self, style: Style) -> None:
        theme.style_plot(self.plot, style, "z₁", "z₂")
        self._mode_key = None  # the labels' fonts are chosen with their places
        self.diverged_text.setFont(style.font(theme.BASE_FONT_PT + 5, bold=True))
        self.warning_text.setFont(style.font(theme.BASE_FONT_PT - 1.5))
        self.pin_text.setFont(style.font(theme.BASE_FONT_PT - 2))
        self._gap_fonts = (style.font(theme.BASE_FONT_PT - 1.5), style.font(theme.BASE_FONT_PT - 3.5))
        self.gap_text.setFont(self._gap_fonts[0])
        self.arrows.restyle_text(style)
        if self._run is not None:
            self._title = ""
            self._set_title(self._run)
            self._warning = ""
            self._set_warning(self._run)
            self._gaps = ""
            self._set_gaps(self._run)

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
        self._grid_boxes = (self._grid_box(snapshot, run.post_box), self._grid_box(snapshot, run.q_box))
        self._set_title(run)
        self._wanted = run.view_box
        # a free x is being dragged (the x-pad): follow calmly even while paused, so the view does not jump
        # at every move (and the axes are not redrawn: a third of the frame rate)
        self._follow(canonical=snapshot.paused and snapshot.observation is not None)

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
        self._set_q_star(snapshot, run)  # after the arrows: the gap numbers go below their note
        self._set_modes(run)
        self._set_diverged(run.diverged_step)
        self._set_warning(run)

    def _grid_box(self, snapshot: Snapshot, box: tuple[float, float, float, float] | None) -> tuple[float, ...]:
        return tuple(box) if _finite_box(box) else tuple(snapshot.box)

    def _set_posterior(self, snapshot: Snapshot, run: RunView) -> None:
        post = sanitise_log_density(run.log_post)
        if post is None:
            self._post_grid = None
            self._post_version += 1
            self.image.clear()
            for item in self.p_lines:
                item.setData([], [])
            return
        log_p, peak = post
        self._post_grid = (log_p - peak, self._grid_box(snapshot, run.post_box))
        self._post_version += 1
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

    # ------------------------------------------------------------------ mode labels
    def _set_modes(self, run: RunView) -> None:
        """Label each posterior mode with its mass under p and under q, next to the mode's centre and off
        every mode's mass (outside the 3σ contours of p, see :meth:`_mode_label_spot`); a thin line leads
        from a label placed further out to its mode. Where the labels do not all fit cleanly (a small panel,
        talk fonts) they try two lines, then smaller fonts (:data:`MODE_LABEL_FONTS`). Placed again only
        when the modes, the view, the posterior or the style changed."""
        modes = [md for md in run.modes[:MAX_MODE_LABELS]
                 if math.isfinite(md.center[0]) and math.isfinite(md.p_mass) and math.isfinite(md.q_mass)]
        if len(modes) < 2:  # one basin: the title's KLs say it all
            modes = []
        key = (tuple((md.center, md.p_mass, md.q_mass) for md in modes), self.view_rect(), self._post_version,
               self.plot.getViewBox().size().toTuple(), self.style.font_scale, self._gap_rect())
        if key == self._mode_key:
            return
        self._mode_key = key
        lines = [f"p {md.p_mass:.0%} · q {md.q_mass:.0%}" for md in modes]
        spots: list[tuple[float, float]] = []
        for points, two_lines in MODE_LABEL_FONTS:
            font = self.style.font(points)
            texts = [t.replace(" · ", "\n") for t in lines] if two_lines else lines
            sizes = []
            for label, text in zip(self.mode_labels, texts):
                label.setFont(font)
                label.setText(text)
                rect = label.boundingRect()  # in pixels: a TextItem ignores the view's scaling
                sizes.append((rect.width(), rect.height()))
            spots, clean = self._place_mode_labels(modes, sizes)
            if clean:
                break
        leaders: list[tuple[float, float]] = []
        for label, mode, (x, y), (w, h) in zip(self.mode_labels, modes, spots, sizes):
            label.setPos(x, y)
            label.show()
            px, py = self._pixel_size()
            if math.hypot((x - mode.center[0]) / px, (y - mode.center[1]) / py) > 0.5 * (w + h):
                rect = (x - w * px / 2, x + w * px / 2, y - h * py / 2, y + h * py / 2)
                leaders += [mode.center, self._rect_edge_point(rect, mode.center)]
        for label in self.mode_labels[len(modes):]:
            label.hide()
        if leaders:
            xy = np.asarray(leaders, dtype=np.float64)
            self.mode_leaders.setData(xy[:, 0], xy[:, 1], connect="pairs")
        else:
            self.mode_leaders.setData([], [])

    def _place_mode_labels(self, modes: list, sizes: list[tuple[float, float]]
                           ) -> tuple[list[tuple[float, float]], bool]:
        """The labels' centres (view units) for labels of ``sizes`` (pixels), the heaviest mode's first,
        and whether every label found a spot off the others' mass."""
        px, py = self._pixel_size()
        centers = [md.center for md in modes]
        gap_box = self._gap_rect()  # the q* gap box (top right) is no place for a label either
        taken: list[tuple[float, float, float, float]] = [gap_box] if gap_box is not None else []
        spots: list[tuple[float, float]] = [(0.0, 0.0)] * len(modes)
        clean = True
        for i in sorted(range(len(modes)), key=lambda j: -modes[j].p_mass):
            w, h = sizes[i][0] * px, sizes[i][1] * py
            x, y, ok = self._mode_label_spot(centers[i], w, h, taken, centers)
            clean = clean and ok
            taken.append((x - w / 2, x + w / 2, y - h / 2, y + h / 2))
            spots[i] = (x, y)
        return spots, clean

    def _mode_label_spot(self, center: tuple[float, float], w: float, h: float,
                         taken: list[tuple[float, float, float, float]],
                         centers: list[tuple[float, float]]) -> tuple[float, float]:
        """The centre of a ``w`` × ``h`` (view units) label for the mode at ``center``: the nearest spot on
        rings around it (16 directions, growing distance up to 18 % of the view), inside the view and clear of the other labels,
        that covers no other mode's mass (cells nearer another mode's centre where log p is above its
        peak − 4.5, the 3σ contour) and not the mode's own core (log p within 2 of its value at the
        centre), with its centre nearer this mode than any other; failing that, the spot covering the
        least (and False)."""
        x0, x1, y0, y1 = self.view_rect()
        span = max(x1 - x0, y1 - y0)
        others = [c for c in centers if c != center]
        core = self._log_density_at(center) - 2.0
        best: tuple[float, float, float] | None = None  # (score, x, y)
        for ring in range(1, MODE_LABEL_RINGS + 1):
            r = 0.03 * span * ring
            for k in range(16):
                a = math.pi / 2 - k * math.pi / 8  # above first, then clockwise
                ca, sa = math.cos(a), math.sin(a)
                # the label's nearest corner (or edge) at distance r from the centre, in direction a
                x = center[0] + r * ca + (w / 2) * _sign(ca)
                y = center[1] + r * sa + (h / 2) * _sign(sa)
                rect = (x - w / 2, x + w / 2, y - h / 2, y + h / 2)
                if rect[0] < x0 or rect[1] > x1 or rect[2] < y0 or rect[3] > y1:
                    continue
                if any(rect[0] < t[1] and t[0] < rect[1] and rect[2] < t[3] and t[2] < rect[3] for t in taken):
                    continue
                own, other = self._max_log_density_in(rect, center, others)
                # and nearer its own mode than any other, so that it reads as that mode's label
                d_own = math.hypot(x - center[0], y - center[1])
                nearer = all(d_own < math.hypot(x - c[0], y - c[1]) for c in others)
                if other < MODE_MASS_LOG and own < core and nearer:
                    return x, y, True
                score = (max(other - MODE_MASS_LOG, 0.0) + max(own - core, 0.0) + 0.02 * ring
                         + (0.0 if nearer else 1.0))
                if best is None or score < best[0]:
                    best = (score, x, y)
        if best is None:  # the view is too small for the label anywhere: at the bottom edge, under the mode
            return min(max(center[0], x0 + w / 2), x1 - w / 2), y0 + h / 2, False
        return best[1], best[2], False

    def _grid_cells(self, rect: tuple[float, float, float, float]):
        """(log p − peak over the grid cells in ``rect``, their z₁ centres, their z₂ centres), or None."""
        grid = self._post_grid
        if grid is None:
            return None
        log_p, box = grid
        n1, n2 = log_p.shape
        h1, h2 = (box[1] - box[0]) / n1, (box[3] - box[2]) / n2
        i0, j0 = int(math.floor((rect[0] - box[0]) / h1)), int(math.floor((rect[2] - box[2]) / h2))
        i1 = max(i0 + 1, int(math.ceil((rect[1] - box[0]) / h1)))  # a point is one cell
        j1 = max(j0 + 1, int(math.ceil((rect[3] - box[2]) / h2)))
        i0, i1, j0, j1 = max(0, i0), min(n1, i1), max(0, j0), min(n2, j1)
        if i1 <= i0 or j1 <= j0:
            return None
        return (log_p[i0:i1, j0:j1], box[0] + h1 * (np.arange(i0, i1) + 0.5),
                box[2] + h2 * (np.arange(j0, j1) + 0.5))

    def _log_density_at(self, z: tuple[float, float]) -> float:
        """log p(z|x) − its peak in the grid cell at ``z`` (−inf outside the grid)."""
        cells = self._grid_cells((z[0], z[0], z[1], z[1]))
        return float(cells[0].max()) if cells is not None else -math.inf

    def _max_log_density_in(self, rect: tuple[float, float, float, float], center: tuple[float, float],
                            others: list[tuple[float, float]]) -> tuple[float, float]:
        """The largest log p(z|x) − its peak over the grid cells in ``rect`` nearer ``center`` than any of
        ``others`` (the mode's own), and over the rest (the other modes'); −inf where there is none."""
        cells = self._grid_cells(rect)
        if cells is None:
            return -math.inf, -math.inf
        log_p, z1, z2 = cells
        own_d2 = (z1[:, None] - center[0]) ** 2 + (z2[None, :] - center[1]) ** 2
        other_d2 = np.full_like(own_d2, np.inf)
        for c in others:
            other_d2 = np.minimum(other_d2, (z1[:, None] - c[0]) ** 2 + (z2[None, :] - c[1]) ** 2)
        mine = own_d2 <= other_d2
        own = float(log_p[mine].max()) if mine.any() else -math.inf
        other = float(log_p[~mine].max()) if (~mine).any() else -math.inf
        return own, other

    @staticmethod
    def _rect_edge_point(rect: tuple[float, float, float, float], toward: tuple[float, float]) -> tuple[float, float]:
        """The point of ``rect``'s border on the way from its centre to ``toward`` (a leader line's end)."""
        cx, cy = 0.5 * (rect[0] + rect[1]), 0.5 * (rect[2] + rect[3])
        dx, dy = toward[0] - cx, toward[1] - cy
        hw, hh = 0.5 * (rect[1] - rect[0]), 0.5 * (rect[3] - rect[2])
        t = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf, 1.0)
        return cx + t * dx, cy + t * dy

    # ------------------------------------------------------------------ hover readout
    PARTICLE_HOVER_PX = 8.0  # a particle this close to the cursor is the one read out

    def hover(self, x: float | None, y: float | None) -> None:
        """Over the panel: z, log p(z|x), log q(z|x) and log w = log p(x, z) − log q(z|x) from the shown
        grids (nearest cell); over a particle, its w̃ and log w."""
        run, boxes = self._run, self._grid_boxes
        if x is None or y is None or run is None or boxes is None:
            self.readout.hide()
            return
        px, py = self._pixel_size()
        particles = np.asarray(run.particles, dtype=np.float64).reshape(-1, 2)
        picked = None
        if len(particles):
            d2 = ((particles[:, 0] - x) / px) ** 2 + ((particles[:, 1] - y) / py) ** 2
            k = int(np.argmin(d2))
            if d2[k] <= self.PARTICLE_HOVER_PX**2:
                picked, (x, y) = k, particles[k]
        log_p = grid_value(run.log_post, boxes[0], x, y)
        log_q = grid_value(run.log_q, boxes[1], x, y)
        log_px = run.metrics.get("log_px")
        log_w = log_p + log_px - log_q if log_px is not None else math.nan
        lines = [f"z = ({fmt(x)}, {fmt(y)})"]
        if picked is not None:
            w = np.asarray(run.weights, dtype=np.float64).reshape(-1)
            lines.insert(0, f"<b>particle {picked + 1} of {len(particles)}</b>")
            lines.append(f"w̃ = {w[picked]:.3g}" if picked < len(w) else "w̃ = –")
        lines += [f"log p(z|x) = {fmt(log_p)}", f"log q(z|x) = {fmt(log_q)}", f"log w = {fmt(log_w)}"]
        self.readout.show(x, y, "<br>".join(lines))

    def _pixel_size(self) -> tuple[float, float]:
        """View units per screen pixel, from the view's range and size (the ViewBox's own transform can lag
        a resize until its next paint); a guess from the nominal width before the first layout."""
        x0, x1, y0, y1 = self.view_rect()
        width, height = self.plot.getViewBox().size().toTuple()
        if width > 1 and height > 1:
            return (x1 - x0) / width, (y1 - y0) / height
        px = (x1 - x0) / max(self.nominal_width, 100.0)
        return px, px

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

    # ------------------------------------------------------------------ amortisation: q* and the gap split
    def _init_q_star(self) -> None:
        """q*'s contours (dashed, beside q_φ's solid ones) and the gap numbers (top right)."""
        self._shown_q_star: np.ndarray | None = None
        self._gaps = ""
        self.q_star_lines = [pg.PlotCurveItem(connect="finite", antialias=True) for _ in SIGMA_LEVELS]
        for i, item in enumerate(self.q_star_lines):
            item.setZValue(2)
            self.plot.addItem(item)
            self.keep_pen(item.setPen, lambda s, i=i: s.pen(theme.Q_COLOR, theme.W_CONTOUR_Q * (0.8 - 0.12 * i),
                                                            style=theme.DASHED))
        self.gap_text = pg.TextItem(anchor=(1.0, 0.0), color=theme.FOREGROUND, fill=pg.mkBrush(255, 255, 255, 200))
        self.gap_text.setZValue(15)
        self._gap_fonts: tuple = ()  # the style's font for the gap box and a smaller one (restyle_text)
        self.gap_text.hide()
        self.plot.addItem(self.gap_text)

    def _set_q_star(self, snapshot: Snapshot, run: RunView) -> None:
        if not same_array(run.q_star_log_q, self._shown_q_star):
            self._shown_q_star = run.q_star_log_q
            q = None if run.q_star_log_q is None else sanitise_log_density(run.q_star_log_q)
            if q is None:
                for item in self.q_star_lines:
                    item.setData([], [])
            else:
                self._set_contours(self.q_star_lines, self._grid_box(snapshot, run.q_star_box), *q)
        self._set_gaps(run)
        self._place_gaps()

    def _set_gaps(self, run: RunView) -> None:
        """The gap numbers, broken at spaces to fit the view's width (a narrow panel, a talk style): the
        box is anchored top right, so an unbroken line would run off the view's left edge. The box covers
        at most GAP_BOX_SHARE of the view's height: where the full text would cover more (a small view,
        a large talk font), the compact text, then the compact text in a smaller font; where even that
        does not fit, no box (the gaps are in the KL panel and summary.json)."""
        x0, x1, y0, y1 = self.view_rect()
        sx, sy = self._pixel_size()
        width_px, height_px = max(60.0, (x1 - x0) / sx - 10), (y1 - y0) / sy
        fonts = self._gap_fonts or (self.gap_text.textItem.font(),) * 2
        gaps, font = "", fonts[0]
        for text, font in ((self.gaps_text(run), fonts[0]), (self.gaps_text(run, compact=True), fonts[0]),
                           (self.gaps_text(run, compact=True), fonts[1])):
            if not text:
                break
            metrics = QFontMetricsF(font)
            lines = wrap_lines(text.split("\n"), metrics, width_px)
            if len(lines) * metrics.lineSpacing() <= GAP_BOX_SHARE * height_px:
                gaps = "\n".join(lines)
                break
        if gaps != self._gaps or font != self.gap_text.textItem.font():
            self._gaps = gaps
            self.gap_text.setFont(font)
            self.gap_text.setText(gaps)
            self.gap_text.setVisible(bool(gaps))

    @staticmethod
    def gaps_text(run: RunView, compact: bool = False) -> str:
        """log p(x) − ELBO split at q* (dashed): approximation + amortisation gap, with errors; for a
        K-particle run also the split of L_K (± its Monte Carlo standard error); or what q* is doing.
        ``compact``: the same numbers under one heading line, without the explanation of q*."""
        m = run.metrics
        parts = []
        if "amortisation_gap" in m:
            parts.append(("ELBO", err_digits(m.get("approximation_gap"), m.get("approximation_gap_err")),
                          err_digits(m.get("amortisation_gap"), m.get("amortisation_gap_err"))))
        if "amortisation_gap_k" in m:
            parts.append(("L_K", err_digits(m.get("approximation_gap_k"), m.get("approximation_gap_k_err")),
                          err_digits(m.get("amortisation_gap_k"), m.get("amortisation_gap_k_err"))))
        if compact:
            lines = (["gap = approx. + amort."] if parts else []) + [f"{b} {a} + {c}" for b, a, c in parts]
        else:
            lines = [f"{b} gap: approx. {a} + amort. {c}" for b, a, c in parts]
        lines = [line.replace(" ± ", "\u00a0±\u00a0") for line in lines]  # a value and its error stay on one line
        if run.q_star_note:
            lines.append(f"q* (dashed): {run.q_star_note}" if not parts else run.q_star_note)
        elif parts and not compact:
            lines.append("q* = the best q for this x alone (dashed)")
        return "\n".join(lines)

    def _gap_rect(self) -> tuple[float, float, float, float] | None:
        """Where the gap box is, in view units (x0, x1, y0, y1); None when it is hidden."""
        if not self._gaps:
            return None
        rect = self.gap_text.boundingRect()  # pixels, anchored at its top right corner
        px, py = self._pixel_size()
        x, y = self.gap_text.pos().x(), self.gap_text.pos().y()
        return (x - rect.width() * px, x, y - rect.height() * py, y)

    def _place_gaps(self) -> None:
        """Top right, below the pin note and the arrows' scale note where they show."""
        x0, x1, y0, y1 = self.view_rect()
        below_px = 22.0 if self.pin_text.isVisible() else 0.0
        note = self.arrows.note
        if note.isVisible():
            below_px += 1.6 * note.boundingRect().height()  # it hangs half its height below the corner
        self.gap_text.setPos(x1, y1 - (self._pixel_size()[1] * below_px if below_px else 0.0))


# --------------------------------------------------------------------------- data
