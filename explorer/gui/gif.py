"""Animated GIFs of training for slides: F frames of the figure (or one panel), one every N steps.

Two ways to record, one writer:

- :func:`record_gif` steps a Session itself and renders each frame with a Figure (headless, e.g.
  ``python main.py shot ... --out FILE.gif --frames F --every N``);
- :class:`GifRecorder` collects frames from the snapshots a running window receives (the window's
  worker yields exactly every N steps while it records), rendering them on its own off-screen Figure so
  the frame size is fixed up front whatever the window does.

Frames are quantised to one shared 255-colour palette without dithering: flat plot backgrounds stay
flat and colours do not flicker from frame to frame; a pixel that did not change since the previous
frame is written as the transparent index, so each frame costs little more than what moved. The file is written to a temporary file beside the
target and renamed, so a failed recording never leaves a partial GIF.

The axes hold still: the frames are drawn once every snapshot is in, each panel fixed to the union of the
ranges it takes by itself over all of them (:func:`render_frames`), so nothing rescales from frame to frame.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QWidget

from explorer.core.snapshot import Snapshot

from . import export

GIF_FRAMES = 40
GIF_WIDTH = 1280  # px, the whole figure: labels legible on a 1080p slide (at 960 they were ~7 px)
MIN_LAYOUT_WIDTH = 1024  # a narrower GIF is drawn from a figure this wide, scaled down
FRAME_MS = 100  # 10 frames per second
HOLD_LAST_MS = 1500  # the last frame stays a little, so the end state can be read before the loop
PALETTE_SAMPLES = 3  # frames (first, middle, last) the shared palette is built from


def _check_request(path: str | os.PathLike, frames: int, every: int, width: int | None) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".gif":
        raise ValueError(f"{target}: a GIF recording must end in .gif")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames: must be an integer >= 1, got {frames!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every: must be an integer >= 1 (training steps between frames), got {every!r}")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 16):
        raise ValueError(f"width: must be at least 16 pixels, got {width!r}")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():  # fail before spending the training time
        raise export.ExportError(f"cannot write {target}: folder {folder} does not exist")
    return target


def _shared_palette(frames: Sequence[np.ndarray], colors: int) -> Any:
    """A palette image quantised from a few frames stacked together (first, middle, last)."""
    from PIL import Image

    picks = sorted({round(i * (len(frames) - 1) / max(PALETTE_SAMPLES - 1, 1)) for i in range(PALETTE_SAMPLES)})
    sample = np.concatenate([frames[i] for i in picks], axis=0)
    return Image.fromarray(sample).quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.NONE)


def quantise(frames: Sequence[np.ndarray], colors: int = 255) -> tuple[list[np.ndarray], np.ndarray]:
    """[H, W] palette indices of each frame under one shared palette, and that [colors, 3] palette."""
    from PIL import Image

    palette = _shared_palette(frames, colors)
    indices = [np.asarray(Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE))
               for f in frames]
    rgb = np.asarray(palette.getpalette()[: 3 * colors], dtype=np.uint8).reshape(-1, 3)
    return indices, rgb


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, frame_ms: int = FRAME_MS,
              hold_last_ms: int = HOLD_LAST_MS, colors: int = 255) -> Path:
    """Write [H, W, 3] uint8 frames (all one size) as a looping GIF with one shared palette.

    ``colors`` ≤ 255 palette entries; one more index is kept transparent: after the first frame every
    pixel equal to the previous frame's is written as that index ("keep what is there", disposal 1),
    and the long runs it makes compress well (about a third smaller for a training figure).
    Raises :class:`~explorer.gui.export.ExportError` (an OSError, one line) when it cannot be written.
    """
    from PIL import Image

    if not frames:
        raise ValueError("a GIF needs at least one frame")
    if not 2 <= colors <= 255:
        raise ValueError(f"colors: must be in 2..255 (one index is kept transparent), got {colors!r}")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError(f"every frame must have the size of the first ({shape[1]}×{shape[0]} px)")
    indices, rgb = quantise(frames, colors)
    unchanged = len(rgb)  # the transparent index, just past the palette
    palette = rgb.ravel().tolist() + [0, 0, 0] * (256 - len(rgb))
    images = []
    for i, frame in enumerate(indices):
        if i:
            frame = np.where(frame == indices[i - 1], np.uint8(unchanged), frame)
        image = Image.fromarray(frame.astype(np.uint8), "P")
        image.putpalette(palette)
        images.append(image)
    durations = [frame_ms] * (len(images) - 1) + [max(frame_ms, hold_last_ms)]

    def write(tmp: str) -> None:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                       loop=0, transparency=unchanged, disposal=1, optimize=False)

    return export.atomic_write(path, write)


def process_events() -> None:
    """Let Qt handle everything pending (headless: nothing else is in flight)."""
    app = QApplication.instance()
    if app is not None:
        app.processEvents()


def lay_out() -> None:
    """Apply pending layout requests only. Inside a window's slot a full ``processEvents`` would run
    queued snapshots and timers re-entrantly (a later frame, or the end of the recording, inside this
    one); layout requests are all a figure needs before it is rendered."""
    QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)


def render_frame(figure: Any, snapshot: Snapshot, width: int, panel: str | None = None,
                 settle: bool = False, events: Callable[[], None] = process_events) -> np.ndarray:
    """Show ``snapshot`` on ``figure`` and return it (or one panel) as an [H, W, 3] uint8 frame.

    ``settle``: feed the snapshot twice around a layout pass, for text whose size depends on the
    layout (the first frame of a new figure). ``events``: how pending events are handled between
    feeding and rendering (:func:`process_events` or :func:`lay_out`).
    """
    figure.update_snapshot(snapshot)
    if settle:
        events()
        figure.update_snapshot(snapshot)
    events()
    return export.qimage_to_rgb(figure.grab_image(width, panel))


def render_frames(figure: Any, snapshots: Sequence[Snapshot], width: int, panel: str | None = None,
                  events: Callable[[], None] = process_events) -> list[np.ndarray]:
    """Every snapshot as a frame (see :func:`render_frame`) with each panel's range fixed for all of
    them: the union of the ranges the panel takes by itself over the snapshots. The panels follow their
    own ranges again afterwards."""
    figure.ensure_laid_out()  # the ranges are read off the laid-out panels
    ranges: dict[str, tuple[float, float, float, float]] = {}
    for snapshot in snapshots:
        figure.update_snapshot(snapshot)
        events()
        figure.update_snapshot(snapshot)
        for p in _ranged(figure):
            x0, x1, y0, y1 = view_range(p)
            r = ranges.get(p.name, (x0, x1, y0, y1))
            ranges[p.name] = (min(r[0], x0), max(r[1], x1), min(r[2], y0), max(r[3], y1))
    for p in _ranged(figure):
        if p.name in ranges:
            hold = getattr(p, "hold_range", None)
            if hold is not None:
                hold(ranges[p.name])
            else:  # a panel on pyqtgraph's auto-range (setRange turns it off)
                r = ranges[p.name]
                p.plot.getViewBox().setRange(xRange=r[:2], yRange=r[2:], padding=0.0)
    try:
        return [render_frame(figure, snapshot, width, panel, settle=(i == 0), events=events)
                for i, snapshot in enumerate(snapshots)]
    finally:
        for p in _ranged(figure):
            release = getattr(p, "release_range", None)
            if release is not None:
                release()
            else:
                p.plot.getViewBox().enableAutoRange()


def _ranged(figure: Any) -> list[Any]:
    """The panels with one view range (the gradient histograms have their own freeze: View ▸ Freeze)."""
    return [p for p in figure.panels() if hasattr(p.plot, "getViewBox")]


def view_range(panel: Any) -> tuple[float, float, float, float]:
    """What a panel shows now: (x_min, x_max, y_min, y_max) in its view's units."""
    (x0, x1), (y0, y1) = panel.plot.getViewBox().viewRange()
    return float(x0), float(x1), float(y0), float(y1)


