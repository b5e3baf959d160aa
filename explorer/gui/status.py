"""The status bar (a message, the current warnings, step · rate · device) and the error box.

``Messages`` is what every part of the window uses to tell the user something: ``show_message`` for a
status-bar line, ``show_error`` for a non-modal error box (training goes on behind it) whose first line
also goes to the status bar. ``error_shown(text)`` is emitted for scripts and tests.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QLabel, QMessageBox, QStatusBar, QWidget

from explorer.core.snapshot import Snapshot

from . import theme

log = logging.getLogger(__name__)

MESSAGE_MS = 8000


def snapshot_warnings(snapshot: Snapshot) -> list[str]:
    """Every warning of a snapshot, once each, runs named."""
    warnings = list(snapshot.warnings)
    for run in snapshot.runs:
        if run.diverged_step is not None:
            warnings.append(f"{run.name} diverged at step {run.diverged_step}")
        warnings += [f"{run.name}: {w}" for w in run.warnings]
    return list(dict.fromkeys(warnings))


class Messages(QObject):
    """The status bar's widgets and the error box of one window."""

    error_shown = Signal(str)

    def __init__(self, bar: QStatusBar, parent_widget: QWidget) -> None:
        super().__init__(parent_widget)
        self._parent_widget = parent_widget
        self.error_box: QMessageBox | None = None
        self._message = QLabel()
        self._warning = QLabel()
        self._warning.setStyleSheet(f"color: {theme.WARNING_COLOR}; font-weight: bold;")
        self._step = QLabel()
        self._rate = QLabel()
        self._device = QLabel()
        bar.addWidget(self._message, 1)
        bar.addWidget(self._warning, 2)
        for label in (self._step, self._rate, self._device):
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance("step 000000"))
            bar.addPermanentWidget(label)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._message.clear)

    # ------------------------------------------------------------------ out
    def show_snapshot(self, snapshot: Snapshot) -> None:
        self._step.setText(f"step {snapshot.step}")
        self._rate.setText("paused" if snapshot.paused else f"{snapshot.steps_per_s:.0f} steps/s")
        self._device.setText(f"device: {snapshot.device}")
        warnings = snapshot_warnings(snapshot)
        text = "⚠ " + "; ".join(warnings) if warnings else ""
        self._warning.setText(self._warning.fontMetrics().elidedText(
            text, Qt.TextElideMode.ElideRight, max(200, self._warning.width())))
        self._warning.setToolTip("\n".join(warnings))

    def show_device(self, device: str) -> None:
        self._device.setText(f"device: {device}")

    def show_message(self, text: str, timeout_ms: int = MESSAGE_MS) -> None:
        """A status-bar message; it clears after ``timeout_ms`` (0: stays until the next one)."""
        self._message.setText(text)
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def show_error(self, title: str, text: str, details: str | None = None) -> None:
        """A non-modal error box (training goes on behind it); ``details``: e.g. a traceback."""
        log.warning("%s: %s", title, text)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok,
                          self._parent_widget)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if details:
            box.setDetailedText(details)
        box.finished.connect(self._on_error_box_closed)
        box.setWindowModality(Qt.WindowModality.NonModal)  # Reset, Escape, the plots stay usable
        self.error_box = box
        box.show()
        self.show_message(f"{title}: {text.splitlines()[0]}")
        self.error_shown.emit(text)

    @Slot()
    def _on_error_box_closed(self) -> None:
        self.error_box = None

    def close(self) -> None:
        if self.error_box is not None:
            self.error_box.close()

    # ------------------------------------------------------------------ read back (scripts, tests)
    def message_text(self) -> str:
        return self._message.text()

    def warning_text(self) -> str:
        """Every current warning (the bar elides them; its tooltip has them all)."""
        return self._warning.toolTip()

    def status_text(self) -> str:
        """Step, rate and device as the status bar shows them."""
        return " · ".join(label.text() for label in (self._step, self._rate, self._device))
