"""The main window: the Figure in the middle, the controls in a left dock, a status bar.

Training runs in a :class:`~explorer.gui.worker.SessionWorker`; the window only sends commands
(``Session.send``) and draws the snapshots it receives, so the GUI thread never trains. Changes the
Session can apply live (lr, K/M/β/α, speed, observation) are sent as commands; every other change
builds a new Session from the edited config, and a ConfigError keeps the old one running.

Menus: File (scenes as TOML, sessions as ``.vaesession``, figure / metrics CSV / GIF exports, recent
files), Training, View and Story (the paper's argument scene by scene, with a caption above the figure).
Whatever touches the Session's torch state from the GUI thread (saving a session, reading its metric
rows) first stops the training thread and restarts it afterwards (:meth:`MainWindow._session_held`).

What the window remembers between runs (recent files, the last scene, geometry, the export folder)
is in :mod:`explorer.gui.settings`; the dialogs are in :mod:`explorer.gui.dialogs`.

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
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.files import atomic_write_text as atomic_write, metrics_csv
from explorer.core import files
from explorer.core.config import Config, config_from_dict, config_to_toml, load_preset
from explorer.core.errors import ConfigError
from explorer.core.session import RunFailure
from explorer.core.snapshot import Snapshot

from . import export, gif, settings, theme
from .controls import ControlPanel
from .dialogs import ExportDialog, GifDialog, slug
from .figure import Figure
from .worker import SessionBuilder, SessionWorker

log = logging.getLogger(__name__)

SNAPSHOT_HZ = 30.0
STOP_TIMEOUT_S = 0.9
MESSAGE_MS = 8000
DOCK_MIN_WIDTH = 290  # wide enough for the preset titles; the figure gets the rest
HOLD_TIMEOUT_S = 5.0  # how long saving a session waits for the training thread to pause
SCENE_FILTER = "VAE Explorer scene (*.toml)"
SESSION_SUFFIX = ".vaesession"
SESSION_FILTER = f"VAE Explorer session (*{SESSION_SUFFIX})"


def _make_session(config: Config) -> Any:
    from explorer.core.session import Session

    return Session(config)


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


class MainWindow(QMainWindow):
    """VAE Explorer's window. ``MainWindow(config)`` builds a Session and its worker, paused.

    ``story=True`` opens the story instead (``explorer.core.story``): its first scene's config is built
    in place of ``config``, with the caption shown above the figure.
    """

    snapshot_shown = Signal(int)
    state_changed = Signal(str)
    session_rebuilt = Signal(str)
    error_shown = Signal(str)
    story_changed = Signal(int)
    gif_recorded = Signal(str)

    def __init__(self, config: Config, *, preset: str | None = None, hz: float = SNAPSHOT_HZ,
                 session_factory: Callable[[Config], Any] = _make_session, story: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("VAE Explorer")
        self._hz = hz
        self._session_factory = session_factory
        self._state = "paused"
        self._presentation = False
        self._dock_shown = True
        self._preset = preset
        self._worker: SessionWorker | None = None
        self._session: Any = None
        self._builder = SessionBuilder(self)
        self._builder.built.connect(self._on_built)
        self._builder.failed.connect(self._on_build_failed)
        self._build_token: int | None = None
        self._build_request: _BuildRequest | None = None
        self._last_snapshot: Snapshot | None = None
        self._refused = ""
        self._story_index: int | None = None  # the story scene shown (its caption)
        self._session_story: int | None = None  # the story scene the running session was built from
        self._recorder: gif.GifRecorder | None = None
        self.error_box: QMessageBox | None = None

        self._build_central()
        self._build_dock()
        self._build_status()
        self._build_actions()
        self._build_menus()

        story_index = None
        if story:
            try:
                config = self._story_config(0)
                story_index = 0
            except (ConfigError, LookupError, AttributeError) as e:
                log.warning("story mode is not available: %s", e)
        session = self._session_factory(config)  # bad input raises here, before any window shows
        self._install_session(session, config)
        self._fit_to_screen(1500, 950)
        self._restore_settings()
        if story_index is not None:
            self._session_story = story_index
            self._enter_story_scene(story_index)
            self.show_message("Story: Page Down / Page Up (or → / ← in presentation mode) move between "
                              "scenes; Space trains", timeout_ms=0)
        else:
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
        layout.setSpacing(4)

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

        # story mode: the scene's caption, large, above the figure (it is what the audience reads)
        self.story_caption = QLabel()
        self.story_caption.setObjectName("storyCaption")
        self.story_caption.setWordWrap(True)
        self.story_caption.setTextFormat(Qt.TextFormat.RichText)
        self.story_caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.story_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        self.story_caption.setVisible(False)
        self._style_story_caption()
        layout.addWidget(self.story_caption)

        self.figure = Figure()
        self.figure.observation_clicked.connect(self.set_observation)
        layout.addWidget(self.figure, 1)
        self.setCentralWidget(central)

    def _style_story_caption(self) -> None:
        size = 22 if self._presentation else 15
        self.story_caption.setStyleSheet(
            f"QLabel#storyCaption {{ background: #F3F6FA; color: {theme.FOREGROUND}; "
            f"border-left: 6px solid {theme.run_color(0)}; padding: 8px 14px; font-size: {size}px; }}")

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
        c.refused.connect(self._on_value_refused)

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

    def _action(self, name: str, text: str, slot: Callable[..., Any], shortcut: str | None = None,
                tip: str = "", checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)  # its shortcut works with the menu bar hidden (presentation mode)
        self.action_map[name] = action
        return action

    def _build_actions(self) -> None:
        self.action_map: dict[str, QAction] = {}
        a = self._action
        a("open_scene", "Open Scene…", self._ask_open_scene, "Ctrl+O", "Open a scene (TOML config)")
        a("save_scene", "Save Scene…", self._ask_save_scene, "Ctrl+Shift+S",
          "Save the scene as edited, live changes included, as TOML")
        a("open_session", "Open Session…", self._ask_open_session, "Ctrl+Shift+O",
          "Open a saved session: the models, optimisers and step, as they were")
        a("save_session", "Save Session…", self._ask_save_session, None,
          "Save the session: config, models, optimisers, step and metric history")
        a("export_figure", "Export Figure…", self.open_export_dialog, "Ctrl+S",
          "The whole figure or one panel as PNG (1×, 2×, 4×) or SVG")
        a("copy_figure", "Copy Figure", self.copy_figure, None, "Copy the figure to the clipboard")
        a("export_metrics", "Export Metrics CSV…", self._ask_export_metrics, None,
          "The metric history of this session, with the columns of `run --out`'s metrics.csv")
        a("record_gif", "Record GIF…", self.open_gif_dialog, "Ctrl+G",
          "Record an animated GIF of training for slides")
        a("stop_recording", "Stop Recording", self.stop_recording, None, "Stop the GIF recording; write nothing")
        self.action_map["stop_recording"].setEnabled(False)
        a("quit", "Quit", self.close, "Ctrl+Q")

        a("start_pause", "Start / Pause", self.toggle_run, "Space")
        a("step", "Step", self.step, "S", "One training step")
        a("reset", "Reset", self.reset, "R", "Back to step 0 with the same seed")
        a("reseed", "Reseed", self.reseed, None, "Back to step 0 with a new seed")

        a("presentation", "Presentation Mode", self.set_presentation, "P",
          "Large fonts and lines; controls, menus and status bar hidden", checkable=True)
        a("fullscreen", "Full Screen", self._set_fullscreen, "F", checkable=True)
        a("leave_modes", "Leave Presentation / Full Screen", self.leave_modes, "Escape")
        a("about", "Scene Description", self.about_toggle.setChecked, None, checkable=True)
        self.action_map["about"].setChecked(True)
        self.about_toggle.toggled.connect(self.action_map["about"].setChecked)

        a("story", "Story Mode", self._on_story_toggled, None,
          "Step through the paper's argument, one scene at a time", checkable=True)
        a("next_scene", "Next Scene", self.next_scene, None, "The next scene of the story")
        a("previous_scene", "Previous Scene", self.previous_scene, None, "The previous scene of the story")
        self.action_map["next_scene"].setIconText("Next ▶")  # the story toolbar's buttons
        self.action_map["previous_scene"].setIconText("◀ Previous")
        self._update_story_keys()

    def _build_menus(self) -> None:
        act = self.action_map
        bar = self.menuBar()
        self.menus: dict[str, QMenu] = {}
        file_menu = self.menus["file"] = bar.addMenu("&File")
        for name in ("open_scene", "save_scene"):
            file_menu.addAction(act[name])
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        for name in ("open_session", "save_session"):
            file_menu.addAction(act[name])
        file_menu.addSeparator()
        for name in ("export_figure", "copy_figure", "export_metrics", "record_gif", "stop_recording"):
            file_menu.addAction(act[name])
        file_menu.addSeparator()
        file_menu.addAction(act["quit"])

        training = self.menus["training"] = bar.addMenu("&Training")
        for name in ("start_pause", "step", "reset", "reseed"):
            training.addAction(act[name])

        view = self.menus["view"] = bar.addMenu("&View")
        for name in ("presentation", "fullscreen", "leave_modes"):
            view.addAction(act[name])
        view.addSeparator()
        view.addAction(self.dock.toggleViewAction())
        view.addAction(act["about"])

        story_menu = self.menus["story"] = bar.addMenu("&Story")
        story_menu.addAction(act["story"])
        story_menu.addAction(act["next_scene"])
        story_menu.addAction(act["previous_scene"])
        story_menu.addSeparator()
        self._scene_group = QActionGroup(self)
        self.scene_actions: list[QAction] = []
        story = _story_module()
        scenes = getattr(story, "STORY", ()) if story is not None else ()
        for i, scene in enumerate(scenes):
            numbered = scene.title.startswith(str(i + 1))  # the story's titles carry their number
            action = QAction(scene.title if numbered else f"{i + 1}. {scene.title}", self)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, i=i: self.show_story_scene(i))
            self._scene_group.addAction(action)
            story_menu.addAction(action)
            self.scene_actions.append(action)
        if not scenes:
            missing = story_menu.addAction("(the story is not available)")
            missing.setEnabled(False)
            act["story"].setEnabled(False)

        self.story_bar = QToolBar("Story", self)
        self.story_bar.setObjectName("story")
        self.story_bar.setMovable(False)
        self.story_bar.addAction(act["previous_scene"])
        self.story_label = QLabel()
        self.story_label.setContentsMargins(10, 0, 10, 0)
        self.story_bar.addWidget(self.story_label)
        self.story_bar.addAction(act["next_scene"])
        self.story_bar.addSeparator()
        leave = QAction("Leave Story", self)
        leave.triggered.connect(self.leave_story)
        self.story_bar.addAction(leave)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.story_bar)
        self.story_bar.setVisible(False)

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
        # while a GIF records, the session yields exactly every N steps so no frame is skipped
        every = self._recorder.every if self._recorder is not None else None
        worker = SessionWorker(session, hz=self._hz, every_steps=every, parent=self)
        worker.snapshot_ready.connect(self._on_snapshot)
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_failed)
        self._worker = worker
        worker.start()
        worker.send("set_speed", steps_per_s=self.controls.speed_value())
        worker.send("resume" if self._state == "running" else "pause")

    def _stop_worker(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        worker, self._worker = self._worker, None
        if worker is None:
            return True
        worker.snapshot_ready.disconnect(self._on_snapshot)
        worker.yielded.disconnect(self._on_yielded)
        done = worker.stop(timeout_s=timeout_s)
        worker.deleteLater()
        return done

    def _restart_worker(self) -> None:
        """A new training thread around the same session (e.g. to switch the snapshot cadence)."""
        if self._worker is None or self.building:
            return
        running = self._worker.is_running
        if self._stop_worker(timeout_s=HOLD_TIMEOUT_S) and running:
            self._start_worker(self._session)

    @contextlib.contextmanager
    def _session_held(self) -> Iterator[Any]:
        """The Session with its training thread stopped, so the GUI thread may read or save its torch
        state without racing training; the thread restarts afterwards, in the window's state."""
        if self.building:
            raise SessionBusy("a new session is being built; try again in a moment")
        running = self._worker is not None and self._worker.is_running
        if not self._stop_worker(timeout_s=HOLD_TIMEOUT_S):
            raise SessionBusy("the training thread did not pause in time; press Reset and try again")
        try:
            yield self._session
        finally:
            if running:
                self._start_worker(self._session)

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
        self._build(_BuildRequest(config, reason, self._preset, story_index=self._story_index))
        return True

    @Slot(str)
    def load_preset(self, name: str) -> bool:
        try:
            config = load_preset(name)
        except ConfigError as e:
            self.controls.revert()
            self.show_error("Cannot load the preset", str(e))
            return False
        self._build(_BuildRequest(config, f"preset {name}", name))
        return True

    def _build(self, request: _BuildRequest, factory: Callable[[Any], Any] | None = None) -> None:
        # The old worker stops first: building and training never share torch's global RNG, so
        # a seed still gives the same initial weights. A failed build restarts the old session.
        self._cancel_recording("the session was replaced")
        self._stop_worker()
        self._build_request = request
        self._build_token = self._builder.build(factory or self._session_factory, request.config)
        self.controls.setEnabled(False)
        self.show_message(f"Building a new session ({request.reason})…", timeout_ms=0)

    @Slot(object, int)
    def _on_built(self, session: Any, token: int) -> None:
        if token != self._build_token or self._build_request is None:
            return
        request = self._build_request
        self._build_token = None
        self.controls.setEnabled(True)
        self._preset = request.preset
        if request.start_paused:
            self._set_state("paused")
        if request.story_index is None and self._story_index is not None:
            self._leave_story_ui()
        self._session_story = request.story_index
        self._install_session(session, request.config or session.config)
        if request.story_index is not None:
            self._enter_story_scene(request.story_index)
        self.show_message(f"New session: {request.reason}")
        self.session_rebuilt.emit(request.reason)

    @Slot(object, int)
    def _on_build_failed(self, error: BaseException, token: int) -> None:
        if token != self._build_token or self._build_request is None:
            return
        request = self._build_request
        self._build_token = None
        self.controls.setEnabled(True)
        self.controls.revert()
        if self._worker is None and self._session is not None:
            self._start_worker(self._session)  # the old session goes on where it was
        if self._story_index != self._session_story:  # the caption of the scene still running
            if self._session_story is None:
                self._leave_story_ui()
            else:
                self._enter_story_scene(self._session_story)
        message = str(error) if isinstance(error, ConfigError) else f"{error.__class__.__name__}: {error}"
        self.show_error(request.error_title, f"{message}\n\nThe current session keeps running.")

    # ------------------------------------------------------------------ commands (all through send)
    def _send(self, name: str, **kwargs: Any) -> None:
        if self.building:
            return  # the new session starts in the window's state (running or paused)
        if self._worker is None or not self._worker.is_running:
            self._stop_worker()
            self._build(_BuildRequest(self.config, "restarted after a failure", self._preset,
                                      story_index=self._story_index))
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
        if self.message_text().startswith(("Paused:", "Story:")):
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

    @Slot(object)
    def _on_yielded(self, snapshot: Snapshot) -> None:
        """Every snapshot, in order: a GIF recording takes its frames from here."""
        if self._recorder is not None:
            self._recorder.offer(snapshot)

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        """The training thread raised: say which run and why, with the traceback in the details."""
        self._set_state("paused")
        if isinstance(error, RunFailure):
            cause = error.error
            head = (f"The run “{error.run}” failed at step {error.step}:\n"
                    f"{cause.__class__.__name__}: {cause}")
        else:
            head = f"The session failed:\n{error.__class__.__name__}: {error}"
        details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self._cancel_recording("training stopped")
        self.show_error("Training stopped", f"{head}\n\nTraining has stopped (all runs train in "
                        "lockstep). Press Reset (R) to start again from step 0, or change a setting.",
                        details=details)

    @Slot(str)
    def _on_value_refused(self, reason: str) -> None:
        self.show_message(f"Refused: {reason}")

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

    def show_error(self, title: str, text: str, details: str | None = None) -> None:
        """A non-modal error box (training goes on behind it); ``details``: e.g. a traceback."""
        log.warning("%s: %s", title, text)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok, self)
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

    # ------------------------------------------------------------------ scene text, modes
    def caption_text(self) -> str:
        """The scene title, which the figure shows as its caption."""
        return self._config.title

    def file_stem(self) -> str:
        """A file name for exports of this scene: its title, slugged."""
        return slug(self.caption_text()) or "figure"

    def _show_scene_text(self, title: str, description: str) -> None:
        self.setWindowTitle(f"VAE Explorer — {title}")
        self.description.setText(description)
        self._update_chrome()

    def _update_chrome(self) -> None:
        """Which parts of the window show, from presentation mode, story mode and the about toggle."""
        story = self._story_index is not None
        plain = not self._presentation
        has_text = bool(self.description.text())
        self.about_toggle.setVisible(plain and has_text and not story)
        self.description.setVisible(plain and has_text and not story and self.about_toggle.isChecked())
        self.story_caption.setVisible(story)
        self.story_bar.setVisible(story and plain)
        self.statusBar().setVisible(plain)
        self.menuBar().setVisible(plain)

    @Slot(bool)
    def _on_about_toggled(self, shown: bool) -> None:
        self.about_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self._update_chrome()

    @property
    def presentation(self) -> bool:
        return self._presentation

    @Slot(bool)
    def set_presentation(self, on: bool) -> None:
        """Talk mode: large fonts and lines in the figure; controls, menus, status and description
        hidden. The figure's caption (the scene title) and, in story mode, the story caption stay;
        ← and → move between story scenes."""
        on = bool(on)
        if on != self._presentation:  # the dock comes back only if it was shown before
            if on:
                self._dock_shown = self.dock.isVisible()
            self.dock.setVisible(not on and self._dock_shown)
        self._presentation = on
        self.figure.set_presentation(on)
        self.action_map["presentation"].blockSignals(True)
        self.action_map["presentation"].setChecked(on)
        self.action_map["presentation"].blockSignals(False)
        self._style_story_caption()
        self._update_chrome()
        self._update_story_keys()

    @Slot()
    def toggle_presentation(self) -> None:
        self.set_presentation(not self._presentation)

    @Slot(bool)
    def _set_fullscreen(self, on: bool) -> None:
        if on != self.isFullScreen():
            self.showFullScreen() if on else self.showNormal()

    @Slot()
    def toggle_fullscreen(self) -> None:
        self._set_fullscreen(not self.isFullScreen())

    @Slot()
    def leave_modes(self) -> None:
        if self._presentation:
            self.set_presentation(False)
        if self.isFullScreen():
            self.showNormal()

    def changeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() == event.Type.WindowStateChange and hasattr(self, "action_map"):
            action = self.action_map["fullscreen"]
            action.blockSignals(True)
            action.setChecked(self.isFullScreen())
            action.blockSignals(False)

    # ------------------------------------------------------------------ story
    def _story_config(self, index: int) -> Config:
        story = _story_module()
        if story is None:
            raise LookupError("explorer.core.story is not available")
        return story.story_config(index)

    def _story_scenes(self) -> tuple:
        story = _story_module()
        return tuple(getattr(story, "STORY", ())) if story is not None else ()

    @property
    def story_index(self) -> int | None:
        """The story scene shown (0-based), or None outside story mode."""
        return self._story_index

    def story_caption_text(self) -> str:
        return self.story_caption.text()

    @Slot()
    def start_story(self) -> bool:
        return self.show_story_scene(self._story_index or 0)

    @Slot(int)
    def show_story_scene(self, index: int) -> bool:
        """Load story scene ``index``: a new session from its config, paused at step 0, its caption
        shown above the figure. Returns False when there is no such scene or its config is refused."""
        scenes = self._story_scenes()
        if not 0 <= index < len(scenes):
            return False
        try:
            config = self._story_config(index)
        except (ConfigError, LookupError) as e:
            self.show_error("Cannot show this scene", str(e))
            return False
        self._enter_story_scene(index)  # the caption changes at once; the session follows
        scene = scenes[index]
        # preset None: a scene is a preset with overrides, so the preset box says "(custom)"
        self._build(_BuildRequest(config, f"story scene {index + 1}: {scene.title}", None,
                                  error_title="Cannot show this scene", start_paused=True, story_index=index))
        return True

    @Slot()
    def next_scene(self) -> bool:
        if self._story_index is None:
            return False
        return self.show_story_scene(self._story_index + 1)

    @Slot()
    def previous_scene(self) -> bool:
        if self._story_index is None:
            return False
        return self.show_story_scene(self._story_index - 1)

    @Slot()
    def leave_story(self) -> None:
        """Back to the explorer: the scene shown stays, its caption goes."""
        if self._story_index is None:
            return
        self._session_story = None
        self._leave_story_ui()

    @Slot(bool)
    def _on_story_toggled(self, on: bool) -> None:
        if on and self._story_index is None:
            if not self.start_story():
                self._check_story_action(False)
        elif not on and self._story_index is not None:
            self.leave_story()

    def _check_story_action(self, on: bool) -> None:
        action = self.action_map["story"]
        action.blockSignals(True)
        action.setChecked(on)
        action.blockSignals(False)

    def _enter_story_scene(self, index: int) -> None:
        scenes = self._story_scenes()
        if not 0 <= index < len(scenes):
            return
        scene = scenes[index]
        changed = index != self._story_index
        self._story_index = index
        n = len(scenes)
        # the figure's own caption carries the scene title; this box says where we are and why
        self.story_caption.setText(
            f"<div style='color:{theme.MUTED}; font-size:small;'>Story · scene {index + 1} of {n}</div>"
            f"<div style='margin-top:3px;'>{html.escape(scene.caption)}</div>")
        self.story_label.setText(f"Scene {index + 1} of {n}")
        self.action_map["previous_scene"].setEnabled(index > 0)
        self.action_map["next_scene"].setEnabled(index < n - 1)
        if index < len(self.scene_actions):
            self.scene_actions[index].setChecked(True)
        self._check_story_action(True)
        self._update_chrome()
        if changed:
            self.story_changed.emit(index)

    def _leave_story_ui(self) -> None:
        self._story_index = None
        checked = self._scene_group.checkedAction()
        if checked is not None:
            self._scene_group.setExclusive(False)
            checked.setChecked(False)
            self._scene_group.setExclusive(True)
        self.action_map["previous_scene"].setEnabled(False)
        self.action_map["next_scene"].setEnabled(False)
        self._check_story_action(False)
        self._update_chrome()
        self.story_changed.emit(-1)

    def _update_story_keys(self) -> None:
        """Page Down / Page Up (what presentation clickers send) always; → / ← in presentation mode,
        where no control has the focus to need them."""
        nxt, prev = self.action_map["next_scene"], self.action_map["previous_scene"]
        if self._presentation:
            nxt.setShortcuts([QKeySequence(Qt.Key.Key_Right), QKeySequence(Qt.Key.Key_PageDown)])
            prev.setShortcuts([QKeySequence(Qt.Key.Key_Left), QKeySequence(Qt.Key.Key_PageUp)])
        else:
            nxt.setShortcuts([QKeySequence(Qt.Key.Key_PageDown)])
            prev.setShortcuts([QKeySequence(Qt.Key.Key_PageUp)])
        if self._story_index is None:
            nxt.setEnabled(False)
            prev.setEnabled(False)

    # ------------------------------------------------------------------ files: scenes and sessions
    def ask_save_path(self, title: str, name: str, filters: str, folder_kind: str = "files") -> str:
        """A save dialog starting in the remembered folder; returns "" when cancelled."""
        path, _ = QFileDialog.getSaveFileName(self, title, str(settings.folder(folder_kind) / name), filters)
        return path

    def _ask_open_path(self, title: str, filters: str) -> str:
        path, _ = QFileDialog.getOpenFileName(self, title, str(settings.folder("files")), filters)
        return path

    @Slot()
    def _ask_open_scene(self) -> None:
        path = self._ask_open_path("Open scene", f"{SCENE_FILTER};;All files (*)")
        if path:
            self.open_scene(path)

    @Slot()
    def _ask_save_scene(self) -> None:
        path = self.ask_save_path("Save scene", f"{self.file_stem()}.toml", SCENE_FILTER)
        if path:
            self.save_scene(path if path.lower().endswith(".toml") else path + ".toml")

    @Slot()
    def _ask_open_session(self) -> None:
        path = self._ask_open_path("Open session", f"{SESSION_FILTER};;All files (*)")
        if path:
            self.open_session(path)

    @Slot()
    def _ask_save_session(self) -> None:
        path = self.ask_save_path("Save session", f"{self.file_stem()}{SESSION_SUFFIX}", SESSION_FILTER)
        if path:
            self.save_session(path if path.endswith(SESSION_SUFFIX) else path + SESSION_SUFFIX)

    def open_scene(self, path: str | os.PathLike) -> bool:
        """Build a new session from a scene file, paused at step 0. A broken file shows an error and
        the current session goes on."""
        try:
            config = files.open_scene(path)
        except ConfigError as e:
            self.show_error("Cannot open the scene", f"{e}\n\nThe current session keeps running.")
            return False
        settings.remember_file(path)
        self._build(_BuildRequest(config, f"scene {Path(path).name}", None,
                                  error_title="Cannot open the scene", start_paused=True))
        return True

    def save_scene(self, path: str | os.PathLike) -> bool:
        """Write the scene as edited (live changes included) as TOML."""
        try:
            files.save_scene(self.config, path)
        except (ConfigError, OSError) as e:
            self.show_error("Cannot save the scene", f"{e}\n\nTraining goes on.")
            return False
        settings.remember_file(path)
        self.show_message(f"Saved the scene to {path}")
        return True

    def open_session(self, path: str | os.PathLike) -> bool:
        """Open a saved session (models, optimisers, step, history), paused where it was saved.

        It loads off the GUI thread like any rebuild; a broken file shows an error and the current
        session goes on. Returns False only when ``path`` is not a file.
        """
        path = Path(path)
        if not path.is_file():
            self.show_error("Cannot open the session", f"{path}: no such session file\n\n"
                            "The current session keeps running.")
            return False
        settings.remember_file(path)
        self._build(_BuildRequest(None, f"session {path.name}", None, error_title="Cannot open the session",
                                  start_paused=True),
                    factory=lambda _config: files.open_session(path))
        return True

    def save_session(self, path: str | os.PathLike) -> bool:
        """Save config, models, optimisers, step and history. Training pauses for the write (the
        training thread stops, so no step runs while the state is read) and then goes on."""
        try:
            with self._session_held() as session:
                files.save_session(session, path)
        except (ConfigError, OSError, SessionBusy) as e:
            self.show_error("Cannot save the session", f"{e}\n\nTraining goes on.")
            return False
        settings.remember_file(path)
        self.show_message(f"Saved the session (step {self._session.step_count}) to {path}")
        return True

    # ------------------------------------------------------------------ settings and recent files
    def recent_files(self) -> list[str]:
        """Scene and session files opened or saved lately, newest first."""
        return settings.recent_files()

    @Slot()
    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
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
            self.show_error("Cannot open the last scene", f"{e}\n\nThe current session keeps running.")
            return False
        self._build(_BuildRequest(config, "the last scene", None, start_paused=True))
        return True

    def _restore_settings(self) -> None:
        store = settings.app_settings()
        geometry = store.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = store.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self.story_bar.setVisible(False)  # story mode is chosen per start, not restored

    def _save_settings(self) -> None:
        store = settings.app_settings()
        if not self._presentation and not self.isFullScreen():
            store.setValue("window/geometry", self.saveGeometry())
            store.setValue("window/state", self.saveState())
        settings.remember_last_scene(config_to_toml(self.config))
        store.sync()

    # ------------------------------------------------------------------ export
    @Slot()
    def open_export_dialog(self) -> ExportDialog:
        dialog = ExportDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def export_figure(self, path: str | os.PathLike, scale: int = 1, panel: str | None = None) -> bool:
        """Write the figure (or one panel) to PNG at ``scale``× its on-screen width, or to SVG.

        A failure (an unwritable folder, a full disk, a bad panel name) shows an error box and
        returns False; training goes on.
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
            self.show_error("Export failed", f"Could not write {path}:\n{e}\n\nTraining goes on.")
            return False
        settings.remember_folder("export", path)
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

    @Slot()
    def _ask_export_metrics(self) -> None:
        path = self.ask_save_path("Export metrics", f"{self.file_stem()}-metrics.csv", "CSV table (*.csv)", "export")
        if path:
            self.export_metrics(path if path.lower().endswith(".csv") else path + ".csv")

    def export_metrics(self, path: str | os.PathLike) -> bool:
        """Write this session's metric history as CSV: the columns of ``run --out``'s metrics.csv (run,
        step and every metric), one row per logged step and run. The rows are read with the training
        thread stopped for that moment; a failed write shows an error and training goes on."""
        path = Path(path)
        try:
            with self._session_held() as session:
                rows = session.metric_rows()
            atomic_write(path, metrics_csv(rows))
        except (OSError, ConfigError, SessionBusy) as e:  # the writer names the path and the reason
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.show_error("Export failed", f"Could not write the metrics:\n{reason}\n\nTraining goes on.")
            return False
        settings.remember_folder("export", path)
        self.show_message(f"Saved {len(rows)} metric rows to {path}")
        return True

    # ------------------------------------------------------------------ GIF recording
    @Slot()
    def open_gif_dialog(self) -> GifDialog:
        dialog = GifDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def record_gif(self, path: str | os.PathLike, frames: int = 40, every: int | None = None,
                   width: int | None = None, panel: str | None = None) -> bool:
        """Record ``frames`` frames, one every ``every`` training steps (default: the scene's steps
        spread over the frames), ``width`` px wide (default 960), of the figure or one panel.

        Training starts (or goes on); the frames come from the snapshots, drawn on an off-screen copy
        of the figure at the window figure's size, so the window may be resized meanwhile.
        ``gif_recorded(path)`` follows when the file is written, or ``error_shown`` when it fails.
        """
        if self._recorder is not None:
            self.show_error("Cannot record", "A GIF is being recorded already (File ▸ Stop Recording).")
            return False
        every = every or max(1, self._config.steps // max(1, frames))
        try:
            if panel is not None and panel not in self.figure.panel_names():
                raise ValueError(f"no panel named {panel!r} (panels: {', '.join(self.figure.panel_names())})")
            recorder = gif.GifRecorder(path, frames, every, width, panel, presentation=self._presentation,
                                       size=(self.figure.width(), self.figure.height()), parent=self)
        except (ValueError, OSError) as e:
            self.show_error("Cannot record", str(e))
            return False
        recorder.progress.connect(self._on_gif_progress)
        recorder.finished.connect(self._on_gif_finished)
        recorder.failed.connect(self._on_gif_failed)
        self._recorder = recorder
        self.action_map["stop_recording"].setEnabled(True)
        self.action_map["record_gif"].setEnabled(False)
        self._restart_worker()  # the session now yields exactly every N steps (the first one at once)
        self.show_message(f"● Recording {frames} frames, every {every} steps → {path}", timeout_ms=0)
        if self._state != "running":
            self.start()
        return True

    @Slot()
    def stop_recording(self) -> None:
        if self._cancel_recording("stopped"):
            self._restart_worker()

    def _cancel_recording(self, why: str) -> bool:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return False
        recorder.close()
        recorder.deleteLater()
        self.action_map["stop_recording"].setEnabled(False)
        self.action_map["record_gif"].setEnabled(True)
        self.show_message(f"GIF recording {why}; nothing was written")
        return True

    def _end_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
            recorder.deleteLater()
        self.action_map["stop_recording"].setEnabled(False)
        self.action_map["record_gif"].setEnabled(True)
        # back to snapshots by wall clock, once the snapshot being handled is done
        QTimer.singleShot(0, self._restart_worker)

    @Slot(int, int)
    def _on_gif_progress(self, taken: int, total: int) -> None:
        if self._recorder is not None:
            self.show_message(f"● Recording GIF: frame {taken} of {total} → {self._recorder.path.name}",
                              timeout_ms=0)

    @Slot(str, int)
    def _on_gif_finished(self, path: str, size: int) -> None:
        frames = self._recorder.frames if self._recorder is not None else 0
        self._end_recording()
        settings.remember_folder("export", path)
        self.show_message(f"Saved {path} ({frames} frames, {size / 1024:.0f} KB)")
        self.gif_recorded.emit(path)

    @Slot(str)
    def _on_gif_failed(self, message: str) -> None:
        self._end_recording()
        self.show_error("GIF recording failed", f"{message}\n\nTraining goes on.")

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self._build_token = None  # a session still being built is dropped when it arrives
        self._builder.wait()  # a constructor cannot be interrupted: let it finish
        if self._recorder is not None:
            self._cancel_recording("stopped")
        if not self._stop_worker():
            log.warning("closing while the training thread is still running")
        self._save_settings()
        if self.error_box is not None:
            self.error_box.close()
        super().closeEvent(event)