def record_gif(session: Any, figure: Any, path: str | os.PathLike, frames: int, every: int,
               width: int | None = None, panel: str | None = None,
               on_frame: Callable[[int, Snapshot], Any] | None = None) -> Path:
    """Train ``session`` and record ``frames`` frames of ``figure``, one every ``every`` steps.

    Frame i shows the session at step ``start + i·every`` (frame 0 is the state it is in now), so the
    session ends ``(frames − 1)·every`` steps further on. ``width``: frame width in pixels (default
    ``GIF_WIDTH``); ``panel``: one of ``figure.panel_names()`` instead of the whole figure;
    ``on_frame(i, snapshot)`` is called after each frame's snapshot is taken (progress); the frames are
    drawn at the end with fixed axes (:func:`render_frames`). Needs a QApplication (an
    off-screen one is enough). Call it on the thread that owns ``session`` (headless: the only one).

    Returns the path written. Raises ``ValueError`` for a bad request (before any training) and
    :class:`~explorer.gui.export.ExportError` when the file cannot be written.
    """
    target = _check_request(path, frames, every, width)
    if panel is not None:
        figure.update_snapshot(session.snapshot())
        figure.panel(panel)  # KeyError naming the panels, before any training
    width = width or GIF_WIDTH
    snapshots: list[Snapshot] = []
    for i in range(frames):
        if i:
            session.step(every)
        snapshots.append(session.snapshot())
        if on_frame is not None:
            on_frame(i, snapshots[-1])
    return write_gif(_same_size(render_frames(figure, snapshots, width, panel)), target)


