"""File ▸ …: scenes (TOML), sessions (``.vaesession``), the metrics CSV, figure exports and recent files.

What needs the Session (saving it, its metric rows) is a request to the controller, done where the
session runs; the answer comes back and is reported here. What needs only the screen (a figure export)
happens in the GUI thread. Every failure shows an error and the running session goes on.
Signals: ``session_saved(path)`` and ``metrics_written(path)`` when those files are on disk.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from explorer.core import files
from explorer.core.config import config_from_dict, config_to_toml
from explorer.core.errors import ConfigError
from explorer.core.player import Reply

from . import export, settings
from .controller import BuildTag, SessionController
from .dialogs import ExportChoice, ExportDialog, slug
from .status import Messages

SCENE_FILTER = "VAE Explorer scene (*.toml)"
SESSION_SUFFIX = ".vaesession"
SESSION_FILTER = f"VAE Explorer session (*{SESSION_SUFFIX})"


class FileActions(QObject):
    session_saved = Signal(str)
    metrics_written = Signal(str)

    def __init__(self, controller: SessionController, figure: Any, messages: Messages, window: QWidget) -> None:
        super().__init__(window)
        self._controller = controller
        self._figure = figure
        self._messages = messages
        self._window = window

    def file_stem(self) -> str:
        """A file name for exports of this scene: its title, slugged."""
        return slug(self._controller.config.title) or "figure"

    # ------------------------------------------------------------------ dialogs
    def ask_save_path(self, title: str, name: str, filters: str, folder_kind: str = "files") -> str:
        """A save dialog starting in the remembered folder; returns "" when cancelled."""
        path, _ = QFileDialog.getSaveFileName(self._window, title, str(settings.folder(folder_kind) / name), filters)
        return path

    def _ask_open_path(self, title: str, filters: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self._window, title, str(settings.folder("files")), filters)
        return path

    @Slot()
    def ask_open_scene(self) -> None:
        path = self._ask_open_path("Open scene", f"{SCENE_FILTER};;All files (*)")
        if path:
            self.open_scene(path)

    @Slot()
    def ask_save_scene(self) -> None:
        path = self.ask_save_path("Save scene", f"{self.file_stem()}.toml", SCENE_FILTER)
        if path:
            self.save_scene(path if path.lower().endswith(".toml") else path + ".toml")

    @Slot()
    def ask_open_session(self) -> None:
        path = self._ask_open_path("Open session", f"{SESSION_FILTER};;All files (*)")
        if path:
            self.open_session(path)

    @Slot()
    def ask_save_session(self) -> None:
        path = self.ask_save_path("Save session", f"{self.file_stem()}{SESSION_SUFFIX}", SESSION_FILTER)
        if path:
            self.save_session(path if path.endswith(SESSION_SUFFIX) else path + SESSION_SUFFIX)

    @Slot()
    def ask_export_metrics(self) -> None:
        path = self.ask_save_path("Export metrics", f"{self.file_stem()}-metrics.csv", "CSV table (*.csv)", "export")
        if path:
            self.export_metrics(path if path.lower().endswith(".csv") else path + ".csv")

    @Slot()
    def open_export_dialog(self) -> ExportDialog:
        dialog = ExportDialog(self._figure.panel_names(), self._window)
        dialog.chosen.connect(self._on_export_chosen)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    @Slot(object)
    def _on_export_chosen(self, choice: ExportChoice) -> None:
        if choice.copy:
            self.copy_figure()
            return
        filters = "PNG image (*.png)" if choice.ext == "png" else "SVG image (*.svg)"
        path = self.ask_save_path("Export figure", choice.file_name(self.file_stem()), filters, "export")
        if path:
            if not path.lower().endswith(f".{choice.ext}"):
                path += f".{choice.ext}"
            self.export_figure(path, scale=choice.scale, panel=choice.panel, style=choice.style, aspect=choice.aspect)

    # ------------------------------------------------------------------ scenes and sessions
    def open_scene(self, path: str | os.PathLike) -> bool:
        """A new session from a scene file, paused at step 0. A broken file shows an error and the current
        session goes on."""
        try:
            config = files.open_scene(path)
        except ConfigError as e:
            self._messages.show_error("Cannot open the scene", f"{e}\n\nThe current session keeps running.")
            return False
        settings.remember_file(path)
        self._controller.rebuild(config, f"scene {Path(path).name}",
                                 BuildTag(error_title="Cannot open the scene"), paused=True)
        return True

    def save_scene(self, path: str | os.PathLike) -> bool:
        """Write the scene as it runs (live changes included) as TOML."""
        try:
            files.save_scene(self._controller.config, path)
        except (ConfigError, OSError) as e:
            self._messages.show_error("Cannot save the scene", f"{e}\n\nTraining goes on.")
            return False
        settings.remember_file(path)
        self._messages.show_message(f"Saved the scene to {path}")
        return True

    def open_session(self, path: str | os.PathLike) -> bool:
        """A saved session (models, optimisers, step, history), paused where it was saved. It is read and
        checked where the session runs; a broken file shows an error and the current session goes on."""
        path = Path(path)
        if not path.is_file():
            self._messages.show_error("Cannot open the session",
                                      f"{path}: no such session file\n\nThe current session keeps running.")
            return False
        settings.remember_file(path)
        self._controller.open_session(str(path), f"session {path.name}")
        return True

    def save_session(self, path: str | os.PathLike) -> None:
        """Save config, models, optimisers, step and history, between two training steps;
        ``session_saved(path)`` follows, or an error box."""
        path = str(path)

        def done(reply: Reply) -> None:
            if reply.error:
                self._messages.show_error("Cannot save the session", f"{reply.error}\n\nTraining goes on.")
                return
            settings.remember_file(path)
            self._messages.show_message(f"Saved the session (step {reply.value}) to {path}")
            self.session_saved.emit(path)

        self._controller.request("save_session", done, path=path)

    def export_metrics(self, path: str | os.PathLike) -> None:
        """This session's metric history as CSV: the columns of ``run --out``'s metrics.csv (run, step and
        every metric), one row per logged step and run. ``metrics_written(path)`` follows, or an error."""
        path = str(path)

        def done(reply: Reply) -> None:
            if reply.error:
                self._messages.show_error("Export failed", f"Could not write the metrics:\n{reply.error}\n\n"
                                          "Training goes on.")
                return
            settings.remember_folder("export", path)
            self._messages.show_message(f"Saved {reply.value} metric rows to {path}")
            self.metrics_written.emit(path)

        self._controller.request("write_metrics", done, path=path)

    # ------------------------------------------------------------------ figure
    def export_figure(self, path: str | os.PathLike, scale: int = 1, panel: str | None = None,
                      style: str | None = None, aspect: str | None = None) -> bool:
        """The figure (or one panel) as PNG at ``scale``× its on-screen width, or as SVG; with an export
        ``style`` or ``aspect`` (see shot.render_snapshot), the current frame drawn again that way, PNG at
        ``scale``× the style's width. A failure (an unwritable folder, a full disk, a bad panel name) shows
        an error box and returns False."""
        path = Path(path)
        try:
            folder = path.parent
            if not folder.is_dir():
                raise OSError(f"the folder {folder} does not exist")
            if not os.access(folder, os.W_OK):
                raise OSError(f"the folder {folder} is not writable")
            if (style or aspect) and self._figure.snapshot is not None and path.suffix.lower() in (".png", ".svg"):
                from .layout import EXPORT_STYLES
                from .shot import render_snapshot

                name = style or ("talk" if self._figure.presentation else "screen")
                width = EXPORT_STYLES[name][2] * scale if path.suffix.lower() == ".png" else None
                render_snapshot(self._figure.snapshot, str(path), width=width, style=name, panel=panel,
                                aspect=aspect)
            elif path.suffix.lower() == ".svg":
                self._figure.export_svg(str(path), panel=panel)
            elif path.suffix.lower() == ".png":
                width = None if scale == 1 else int(round(self._panel_width(panel) * scale))
                self._figure.export_png(str(path), width=width, panel=panel)
            else:
                raise ValueError(f"unknown format {path.suffix!r} (use .png or .svg)")
            if not path.is_file() or path.stat().st_size == 0:
                raise OSError("nothing was written")
        except Exception as e:  # noqa: BLE001 — every failure is reported, none ends the session
            self._messages.show_error("Export failed", f"Could not write {path}:\n{e}\n\nTraining goes on.")
            return False
        settings.remember_folder("export", path)
        self._messages.show_message(f"Saved {path}")
        return True

    def _panel_width(self, panel: str | None) -> float:
        """The on-screen width of what is exported: the 1× of the 1×/2×/4× choices."""
        if panel is None:
            return float(self._figure.width())
        return export.exporter_source_width(self._figure.panel(panel).plot)

    @Slot()
    def copy_figure(self) -> None:
        self._figure.copy_to_clipboard()
        self._messages.show_message("Copied the figure to the clipboard")

    # ------------------------------------------------------------------ recent files
    def fill_recent_menu(self, menu: QMenu) -> None:
        menu.clear()
        last = settings.last_scene()
        if last:
            try:
                title = str(tomllib.loads(last).get("title", "untitled"))
            except tomllib.TOMLDecodeError:
                title = "untitled"
            menu.addAction(f"Last Scene at Exit: {title}").triggered.connect(self.open_last_scene)
            menu.addSeparator()
        for path in settings.recent_files():
            action = menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_recent(p))
        if menu.isEmpty():
            menu.addAction("(nothing yet)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear Recent Files").triggered.connect(settings.clear_recent_files)

    def open_recent(self, path: str) -> bool:
        if not Path(path).is_file():
            settings.forget_file(path)
        return self.open_session(path) if path.endswith(SESSION_SUFFIX) else self.open_scene(path)

    @Slot()
    def open_last_scene(self) -> bool:
        """The scene as it was when the window last closed (edits included)."""
        try:
            config = config_from_dict(tomllib.loads(settings.last_scene()))
        except (tomllib.TOMLDecodeError, ConfigError) as e:
            self._messages.show_error("Cannot open the last scene", f"{e}\n\nThe current session keeps running.")
            return False
        self._controller.rebuild(config, "the last scene", BuildTag(), paused=True)
        return True

    def remember_last_scene(self) -> None:
        settings.remember_last_scene(config_to_toml(self._controller.config))
