"""The window's dialogs: Export Figure (Ctrl+S) and Record GIF (Ctrl+G). Each gathers a choice and
emits it (``chosen``); whoever opened the dialog does the work and reports failures. A dialog never
calls back into the window.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QWidget

from . import gif
from .layout import ASPECTS


def slug(text: str) -> str:
    """A file-name-safe, lower-case form of ``text``: "Mode-seeking vs mass" → "mode-seeking-vs-mass"."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


@dataclass(frozen=True)
class ExportChoice:
    panel: str | None  # None: the whole figure
    ext: str  # "png" | "svg"
    scale: int  # PNG width as a multiple of the on-screen width (of the style's width, with a style)
    copy: bool = False  # to the clipboard instead of a file
    style: str | None = None  # None: as on screen; else one of layout.EXPORT_STYLES
    aspect: str | None = None  # None: the window's shape (the style's 16:10 with a style); else of ASPECTS

    def file_name(self, stem: str) -> str:
        if self.panel:
            stem += f"-{slug(self.panel)}"
        if self.style:
            stem += f"-{self.style}"
        if self.aspect:
            stem += f"-{self.aspect.replace(':', 'x')}"
        if self.ext == "png" and self.scale > 1:
            stem += f"@{self.scale}x"
        return f"{stem}.{self.ext}"


@dataclass(frozen=True)
class GifChoice:
    panel: str | None
    frames: int
    every: int
    width: int


def _target_combo(panels: Sequence[str]) -> QComboBox:
    """"Whole figure" or one of the figure's panels."""
    box = QComboBox()
    box.addItem("Whole figure", None)
    for name in panels:
        box.addItem(f"Panel: {name}", name)
    return box


class ExportDialog(QDialog):
    """The whole figure or one panel (with the run legend where it has a line per run), as PNG at 1×/2×/4×
    width or SVG, as on screen or in an export style (screen, talk, paper) and aspect; or a copy to the
    clipboard."""

    FORMATS = (("PNG, 1× width", "png", 1), ("PNG, 2× width", "png", 2), ("PNG, 4× width (talks)", "png", 4),
               ("SVG (vector)", "svg", 1))
    STYLES = (("As on screen", None), ("Screen (1600 px)", "screen"),
              ("Talk: presentation fonts and lines (1920 px)", "talk"), ("Paper: compact, white (2400 px)", "paper"))
    chosen = Signal(object)  # ExportChoice

    def __init__(self, panels: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export figure")
        form = QFormLayout(self)
        self.target = _target_combo(panels)
        form.addRow("What", self.target)
        self.format = QComboBox()
        for label, ext, scale in self.FORMATS:
            self.format.addItem(label, (ext, scale))
        form.addRow("Format", self.format)
        self.style = QComboBox()
        for label, name in self.STYLES:
            self.style.addItem(label, name)
        self.style.setToolTip("An export style draws the current frame again on a figure of its own size")
        form.addRow("Style", self.style)
        self.aspect = QComboBox()
        self.aspect.addItem("As the window", None)
        for name in ASPECTS:
            self.aspect.addItem(name, name)
        form.addRow("Aspect", self.aspect)
        buttons = QDialogButtonBox()
        self.save = buttons.addButton("Save…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.copy = buttons.addButton("Copy to clipboard", QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        form.addRow(buttons)
        self.save.clicked.connect(lambda: self._choose(copy=False))
        self.copy.clicked.connect(lambda: self._choose(copy=True))
        buttons.rejected.connect(self.reject)

    def choice(self, copy: bool = False) -> ExportChoice:
        ext, scale = self.format.currentData()
        return ExportChoice(self.target.currentData(), ext, scale, copy, self.style.currentData(),
                            self.aspect.currentData())

    def _choose(self, copy: bool) -> None:
        choice = self.choice(copy)
        self.accept()
        self.chosen.emit(choice)


class GifDialog(QDialog):
    """Record GIF…: what to record, how many frames, how many training steps apart, how wide."""

    chosen = Signal(object)  # GifChoice

    def __init__(self, panels: Sequence[str], scene_steps: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Record GIF")
        form = QFormLayout(self)
        self.target = _target_combo(panels)
        form.addRow("What", self.target)
        self.frames = QSpinBox()
        self.frames.setRange(1, 1000)
        self.frames.setValue(gif.GIF_FRAMES)
        self.frames.setToolTip("Number of frames (10 per second when played)")
        form.addRow("Frames", self.frames)
        self.every = QSpinBox()
        self.every.setRange(1, 1_000_000)
        self.every.setValue(max(1, scene_steps // self.frames.value()))
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

    def choice(self) -> GifChoice:
        return GifChoice(self.target.currentData(), self.frames.value(), self.every.value(), self.width_px.value())

    @Slot()
    def _on_record(self) -> None:
        choice = self.choice()
        self.accept()
        self.chosen.emit(choice)
