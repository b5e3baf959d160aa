"""The main window: the Figure in the middle, the controls in a left dock, a status bar.

Training runs in a :class:`~explorer.gui.worker.SessionWorker`; the window only sends commands
(``Session.send``) and draws the snapshots it receives, so the GUI thread never trains. Changes the
Session can apply live (lr, K/M/β/α, speed, observation) are sent as commands; every other change
builds a new Session from the edited config, and a ConfigError keeps the old one running.

Menus: File (scenes as TOML, sessions as ``.vaesession``, figure / metrics CSV / GIF exports, recent
files), Training, View and Story (the paper's argument scene by scene, with a caption above the figure).
Whatever touches the Session's torch state from the GUI thread (saving a session, reading its metric
rows) first stops the training thread and restarts it afterwards (:meth:`MainWindow._session_held`).

Settings (recent files, the last scene, window geometry, the export folder) live in QSettings
("VAE Explorer", "vae-explorer"); the environment variable ``VAE_EXPLORER_SETTINGS`` names an INI file
to use instead (tests point it at a temporary file).

Signals for scripts and tests: ``snapshot_shown(step)`` after each snapshot is drawn,
``state_changed("running" | "paused")``, ``session_rebuilt(reason)``, ``error_shown(message)``,
``story_changed(index)`` (-1 when leaving the story) and ``gif_recorded(path)``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import html
import logging
import os
import random
import re
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.cli import atomic_write, metrics_csv
from explorer.core import files
from explorer.core.config import Config, config_from_dict, config_to_toml, load_preset
from explorer.core.errors import ConfigError
from explorer.core.session import RunFailure
from explorer.core.snapshot import Snapshot

from . import export, gif, theme
from .controls import ControlPanel
from .figure import Figure
from .worker import SessionBuilder, SessionWorker

log = logging.getLogger(__name__)

SNAPSHOT_HZ = 30.0
STOP_TIMEOUT_S = 0.9
MESSAGE_MS = 8000
DOCK_MIN_WIDTH = 290  # wide enough for the preset titles; the figure gets the rest
HOLD_TIMEOUT_S = 5.0  # how long saving a session waits for the training thread to pause
RECENT_MAX = 8
SETTINGS_ENV = "VAE_EXPLORER_SETTINGS"
SCENE_FILTER = "VAE Explorer scene (*.toml)"
SESSION_FILTER = f"VAE Explorer session (*{files.SESSION_SUFFIX})" if hasattr(files, "SESSION_SUFFIX") \
    else "VAE Explorer session (*.vaesession)"


def _make_session(config: Config) -> Any:
    from explorer.core.session import Session

    return Session(config)


def app_settings() -> QSettings:
    """The app's QSettings; ``$VAE_EXPLORER_SETTINGS`` (an INI file path) replaces the user's store."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("VAE Explorer", "vae-explorer")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _story_module() -> Any:
    """``explorer.core.story`` (STORY, story_config), or None when it cannot be imported."""
    try:
        from explorer.core import story
    except ImportError:
        return None
    return story


class SessionBusy(RuntimeError):
    """The session cannot be paused for a file operation right now (it is being built, or stuck)."""


@dataclasses.dataclass
class _BuildRequest:
    config: Config | None  # None: the session brings its own (opened from a file)
    reason: str
    preset: str | None
    error_title: str = "Cannot apply this change"
    start_paused: bool = False
    story_index: int | None = None  # the story scene this builds, if any


class ExportDialog(QDialog):
    """Ctrl+S: the whole figure or one panel, as PNG at 1×/2×/4× width or SVG; or copy to clipboard."""

    FORMATS = (("PNG, 1× width", "png", 1), ("PNG, 2× width", "png", 2), ("PNG, 4× width (talks)", "png", 4),
               ("SVG (vector)", "svg", 1))

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.setWindowTitle("Export figure")
        self._window = window
        form = QFormLayout(self)
        self.target = QComboBox()
        self.target.addItem("Whole figure", None)
        for name in window.figure.panel_names():
            self.target.addItem(f"Panel: {name}", name)
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
        stem = re.sub(r"[^A-Za-z0-9]+", "-", self._window.caption_text()).strip("-").lower() or "figure"
        if panel:
            stem += f"-{re.sub(r'[^A-Za-z0-9]+', '-', panel).strip('-').lower()}"
        if ext == "png" and scale > 1:
            stem += f"@{scale}x"
        return f"{stem}.{ext}"

    @Slot()
    def _on_save(self) -> None:
        panel, ext, scale = self.choice()
        filters = "PNG image (*.png)" if ext == "png" else "SVG image (*.svg)"
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", str(Path.cwd() / self.default_name()), filters)
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


