"""The window's dialogs: Export Figure (Ctrl+S) and Record GIF (Ctrl+G). Each gathers a choice and hands
it to the window (``MainWindow.export_figure`` / ``MainWindow.record_gif``), which does the work and
reports failures.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox

from . import gif

if TYPE_CHECKING:
    from .main_window import MainWindow


def slug(text: str) -> str:
    """A file-name-safe, lower-case form of ``text``: "Mode-seeking vs mass" → "mode-seeking-vs-mass"."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


class ExportDialog(QDialog):
    """Ctrl+S: the whole figure or one panel, as PNG at 1×/2×/4× width or SVG; or copy to clipboard."""

    FORMATS = (("PNG, 1× width", "png", 1), ("PNG, 2× width", "png", 2), ("PNG, 4× width (talks)", "png", 4),
               ("SVG (vector)", "svg", 1))

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.setWindowTitle("Export figure")
        self._window = window
        form = QFormLayout(self)
        self.target = _target_combo(window)
        form.addRow("What", self.target)
        self.format = QComboBox()
        for label, ext, scale in self.FORMATS:
            self.format.addItem(label, (ext, scale))
        form.addRow("Format", self.format)
        buttons = QDialogButtonBox()
        self.save = buttons.addButton("Save…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.copy = buttons.addButton("Copy to clipboard", QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        form.addRow(buttons)
        self.save.clicked.connect(self._on_save)
        self.copy.clicked.connect(self._on_copy)
        buttons.rejected.connect(self.reject)

    def choice(self) -> tuple[str | None, str, int]:
        ext, scale = self.format.currentData()
        return self.target.currentData(), ext, scale

    def default_name(self) -> str:
        panel, ext, scale = self.choice()
        stem = self._window.file_stem()
        if panel:
            stem += f"-{slug(panel)}"
        if ext == "png" and scale > 1:
            stem += f"@{scale}x"
        return f"{stem}.{ext}"

    @Slot()
    def _on_save(self) -> None:
        panel, ext, scale = self.choice()
        filters = "PNG image (*.png)" if ext == "png" else "SVG image (*.svg)"
        path = self._window.ask_save_path("Export figure", self.default_name(), filters, "export")
        if not path:
            return
        if not path.lower().endswith(f".{ext}"):
            path += f".{ext}"
        if self._window.export_figure(path, scale=scale, panel=panel):
            self.accept()

    @Slot()
    def _on_copy(self) -> None:
        self._window.copy_figure()
        self.accept()


def _target_combo(window: "MainWindow") -> QComboBox:
    """"Whole figure" or one of the figure's panels."""
    box = QComboBox()
    box.addItem("Whole figure", None)
    for name in window.figure.panel_names():
        box.addItem(f"Panel: {name}", name)
    return box


class GifDialog(QDialog):
    """Record GIF…: what to record, how many frames, how many training steps apart, how wide."""

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.setWindowTitle("Record GIF")
        self._window = window
        form = QFormLayout(self)
        self.target = _target_combo(window)
        form.addRow("What", self.target)
        self.frames = QSpinBox()
        self.frames.setRange(1, 1000)
        self.frames.setValue(gif.GIF_FRAMES)
        self.frames.setToolTip("Number of frames (10 per second when played)")
        form.addRow("Frames", self.frames)
        self.every = QSpinBox()
        self.every.setRange(1, 1_000_000)
        self.every.setValue(max(1, window.config.steps // self.frames.value()))
        self.every.setToolTip("Training steps between two frames")
        form.addRow("Every (steps)", self.every)
        self.width_px = QSpinBox()
        self.width_px.setRange(64, 4096)
        self.width_px.setSingleStep(80)
        self.width_px.setValue(gif.GIF_WIDTH)
        self.width_px.setSuffix(" px")
        self.width_px.setToolTip("Frame width; the height follows the figure's shape")
        form.addRow("Width", self.width_px)
        note = QLabel("Training starts (or goes on) while the frames are taken; the figure is recorded "
                      "exactly every N steps.")
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox()
        self.record = buttons.addButton("Record…", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        form.addRow(buttons)
        self.record.clicked.connect(self._on_record)
        buttons.rejected.connect(self.reject)

    @Slot()
    def _on_record(self) -> None:
        panel = self.target.currentData()
        name = self._window.file_stem() + (f"-{slug(panel)}" if panel else "") + ".gif"
        path = self._window.ask_save_path("Record GIF", name, "GIF animation (*.gif)", "export")
        if not path:
            return
        if not path.lower().endswith(".gif"):
            path += ".gif"
        if self._window.record_gif(path, frames=self.frames.value(), every=self.every.value(),
                                   width=self.width_px.value(), panel=panel):
            self.accept()
