"""Headless pictures: train a scene for a number of steps and write the figure the window would show.

``render_shot`` builds the same :class:`~explorer.gui.figure.Figure` the window embeds, on an offscreen
QApplication when none exists, so "the shot renders exactly what the window shows" holds by construction.
GIFs go through :func:`explorer.gui.gif.record_gif` with the same figure.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from explorer.core.config import Config
from explorer.core.errors import ConfigError
from explorer.core.snapshot import Snapshot

from .export import ExportError, check_suffix

DEFAULT_SIZE = (1600, 1000)  # the figure's size on its offscreen "screen"; PNG width defaults to it


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
                presentation: bool = False) -> int:
    """Train ``config`` for ``steps`` steps and write the figure to ``out`` (.png, .svg or .gif).

    PNG: ``width`` pixels wide (default 1600), pens scaled to match; SVG: vector, 1600×1000. ``panel``:
    one of ``Figure.panel_names()`` instead of the whole figure. GIF: ``frames`` frames, one every
    ``every`` steps (default: spread over ``steps``), ``width`` default 960 px. ``presentation``: the talk
    style (large fonts, thick lines).

    Raises ``ConfigError`` (a ValueError naming the bad argument) before any training, and
    :class:`~explorer.gui.export.ExportError` (an OSError, one line) when ``out`` cannot be written.
    Returns 0.
    """
    suffix = check_suffix(out)
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
    figure = Figure(presentation=presentation)
    try:
        figure.resize(*DEFAULT_SIZE)
        if panel is not None:  # a bad panel name fails before the training, naming the panels
            figure.update_snapshot(session.snapshot())
            if panel not in figure.panel_names():
                raise ConfigError(f"--panel: unknown panel {panel!r} (panels: {', '.join(figure.panel_names())})")
        if suffix == ".gif":
            from .gif import record_gif

            if every is None:
                every = max(1, round(steps / max(frames - 1, 1)))
            record_gif(session, figure, out, frames=frames, every=every, width=width, panel=panel)
        else:
            if steps:  # background work (held-out evaluations, fits) is done as it is queued, as if paused
                session.step(steps, progress=lambda done, n: _drain(session))
            session.settle()  # and the last step's, logged on its row (what a headless run reports)
            _show(app, figure, session.snapshot())
            if suffix == ".png":
                figure.export_png(out, width=width, panel=panel)
            else:
                figure.export_svg(out, panel=panel)
    finally:
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
                    style: str = "normal", panel: str | None = None) -> bytes | None:
    """Draw ``snapshot`` as the window's figure, offscreen: to ``out`` (.png or .svg; returns None) or,
    with no ``out``, to PNG bytes (returned). ``style``: ``"normal"`` or ``"talk"`` (presentation mode).
    What ``Session.render`` and a session's inline picture in Jupyter call."""
    if style not in STYLES:
        raise ConfigError(f"style: unknown style {style!r} (choose from {', '.join(STYLES)})")
    if width is not None and not 16 <= int(width) <= 16384:
        raise ConfigError(f"width: must be in 16..16384 pixels, got {width}")
    suffix = ".png" if out is None else check_suffix(out, (".png", ".svg"))
    app = _application()
    from .figure import Figure

    figure = Figure(presentation=style == "talk")
    try:
        figure.resize(*DEFAULT_SIZE)
        _show(app, figure, snapshot)
        if panel is not None and panel not in figure.panel_names():
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
