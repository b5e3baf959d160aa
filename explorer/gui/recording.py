"""GIF recording from the window: a :class:`~explorer.gui.gif.GifRecorder` fed with every snapshot, in
order, while the session yields one exactly every N steps (the controller's cadence).

Training starts (or goes on) while the frames are taken; a new session (preset, scene, rebuild) ends a
recording and writes nothing. Signals: ``recorded(path)`` when the file is written, ``changed(bool)``
when a recording starts or ends.
"""
from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QWidget

from explorer.core.snapshot import Snapshot

from . import gif, settings
from .controller import SessionController
from .status import Messages


class Recording(QObject):
    recorded = Signal(str)
    changed = Signal(bool)

    def __init__(self, controller: SessionController, messages: Messages, window: QWidget) -> None:
        super().__init__(window)
        self._controller = controller
        self._messages = messages
        self._window = window
        self.recorder: gif.GifRecorder | None = None
        controller.frame.connect(self._on_frame)
        controller.building.connect(self._on_building)
        controller.failed.connect(self._on_failed)

    @property
    def active(self) -> bool:
        return self.recorder is not None

    def start(self, path: str | os.PathLike, figure: Any, frames: int = gif.GIF_FRAMES, every: int | None = None,
              width: int | None = None, panel: str | None = None, presentation: bool = False) -> bool:
        """Record ``frames`` frames, one every ``every`` training steps (default: the scene's steps spread
        over the frames), ``width`` px wide, of the figure or one panel, laid out at ``figure``'s size.
        ``recorded(path)`` follows when the file is written, or an error box when it fails."""
        if self.recorder is not None:
            self._messages.show_error("Cannot record", "A GIF is being recorded already (File ▸ Stop Recording).")
            return False
        every = every or max(1, self._controller.config.steps // max(1, frames))
        try:
            if panel is not None and panel not in figure.panel_names():
                raise ValueError(f"no panel named {panel!r} (panels: {', '.join(figure.panel_names())})")
            recorder = gif.GifRecorder(path, frames, every, width, panel, presentation=presentation,
                                       size=(figure.width(), figure.height()), parent=self._window)
        except (ValueError, OSError) as e:
            self._messages.show_error("Cannot record", str(e))
            return False
        recorder.progress.connect(self._on_progress)
        recorder.finished.connect(self._on_finished)
        recorder.failed.connect(self._on_recorder_failed)
        self.recorder = recorder
        self._controller.set_cadence(every)  # the session now yields exactly every N steps
        self._messages.show_message(f"● Recording {frames} frames, every {every} steps → {path}", timeout_ms=0)
        self.changed.emit(True)
        if self._controller.state != "running":
            self._controller.start()
        return True

    @Slot()
    def stop(self) -> None:
        """Stop the recording; write nothing."""
        self.cancel("stopped")

    def cancel(self, why: str) -> bool:
        if not self._end():
            return False
        self._messages.show_message(f"GIF recording {why}; nothing was written")
        return True

    def _end(self) -> bool:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return False
        recorder.close()
        recorder.deleteLater()
        self._controller.set_cadence(None)  # back to snapshots by wall clock
        self.changed.emit(False)
        return True

    # ------------------------------------------------------------------ slots
    @Slot(object)
    def _on_frame(self, snapshot: Snapshot) -> None:
        if self.recorder is not None:
            self.recorder.offer(snapshot)

    @Slot(str)
    def _on_building(self, _reason: str) -> None:
        self.cancel("stopped: the session was replaced")

    @Slot(str, str)
    def _on_failed(self, _head: str, _details: str) -> None:
        self.cancel("stopped: training stopped")

    @Slot(int, int)
    def _on_progress(self, taken: int, total: int) -> None:
        if self.recorder is not None:
            self._messages.show_message(
                f"● Recording GIF: frame {taken} of {total} → {self.recorder.path.name}", timeout_ms=0)

    @Slot(str, int)
    def _on_finished(self, path: str, size: int) -> None:
        frames = self.recorder.frames if self.recorder is not None else 0
        self._end()
        settings.remember_folder("export", path)
        self._messages.show_message(f"Saved {path} ({frames} frames, {size / 1024:.0f} KB)")
        self.recorded.emit(path)

    @Slot(str)
    def _on_recorder_failed(self, message: str) -> None:
        self._end()
        self._messages.show_error("GIF recording failed", f"{message}\n\nTraining goes on.")
