"""Headless pictures: train a scene for a number of steps and write the figure the window would show.

``render_shot`` builds the same :class:`~explorer.gui.figure.Figure` the window embeds, on an offscreen
QApplication when none exists, so "the shot renders exactly what the window shows" holds by construction.
GIFs go through :func:`explorer.gui.gif.record_gif` with the same figure.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from explorer.core.config import Config
from explorer.core.errors import ConfigError
from explorer.core.snapshot import Snapshot

from .export import ExportError, check_suffix
from .layout import ASPECTS, EXPORT_STYLES

DEFAULT_SIZE = (1600, 1000)  # the figure's size on its offscreen "screen"; PNG width defaults to it
PROGRESS_AFTER_S = 3.0  # a shot says how far it is once it has run this long...
PROGRESS_EVERY_S = 5.0  # ...then every this many seconds (without a terminal; a tty gets a tqdm bar)


def figure_size(style: str = "screen", aspect: str = "16:10") -> tuple[int, int]:
    """The figure's (width, height) on its offscreen screen for an export ``style`` and ``aspect``."""
    if style not in EXPORT_STYLES:
        raise ConfigError(f"--style: unknown style {style!r} (choose from {', '.join(EXPORT_STYLES)})")
    if aspect not in ASPECTS:
        raise ConfigError(f"--aspect: unknown aspect {aspect!r} (choose from {', '.join(ASPECTS)})")
    width = EXPORT_STYLES[style][1]
    a, b = ASPECTS[aspect]
    return width, round(width * b / a)