class MainWindow(QMainWindow):
    """VAE Explorer's window. ``MainWindow(config)`` builds a Session and its worker, paused."""

    snapshot_shown = Signal(int)
    state_changed = Signal(str)
    session_rebuilt = Signal(str)
    error_shown = Signal(str)

    def __init__(self, config: Config, *, preset: str | None = None, hz: float = SNAPSHOT_HZ,
                 session_factory: Callable[[Config], Any] = _make_session,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("VAE Explorer")
        self._hz = hz
        self._session_factory = session_factory
        self._state = "paused"
        self._presentation = False
        self._preset = preset
        self._worker: SessionWorker | None = None
        self._session: Any = None
        self._builder = SessionBuilder(self)
        self._builder.built.connect(self._on_built)
        self._builder.failed.connect(self._on_build_failed)
        self._build_token: int | None = None
        self._build_request: tuple[Config, str, str | None] | None = None
        self._last_snapshot: Snapshot | None = None
        self._refused = ""
        self.error_box: QMessageBox | None = None

        self._build_central()
        self._build_dock()
        self._build_status()
        self._build_shortcuts()

        session = self._session_factory(config)  # bad input raises here, before any window shows
        self._install_session(session, config)
        self._fit_to_screen(1500, 950)
        self.show_message("Paused: press Space (or Start) to train, S to step one step", timeout_ms=0)

    # ------------------------------------------------------------------ building
    def _fit_to_screen(self, width: int, height: int) -> None:
        screen = self.screen() or QApplication.primaryScreen()
        if screen is not None and QApplication.platformName() != "offscreen":  # its 800×800 is no screen
            area = screen.availableGeometry()
            width = min(width, int(area.width() * 0.95))
            height = min(height, int(area.height() * 0.95))
        self.resize(width, height)

    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 4)
        layout.setSpacing(2)

        # the scene title is the figure's own caption (so it is in every export too); the
        # description sits above the figure, beside a button that folds it away
        head = QHBoxLayout()
        head.setSpacing(4)
        self.about_toggle = QToolButton()
        self.about_toggle.setCheckable(True)
        self.about_toggle.setChecked(True)
        self.about_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.about_toggle.setArrowType(Qt.ArrowType.DownArrow)
        self.about_toggle.setText("About this scene")
        self.about_toggle.setToolTip("Show or hide the scene's description")
        self.about_toggle.setAutoRaise(True)
        self.about_toggle.toggled.connect(self._on_about_toggled)
        head.addWidget(self.about_toggle, 0, Qt.AlignmentFlag.AlignTop)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description.setFrameShape(QFrame.Shape.StyledPanel)
        self.description.setContentsMargins(6, 3, 6, 3)
        self.description.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        head.addWidget(self.description, 1)
        head.addStretch(0)
        layout.addLayout(head)

        self.figure = Figure()
        self.figure.observation_clicked.connect(self.set_observation)
        layout.addWidget(self.figure, 1)
        self.setCentralWidget(central)

    def _build_dock(self) -> None:
        self.controls = ControlPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.dock = QDockWidget("Controls", self)
        self.dock.setObjectName("controls")
        self.dock.setWidget(scroll)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                              | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        scroll.setMinimumWidth(max(DOCK_MIN_WIDTH, self.controls.minimumSizeHint().width()
                                   + scroll.verticalScrollBar().sizeHint().width()))

        c = self.controls
        c.start_pause_clicked.connect(self.toggle_run)
        c.step_clicked.connect(self.step)
        c.reset_clicked.connect(self.reset)
        c.reseed_clicked.connect(self.reseed)
        c.speed_changed.connect(self.set_speed)
        c.lr_changed.connect(self.set_lr)
        c.run_params_changed.connect(self.set_run_params)
        c.observation_changed.connect(self.set_observation)
        c.config_edited.connect(self.rebuild)
        c.preset_chosen.connect(self.load_preset)

    def _build_status(self) -> None:
        bar = self.statusBar()
        self._message = QLabel()
        self._warning = QLabel()
        self._warning.setStyleSheet(f"color: {theme.WARNING_COLOR}; font-weight: bold;")
        self._step_label = QLabel()
        self._rate_label = QLabel()
        self._device_label = QLabel()
        bar.addWidget(self._message, 1)
        bar.addWidget(self._warning, 2)
        for label in (self._step_label, self._rate_label, self._device_label):
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance("step 000000"))
            bar.addPermanentWidget(label)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(self._message.clear)

    def _build_shortcuts(self) -> None:
        keys: tuple[tuple[str, Callable[[], Any]], ...] = (
            ("Space", self.toggle_run),
            ("S", self.step),
            ("R", self.reset),
            ("Ctrl+S", self.open_export_dialog),
            ("F", self.toggle_fullscreen),
            ("P", self.toggle_presentation),
            ("Escape", self.leave_modes),
        )
        self.shortcuts: dict[str, QShortcut] = {}
        for key, slot in keys:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts[key] = shortcut

    # ------------------------------------------------------------------ session lifecycle
    def _install_session(self, session: Any, config: Config) -> None:
        """Start a worker around ``session`` (the previous worker is stopped already)."""
        self._session = session
        self._config = config
        self._start_worker(session)
        self.controls.set_config(config, str(session.device), self._preset)
        self.controls.set_state(self._state)
        self._show_scene_text(config.title, config.description)
        self._device_label.setText(f"device: {session.device}")

    def _start_worker(self, session: Any) -> None:
        worker = SessionWorker(session, hz=self._hz, parent=self)
        worker.snapshot_ready.connect(self._on_snapshot)
        worker.failed.connect(self._on_failed)
        self._worker = worker
        worker.start()
        worker.send("set_speed", steps_per_s=self.controls.speed_value())
        worker.send("resume" if self._state == "running" else "pause")

    def _stop_worker(self) -> bool:
        worker, self._worker = self._worker, None
        if worker is None:
            return True
        worker.snapshot_ready.disconnect(self._on_snapshot)
        done = worker.stop(timeout_s=STOP_TIMEOUT_S)
        worker.deleteLater()
        return done

    @property
    def session(self) -> Any:
        """The running Session (read-only use: it lives on the worker thread)."""
        return self._session

    @property
    def worker(self) -> SessionWorker | None:
        return self._worker

    @property
    def building(self) -> bool:
        """True while a new Session is being built (the controls are disabled meanwhile)."""
        return self._build_token is not None

    @property
    def config(self) -> Config:
        """The scene as edited so far, live changes included."""
        try:
            return config_from_dict(self.controls.raw())
        except ConfigError:
            return self._config

    @property
    def state(self) -> str:
        """"running" or "paused": what the window last asked the session to do."""
        return self._state

    @property
    def last_snapshot(self) -> Snapshot | None:
        return self._last_snapshot

    @Slot(dict, str)
    def rebuild(self, raw: dict, reason: str = "settings changed") -> bool:
        """Build a new Session from an edited TOML-shaped dict, off the GUI thread.

        A config the schema refuses is reported at once (returns False). Otherwise the running
        session pauses while the new one is built; ``session_rebuilt`` follows, or, when building
        fails (a ConfigError such as a missing device), ``error_shown`` and the old session goes on.
        """
        try:
            config = config_from_dict(raw)
        except ConfigError as e:
            self.controls.revert()
            self.show_error("Cannot apply this change", f"{e}\n\nThe current session keeps running.")
            return False
        self._build(config, reason, self._preset)
        return True

    @Slot(str)
    def load_preset(self, name: str) -> bool:
        try:
            config = load_preset(name)
        except ConfigError as e:
            self.controls.revert()
            self.show_error("Cannot load the preset", str(e))
            return False
        self._build(config, f"preset {name}", name)
        return True

    def _build(self, config: Config, reason: str, preset: str | None) -> None:
        # The old worker stops first: building and training never share torch's global RNG, so
        # a seed still gives the same initial weights. A failed build restarts the old session.
        self._stop_worker()
        self._build_request = (config, reason, preset)
        self._build_token = self._builder.build(self._session_factory, config)
        self.controls.setEnabled(False)
        self.show_message(f"Building a new session ({reason})…", timeout_ms=0)

    @Slot(object, int)
    def _on_built(self, session: Any, token: int) -> None:
        if token != self._build_token:
            return
        config, reason, preset = self._build_request
        self._build_token = None
        self.controls.setEnabled(True)
        self._preset = preset
        self._install_session(session, config)
        self.show_message(f"New session: {reason}")
        self.session_rebuilt.emit(reason)

    @Slot(object, int)
    def _on_build_failed(self, error: BaseException, token: int) -> None:
        if token != self._build_token:
            return
        self._build_token = None
        self.controls.setEnabled(True)
        self.controls.revert()
        if self._worker is None and self._session is not None:
            self._start_worker(self._session)  # the old session goes on where it was
        message = str(error) if isinstance(error, ConfigError) else f"{error.__class__.__name__}: {error}"
        self.show_error("Cannot apply this change", f"{message}\n\nThe current session keeps running.")

    # ------------------------------------------------------------------ commands (all through send)
    def _send(self, name: str, **kwargs: Any) -> None:
        if self.building:
            return  # the new session starts in the window's state (running or paused)
        if self._worker is None or not self._worker.is_running:
            self._stop_worker()
            self._build(self.config, "restarted after a failure", self._preset)
            return
        self._worker.send(name, **kwargs)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.controls.set_state(state)
            self.state_changed.emit(state)

    @Slot()
    def start(self) -> None:
        self._send("resume")
        self._set_state("running")
        if self.message_text().startswith("Paused:"):
            self._message.clear()

    @Slot()
    def pause(self) -> None:
        self._send("pause")
        self._set_state("paused")

    @Slot()
    def toggle_run(self) -> None:
        self.pause() if self._state == "running" else self.start()

    @Slot()
    def step(self) -> None:
        """One training step, applied by the worker; pauses first when training."""
        if self._state == "running":
            self.pause()
        self._send("step", n=1)

    @Slot()
    def reset(self) -> None:
        """Back to step 0 with the same seed (same data, same initial weights)."""
        self._send("reset")
        self.show_message("Reset to step 0 (same seed)")

    @Slot()
    def reseed(self, seed: int | None = None) -> None:
        """Back to step 0 with a new seed, shown in the seed box so the scene can be repeated."""
        seed = random.SystemRandom().randrange(2**31 - 1) if seed is None else int(seed)
        self.controls.set_seed(seed)
        self._config = dataclasses.replace(self._config, seed=seed)
        self._send("reseed", seed=seed)
        self.show_message(f"Reseeded: seed {seed}")

    @Slot(object)
    def set_speed(self, steps_per_s: float | None) -> None:
        self._send("set_speed", steps_per_s=steps_per_s)

    @Slot(float)
    def set_lr(self, lr: float) -> None:
        for run in range(len(self._config.runs)):
            self._send("set_lr", run=run, lr=lr)

    @Slot(int, dict)
    def set_run_params(self, run: int, params: dict) -> None:
        self._send("set_run", run=run, **params)

    @Slot(int)
    def set_observation(self, index: int) -> None:
        n_data = self._config.problem.n_data
        if not 0 <= index < n_data:
            return
        self.controls.set_observation(index)
        self._send("set_observation", index=index)

    # ------------------------------------------------------------------ snapshots in
    @Slot(object)
    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._last_snapshot = snapshot
        self.figure.update_snapshot(snapshot)
        self._step_label.setText(f"step {snapshot.step}")
        self._rate_label.setText("paused" if snapshot.paused else f"{snapshot.steps_per_s:.0f} steps/s")
        self._device_label.setText(f"device: {snapshot.device}")
        warnings = list(snapshot.warnings)
        for run in snapshot.runs:
            if run.diverged_step is not None:
                warnings.append(f"{run.name} diverged at step {run.diverged_step}")
            warnings += [f"{run.name}: {w}" for w in run.warnings if f"{run.name}: {w}" not in warnings]
        text = "⚠ " + "; ".join(dict.fromkeys(warnings)) if warnings else ""
        self._warning.setText(self._warning.fontMetrics().elidedText(
            text, Qt.TextElideMode.ElideRight, max(200, self._warning.width())))
        self._warning.setToolTip("\n".join(dict.fromkeys(warnings)))
        if snapshot.observation != self.controls.observation.value():
            self.controls.set_observation(snapshot.observation)
        self.controls.set_run_titles([run.name for run in snapshot.runs])
        refused = getattr(self._session, "last_error", "")  # a live command the session refused
        if refused and refused != self._refused:
            self._refused = refused
            self.show_message(f"Refused: {refused}")
        self.snapshot_shown.emit(snapshot.step)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._set_state("paused")
        self.show_error("Training stopped", f"The session failed: {message}\n\n"
                        "Press Reset or change a setting to start a new session.")

    # ------------------------------------------------------------------ messages
    def status_text(self) -> str:
        """Step, rate and device as the status bar shows them."""
        return " · ".join(label.text() for label in (self._step_label, self._rate_label, self._device_label))

    def warning_text(self) -> str:
        """Every current warning (the status bar elides them; its tooltip has them all)."""
        return self._warning.toolTip()

    def message_text(self) -> str:
        """The status bar's current message (rebuilds, exports, errors)."""
        return self._message.text()

    def show_message(self, text: str, timeout_ms: int = MESSAGE_MS) -> None:
        """A status-bar message; it clears after ``timeout_ms`` (0: stays until the next one)."""
        self._message.setText(text)
        if timeout_ms:
            self._message_timer.start(timeout_ms)
        else:
            self._message_timer.stop()

    def show_error(self, title: str, text: str) -> None:
        """A non-blocking error box: training goes on behind it."""
        log.warning("%s: %s", title, text)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self._on_error_box_closed)
        self.error_box = box
        box.open()
        self.show_message(f"{title}: {text.splitlines()[0]}")
        self.error_shown.emit(text)

    @Slot()
    def _on_error_box_closed(self) -> None:
        self.error_box = None

    # ------------------------------------------------------------------ scene text, modes
    def caption_text(self) -> str:
        """The scene title, which the figure shows as its caption."""
        return self._config.title

    def _show_scene_text(self, title: str, description: str) -> None:
        self.setWindowTitle(f"VAE Explorer — {title}")
        self.description.setText(description)
        self.about_toggle.setVisible(bool(description))
        self.description.setVisible(bool(description) and self.about_toggle.isChecked()
                                    and not self._presentation)

    @Slot(bool)
    def _on_about_toggled(self, shown: bool) -> None:
        self.about_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.description.setVisible(shown and bool(self.description.text()) and not self._presentation)

    @property
    def presentation(self) -> bool:
        return self._presentation

    @Slot(bool)
    def set_presentation(self, on: bool) -> None:
        """Talk mode: large fonts and lines in the figure, controls, status and description hidden;
        the figure's caption (the scene title) stays."""
        self._presentation = on
        self.figure.set_presentation(on)
        self.dock.setVisible(not on)
        self.statusBar().setVisible(not on)
        self.about_toggle.setVisible(not on and bool(self.description.text()))
        self.description.setVisible(not on and self.about_toggle.isChecked() and bool(self.description.text()))

    @Slot()
    def toggle_presentation(self) -> None:
        self.set_presentation(not self._presentation)

    @Slot()
    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    @Slot()
    def leave_modes(self) -> None:
        if self._presentation:
            self.set_presentation(False)
        if self.isFullScreen():
            self.showNormal()

    # ------------------------------------------------------------------ export
    @Slot()
    def open_export_dialog(self) -> ExportDialog:
        dialog = ExportDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def export_figure(self, path: str | os.PathLike, scale: int = 1, panel: str | None = None) -> bool:
        """Write the figure (or one panel) to PNG at ``scale``× its on-screen width, or to SVG.

        A failure (an unwritable folder, a bad panel name) shows an error box and returns False;
        training goes on.
        """
        path = Path(path)
        try:
            folder = path.parent
            if not folder.is_dir():
                raise OSError(f"the folder {folder} does not exist")
            if not os.access(folder, os.W_OK):
                raise OSError(f"the folder {folder} is not writable")
            if path.suffix.lower() == ".svg":
                self.figure.export_svg(str(path), panel=panel)
            elif path.suffix.lower() == ".png":
                width = None if scale == 1 else int(round(self._panel_width(panel) * scale))
                self.figure.export_png(str(path), width=width, panel=panel)
            else:
                raise ValueError(f"unknown format {path.suffix!r} (use .png or .svg)")
            if not path.is_file() or path.stat().st_size == 0:
                raise OSError("nothing was written")
        except Exception as e:
            self.show_error("Export failed", f"Could not write {path}:\n{e}")
            return False
        self.show_message(f"Saved {path}")
        return True

    def _panel_width(self, panel: str | None) -> float:
        """The on-screen width of what is exported: the 1× of the 1×/2×/4× choices."""
        if panel is None:
            return float(self.figure.width())
        return export.exporter_source_width(self.figure.panel(panel).plot)

    @Slot()
    def copy_figure(self) -> None:
        self.figure.copy_to_clipboard()
        self.show_message("Copied the figure to the clipboard")

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self._build_token = None  # a session still being built is dropped when it arrives
        self._builder.wait()  # a constructor cannot be interrupted: let it finish
        if not self._stop_worker():
            log.warning("closing while the training thread is still running")
        if self.error_box is not None:
            self.error_box.close()
        super().closeEvent(event)