def _same_size(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Frames resized to the first one's size (a figure re-laid-out mid-recording can change height)."""
    from PIL import Image

    height, width = frames[0].shape[:2]
    return [f if f.shape[:2] == (height, width)
            else np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.LANCZOS))
            for f in frames]


class GifRecorder(QObject):
    """Records a GIF from the snapshots a window receives, on an off-screen Figure of its own.

    ``offer(snapshot)`` with every snapshot in order (``SessionController.frame``); a frame is taken from
    the first one and then from each snapshot at least ``every`` steps after the last frame (a
    snapshot from before the last frame, after a Reset, is taken too and restarts the count). After
    ``frames`` frames the GIF is written and ``finished(path, bytes)`` is emitted, or ``failed(message)``.

    ``size``: the (width, height) the figure is laid out at, e.g. the window's figure, so the frame
    looks like the screen; ``width``: the frame width in pixels.
    """

    progress = Signal(int, int)  # frames taken, frames asked for
    finished = Signal(str, int)  # path, bytes written
    failed = Signal(str)

    def __init__(self, path: str | os.PathLike, frames: int, every: int, width: int | None = None,
                 panel: str | None = None, presentation: bool = False,
                 size: tuple[int, int] = (1600, 1000), parent: QObject | None = None) -> None:
        super().__init__(parent)
        from .figure import Figure

        self.path = _check_request(path, frames, every, width)
        self.frames, self.every, self.width, self.panel = frames, every, width or GIF_WIDTH, panel
        self._snapshots: list[Snapshot] = []
        self._last_step: int | None = None
        self.done = False
        self.figure = Figure(presentation=presentation)
        self.figure.set_fold(False)  # a recording shows every panel: a GIF has no tab to click
        if isinstance(parent, QWidget):
            # owned by the window on the C++ side, so it never outlives Qt as an orphan of Python's
            # (pitfalls.md: that can abort the interpreter at exit); a window of its own, not a child
            self.figure.setParent(parent, Qt.WindowType.Window)
        # laid out like a shown widget (pitfalls.md: exports need one), but never on a screen
        self.figure.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        w, h = max(200, int(size[0])), max(200, int(size[1]))
        laid_out = max(self.width, MIN_LAYOUT_WIDTH)
        if laid_out < w:  # laid out at the frame's width: text drawn 1:1, legible on a slide
            w, h = laid_out, max(200, round(laid_out * h / w))
        self.figure.resize(w, h)
        self.figure.show()

    def offer(self, snapshot: Snapshot) -> bool:
        """Take a frame from ``snapshot`` if it is due. Returns True when one was taken."""
        if self.done:
            return False
        last = self._last_step
        if last is not None and last <= snapshot.step < last + self.every:
            return False
        try:
            if self.panel is not None and not self._snapshots:
                self.figure.update_snapshot(snapshot)
                self.figure.panel(self.panel)  # KeyError naming the panels there are
        except Exception as e:  # noqa: BLE001 (any rendering failure ends the recording with a message)
            self._fail(f"{e.__class__.__name__}: {e}")
            return False
        self._snapshots.append(snapshot)
        self._last_step = snapshot.step
        self.progress.emit(len(self._snapshots), self.frames)
        if len(self._snapshots) >= self.frames:
            self._write()
        return True

    def _write(self) -> None:
        """Draw the frames with fixed axes (:func:`render_frames`) and write the GIF."""
        self.done = True
        snapshots, self._snapshots = self._snapshots, []
        try:
            images = render_frames(self.figure, snapshots, self.width, self.panel, events=lay_out)
            path = write_gif(_same_size(images), self.path)
        except (OSError, ValueError) as e:
            self.failed.emit(str(e))
            return
        except Exception as e:  # noqa: BLE001 (any rendering failure ends the recording with a message)
            self.failed.emit(f"{e.__class__.__name__}: {e}")
            return
        self.finished.emit(str(path), path.stat().st_size)

    def _fail(self, message: str) -> None:
        self.done = True
        self._snapshots = []
        self.failed.emit(message)

    def cancel(self) -> None:
        """Stop recording and write nothing."""
        self.done = True
        self._snapshots = []

    def close(self) -> None:
        """Free the off-screen figure (call before dropping the recorder)."""
        self.cancel()
        self.figure.close()
        self.figure.deleteLater()