class Progress:
    """Training progress of a long shot on stderr: nothing for a shot that ends within
    ``PROGRESS_AFTER_S``; then a tqdm bar on a terminal, else one line every ``PROGRESS_EVERY_S``."""

    def __init__(self, total: int, what: str = "steps", stream=None, clock: Callable[[], float] = time.monotonic):
        self.total, self.what = int(total), what
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._start = clock()
        self._last_line: float | None = None
        self._bar = None

    def __call__(self, done: int) -> None:
        now = self._clock()
        if now - self._start < PROGRESS_AFTER_S:
            return
        if self._bar is None and hasattr(self.stream, "isatty") and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=" " + self.what, file=self.stream, leave=False)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif self._last_line is None or now - self._last_line >= PROGRESS_EVERY_S:
            self._last_line = now
            print(f"shot: {done}/{self.total} {self.what} ({now - self._start:.0f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _application():
    """The running QApplication, or a new offscreen one (a shot needs no display)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        name = sys.argv[0] if sys.argv and sys.argv[0] else "vae-explorer"
        app = QApplication([name, "-platform", "offscreen"])
    return app


def render_shot(config: Config, steps: int, out: str | os.PathLike, width: int | None = None, *,
                panel: str | None = None, frames: int = 40, every: int | None = None,
                style: str = "screen", aspect: str = "16:10") -> int:
    """Train ``config`` for ``steps`` steps and write the figure to ``out`` (.png, .svg or .gif).

    ``style`` (:data:`EXPORT_STYLES`): ``screen`` as the window shows it, ``talk`` with the presentation
    fonts and line widths, ``paper`` a compact figure; ``aspect`` (:data:`ASPECTS`) its shape. PNG:
    ``width`` pixels wide (default: the style's), pens scaled to match; SVG: vector. ``panel``: one of
    ``Figure.panel_names()`` instead of the whole figure, with the run legend where the panel needs it.
    GIF: ``frames`` frames, one every ``every`` steps (default: spread over ``steps``), ``width`` default
    :data:`~explorer.gui.gif.GIF_WIDTH` (the whole figure) with the axes fixed for the whole recording.
    Training that runs longer than a few seconds reports its progress on stderr.

    Raises ``ConfigError`` (a ValueError naming the bad argument) before any training, and
    :class:`~explorer.gui.export.ExportError` (an OSError, one line) when ``out`` cannot be written.
    Returns 0.
    """
    suffix = check_suffix(out)
    size = figure_size(style, aspect)
    if steps < 0:
        raise ConfigError(f"--steps: must be >= 0, got {steps}")
    if width is not None and width < 16:
        raise ConfigError(f"--width: must be at least 16 pixels, got {width}")
    folder = Path(out).parent
    if str(folder) and not folder.is_dir():  # fail before spending the training time
        raise ExportError(f"cannot write {out}: folder {folder} does not exist")

    app = _application()
    from explorer.core.session import Session

    from .figure import Figure

    session = Session(config)
    figure = Figure(presentation=EXPORT_STYLES[style][0])
    progress = Progress(steps if suffix != ".gif" else frames, "steps" if suffix != ".gif" else "frames")
    try:
        figure.set_fold(False)  # a picture shows every panel
        figure.resize(*size)
        if panel is not None:  # a bad panel name fails before the training, naming the panels
            figure.update_snapshot(session.snapshot())
            if not figure.has_panel(panel):
                raise ConfigError(f"--panel: unknown panel {panel!r} (panels: posterior, "
                                  f"{', '.join(figure.panel_names())})")
        if suffix == ".gif":
            from .gif import GIF_WIDTH, MIN_LAYOUT_WIDTH, record_gif

            laid_out = max(width or GIF_WIDTH, MIN_LAYOUT_WIDTH)
            if laid_out < size[0]:  # laid out at the frame's width: text drawn 1:1, legible on a slide
                figure.resize(laid_out, round(laid_out * size[1] / size[0]))

            if every is None:
                every = max(1, round(steps / max(frames - 1, 1)))
            record_gif(session, figure, out, frames=frames, every=every, width=width, panel=panel,
                       on_frame=lambda i, _snapshot: progress(i + 1))
        else:
            # background work (held-out evaluations, fits) is done as it is queued, as if paused
            session.step(steps, progress=lambda done, _n: (_drain(session), progress(done)))
            session.settle()  # and the last step's, logged on its row (what a headless run reports)
            _show(app, figure, session.snapshot())
            if suffix == ".png":
                if width is None:  # the style's width; one panel alone at 60 % of it
                    width = EXPORT_STYLES[style][2] if panel is None else round(0.6 * EXPORT_STYLES[style][2])
                figure.export_png(out, width=width, panel=panel)
            else:
                figure.export_svg(out, panel=panel)
    finally:
        progress.close()
        # pitfalls.md: leave no Python-owned graphics item orphaned at exit
        figure.close()
        figure.deleteLater()
        app.processEvents()
    return 0


def _drain(session: Any) -> None:
    """Finish the session's waiting background jobs (a failing one is dropped and named in the warnings)."""
    while session.background_pending():
        try:
            session.background_work(1.0)
        except Exception as e:  # noqa: BLE001 — shown in the snapshot's warnings, as the Player does
            session.background_failed(e)


STYLES = ("normal", "talk")


def render_snapshot(snapshot: Snapshot, out: str | os.PathLike | None = None, *, width: int | None = None,
                    style: str = "normal", panel: str | None = None, aspect: str | None = None) -> bytes | None:
    """Draw ``snapshot`` as the window's figure, offscreen: to ``out`` (.png or .svg; returns None) or,
    with no ``out``, to PNG bytes (returned). ``style``: ``"normal"`` or ``"talk"`` (presentation mode) on
    a 1600×1000 figure, or an export style of :data:`EXPORT_STYLES` on its own figure size with
    ``aspect`` (default 16:10). What ``Session.render``, a session's inline picture in Jupyter and the
    window's export dialog (for a style or an aspect other than the screen's) call."""
    if style not in STYLES and style not in EXPORT_STYLES:
        raise ConfigError(f"style: unknown style {style!r} (choose from {', '.join((*STYLES, *EXPORT_STYLES))})")
    if width is not None and not 16 <= int(width) <= 16384:
        raise ConfigError(f"width: must be in 16..16384 pixels, got {width}")
    size = DEFAULT_SIZE if style in STYLES and aspect is None else figure_size(
        "screen" if style == "normal" else style, aspect or "16:10")
    suffix = ".png" if out is None else check_suffix(out, (".png", ".svg"))
    app = _application()
    from .figure import Figure

    figure = Figure(presentation=style == "talk")
    try:
        figure.set_fold(False)  # a picture shows every panel
        figure.resize(*size)
        _show(app, figure, snapshot)
        if panel is not None and not figure.has_panel(panel):
            raise ConfigError(f"panel: unknown panel {panel!r} (panels: {', '.join(figure.panel_names())})")
        if out is None:
            return png_bytes(figure.grab_image(width, panel))
        if suffix == ".png":
            figure.export_png(out, width=width, panel=panel)
        else:
            figure.export_svg(out, panel=panel)
        return None
    finally:
        figure.close()
        figure.deleteLater()
        app.processEvents()


def png_bytes(image) -> bytes:
    """A QImage encoded as PNG."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise ExportError("Qt could not encode the figure as PNG")
    buffer.close()
    return bytes(data.data())


def _show(app, figure, snapshot) -> None:
    """Feed a snapshot and lay it out: exports need a shown widget after processEvents (pitfalls.md).
    The second update lets text whose layout depends on the final sizes (wrapped titles) settle."""
    figure.update_snapshot(snapshot)
    if not figure.isVisible():
        figure.show()
    app.processEvents()
    figure.update_snapshot(snapshot)
    app.processEvents()
