"""Writing figures to files: hi-res PNG and SVG (GIFs: :mod:`explorer.gui.gif`, on the same helpers),
always through a temporary file in the target folder and an atomic rename, so a failed or interrupted
export never leaves a partial file.

The renderer is pyqtgraph's: ``ImageExporter`` (its ``width`` parameter gives the hi-res PNG) and
``SVGExporter`` (works with pyqtgraph 0.14 on PySide6 < 6.11, see pitfalls.md). Export only a widget
that has been shown and laid out (``show()`` + ``processEvents()``); :class:`~explorer.gui.figure.Figure`
takes care of that.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401  (registers the exporters)
from PySide6.QtGui import QImage

from explorer.core import files
from explorer.core.files import WriteError

SUFFIXES = (".png", ".svg", ".gif")


class ExportError(WriteError):
    """An export that could not be written; ``str()`` is one line naming the path and the reason (an
    OSError, like every :class:`~explorer.core.files.WriteError`)."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``: the
    core's one writer (:func:`explorer.core.files.atomic_write`), its failures raised as ExportError."""
    try:
        return files.atomic_write(path, write)
    except ExportError:
        raise
    except WriteError as e:
        raise ExportError(str(e)) from None


def exporter_source_width(target: object) -> float:
    """The width in pixels that an export of ``target`` (a scene or a graphics item) has at scale 1."""
    return float(pg.exporters.ImageExporter(target).getTargetRect().width())


def render_image(target: object, width: int | None = None) -> QImage:
    """Render a scene or a graphics item to a QImage, ``width`` pixels wide (default: its size on screen)."""
    exporter = pg.exporters.ImageExporter(target)
    if width is not None:
        if int(width) < 1:
            raise ValueError(f"width must be a positive number of pixels, got {width!r}")
        exporter.parameters()["width"] = int(width)
    image = exporter.export(toBytes=True)
    if image is None or image.isNull():
        raise ExportError("rendering produced no image (is the figure shown and laid out?)")
    return image


def stack_images(top: QImage, bottom: QImage, background: str) -> QImage:
    """``top`` centred above ``bottom`` on one image as wide as the wider of them."""
    from PySide6.QtGui import QColor, QPainter

    width = max(top.width(), bottom.width())
    out = QImage(width, top.height() + bottom.height(), QImage.Format.Format_ARGB32)
    out.fill(QColor(background))
    painter = QPainter(out)
    try:
        painter.drawImage((width - top.width()) // 2, 0, top)
        painter.drawImage((width - bottom.width()) // 2, top.height(), bottom)
    finally:
        painter.end()
    return out


def render_svg(target: object) -> bytes:
    """SVG of a scene or a graphics item."""
    return pg.exporters.SVGExporter(target).export(toBytes=True)


def write_png(image: QImage, path: str | os.PathLike) -> Path:
    def write(tmp: str) -> None:
        if not image.save(tmp, "PNG"):
            raise ExportError(f"cannot write {path}: Qt could not encode or save the PNG")

    return atomic_write(path, write)


def write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "xb") as fh:
            fh.write(data)

    return atomic_write(path, write)


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """[H, W, 3] uint8 copy of a QImage (``ndarray_from_qimage`` returns a view: copy before it is freed)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    return np.array(pg.functions.ndarray_from_qimage(rgb)[..., :3], copy=True)


def check_suffix(path: str | os.PathLike, allowed: Sequence[str] = SUFFIXES) -> str:
    """The lower-case suffix of ``path``, or ExportError naming the allowed ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise ExportError(f"cannot write {path}: unknown file type {suffix or '(none)'!r} "
                          f"(use {', '.join(allowed)})")
    return suffix
