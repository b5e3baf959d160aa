"""The main window: layout and wiring. The Figure in the middle, the controls in a left dock, a status bar.

Who does what:

- :class:`~explorer.gui.controller.SessionController` owns the session (which runs in an engine, on its
  own thread), the one current config and the play state; the window never touches the Session;
- :class:`~explorer.gui.controls.ControlPanel` renders the controller's config and sends edits;
- :class:`~explorer.gui.file_actions.FileActions`: scenes, sessions, metrics CSV, figure exports, recent
  files; :class:`~explorer.gui.recording.Recording`: GIFs; :class:`~explorer.gui.story_ui.StoryMode`:
  the story; :class:`~explorer.gui.status.Messages`: the status bar and error boxes;
  :mod:`~explorer.gui.menus`: actions and menus.

Signals for scripts and tests: ``snapshot_shown(step)`` after each snapshot is drawn,
``state_changed("running" | "paused")``, ``session_rebuilt(reason)``, ``error_shown(message)``,
``story_changed(index)`` (-1 when leaving the story) and ``gif_recorded(path)``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import QByteArray, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core import story
from explorer.core.config import Config
from explorer.core.errors import ConfigError
from explorer.core.snapshot import Snapshot

from . import settings
from .controller import BuildTag, SessionController
from .controls import ControlPanel
from .dialogs import GifChoice, GifDialog
from .figure import Figure
from .file_actions import FileActions
from .menus import ActionSpec, build_actions, build_menus
from .recording import Recording
from .slow_step import SlowStep
from .status import Messages
from .story_ui import StoryMode

log = logging.getLogger(__name__)

SNAPSHOT_HZ = 30.0
DOCK_MIN_WIDTH = 290  # wide enough for the preset titles; the figure gets the rest


class MainWindow(QMainWindow):
    """VAE Explorer's window. ``MainWindow(config)`` builds a Session (in its engine), paused.

    ``story=True`` opens the story instead: its first scene's config is built in place of ``config``,
    with the caption shown above the figure. ``engine_factory``: where the session runs (default: a
    compute process, or a thread with ``VAE_EXPLORER_ENGINE=thread``; see gui/controller.py).
    """

    snapshot_shown = Signal(int)
    state_changed = Signal(str)
    session_rebuilt = Signal(str)
    error_shown = Signal(str)
    story_changed = Signal(int)
    gif_recorded = Signal(str)

    def __init__(self, config: Config, *, preset: str | None = None, hz: float = SNAPSHOT_HZ,
                 engine_factory: Callable[..., Any] | None = None, story: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._presentation = False
        self._dock_shown = True
        self._last_snapshot: Snapshot | None = None
        tag = BuildTag(preset=preset)
        if story:
            try:
                config, tag = _story_start()
            except (ConfigError, LookupError) as e:
                log.warning("story mode is not available: %s", e)
        # bad input (a device that is not here) raises here, before any window shows
        self.controller = SessionController(config, preset=preset, hz=hz, engine_factory=engine_factory,
                                            tag=tag, parent=self)
        self._build_central()
        self.messages = Messages(self.statusBar(), self)
        self.files = FileActions(self.controller, self.figure, self.messages, self)
        self.recording = Recording(self.controller, self.messages, self)
        self.story = StoryMode(self.controller, self.messages, self)
        self.slow_step = SlowStep(self.controller, self.figure, self.messages, parent=self)
        self._build_dock()
        self._build_actions()
        self._wire()
        self._show_scene_text(config)
        self._fit_to_screen(1500, 950)
        self._restore_settings()
        if tag.story is not None:
            self.story.show_caption(tag.story)
            self.messages.show_message("Story: Page Down / Page Up (or → / ← in presentation mode) move "
                                       "between scenes; Space trains", timeout_ms=0)
        else:
            self.messages.show_message("Paused: press Space (or Start) to train, S to step one step", timeout_ms=0)

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
        # the scene title is the figure's own caption (so it is in every export too); the description
        # sits above the figure, beside a button that folds it away
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
        head.addWidget(self.about_toggle, 0, Qt.AlignmentFlag.AlignTop)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description.setFrameShape(QFrame.Shape.StyledPanel)
        self.description.setContentsMargins(6, 3, 6, 3)
        self.description.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        head.addWidget(self.description, 1)
        layout.addLayout(head)
        self._central_layout = layout
        self.figure = Figure()
        layout.addWidget(self.figure, 1)
        self.setCentralWidget(central)

    def _build_dock(self) -> None:
        self.centralWidget().layout().insertWidget(1, self.story.caption)  # the story's caption, large
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
                              | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                              | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        scroll.setMinimumWidth(max(DOCK_MIN_WIDTH, self.controls.minimumSizeHint().width()
                                   + scroll.verticalScrollBar().sizeHint().width()))
        self.controls.set_config(self.controller.config, "", self.controller.preset)
        self.controls.setEnabled(False)  # until the first session is built

    def _build_actions(self) -> None:
        c, f, r = self.controller, self.files, self.recording
        self.action_map = build_actions(self, [
            ActionSpec("open_scene", "Open Scene…", f.ask_open_scene, "Ctrl+O", "Open a scene (TOML config)"),
            ActionSpec("save_scene", "Save Scene…", f.ask_save_scene, "Ctrl+Shift+S",
                       "Save the scene as edited, live changes included, as TOML"),
            ActionSpec("open_session", "Open Session…", f.ask_open_session, "Ctrl+Shift+O",
                       "Open a saved session: the models, optimisers and step, as they were"),
            ActionSpec("save_session", "Save Session…", f.ask_save_session, None,
                       "Save the session: config, models, optimisers, step and metric history"),
            ActionSpec("export_figure", "Export Figure…", f.open_export_dialog, "Ctrl+S",
                       "The whole figure or one panel as PNG (1×, 2×, 4×) or SVG"),
            ActionSpec("copy_figure", "Copy Figure", f.copy_figure, None, "Copy the figure to the clipboard"),
            ActionSpec("export_metrics", "Export Metrics CSV…", f.ask_export_metrics, None,
                       "The metric history of this session, with the columns of `run --out`'s metrics.csv"),
            ActionSpec("record_gif", "Record GIF…", self.open_gif_dialog, "Ctrl+G",
                       "Record an animated GIF of training for slides"),
            ActionSpec("stop_recording", "Stop Recording", r.stop, None, "Stop the GIF recording; write nothing"),
            ActionSpec("quit", "Quit", self.close, "Ctrl+Q"),
            ActionSpec("start_pause", "Start / Pause", c.toggle, "Space"),
            ActionSpec("step", "Step", c.step, "S", "One training step"),
            ActionSpec("step_slowly", "One Step, Slowly", self.slow_step.start, "Shift+S",
                       "One training step in four stages: particles, weights, gradient arrows, update"),
            ActionSpec("reset", "Reset", self.reset, "R", "Back to step 0 with the same seed"),
            ActionSpec("fast_forward", "Train N Steps Without Drawing…", self.ask_fast_forward, "Ctrl+T",
                       "Train a long scene fast: no frames until the steps are done (Pause stops it)"),
            ActionSpec("reseed", "Reseed", self.reseed, None, "Back to step 0 with a new seed"),
            ActionSpec("presentation", "Presentation Mode", self.set_presentation, "P",
                       "Large fonts and lines; controls, menus and status bar hidden", checkable=True),
            ActionSpec("fullscreen", "Full Screen", self._set_fullscreen, "F", checkable=True),
            ActionSpec("leave_modes", "Leave Presentation / Full Screen", self.leave_modes, "Escape"),
            ActionSpec("reset_views", "Reset Views", self.figure.reset_views, "0",
                       "Undo zooms: every panel back to its own range (a double-click resets one panel; R too)"),
            ActionSpec("gradients", "Gradient Histograms", lambda on: self.edit("view.gradients", on), "H",
                       "The SNR probe's gradient estimates of one encoder and one decoder parameter, per run",
                       checkable=True),
            ActionSpec("gradient_parameters", "Histogram Parameters…", self.choose_gradient_parameters, None,
                       "Which encoder and decoder parameter the histograms show (NAME or NAME[i])"),
            ActionSpec("freeze_gradients", "Freeze Histogram Axes", self.figure.set_gradients_frozen, None,
                       "Keep the histograms' axes where they are (for animations)", checkable=True),
            ActionSpec("arrows", "Gradient Arrows", lambda on: self.edit("view.arrows", on), "G",
                       "Each particle's share of the encoder's gradient w.r.t. q's mean, and their sum",
                       checkable=True),
            ActionSpec("q_star", "Per-x Optimum q*", lambda on: self.edit("view.q_star", on), "Q",
                       "Fit the best q for the shown x alone (dashed) and split the bound's gap into the "
                       "approximation and amortisation gaps", checkable=True),
            ActionSpec("controls", "Controls", self._set_dock_shown, None, "Show or hide the controls",
                       checkable=True),
            ActionSpec("about", "Scene Description", self.about_toggle.setChecked, None, checkable=True),
        ])
        self.action_map["stop_recording"].setEnabled(False)
        self.action_map["about"].setChecked(True)
        self.action_map["controls"].setChecked(True)
        self.story_toggle = self.story.toggle_action
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(lambda: self.files.fill_recent_menu(self.recent_menu))
        self.menus = build_menus(self, self.action_map, self.recent_menu, self.story.fill_menu)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.story.toolbar)

    def _wire(self) -> None:
        c = self.controller
        c.snapshot.connect(self._on_snapshot)
        c.state_changed.connect(self._on_state)
        c.config_changed.connect(self._on_config)
        c.building.connect(self._on_building)
        c.rebuilt.connect(self._on_rebuilt)
        c.build_failed.connect(self._on_build_failed)
        c.failed.connect(self._on_failed)
        c.refused.connect(lambda text: self.messages.show_message(f"Refused: {text}"))
        c.notice.connect(self.messages.show_message)
        self.messages.error_shown.connect(self.error_shown)
        self.story.changed.connect(self._on_story_changed)
        self.recording.recorded.connect(self.gif_recorded)
        self.recording.changed.connect(self._on_recording)
        self.figure.observation_clicked.connect(self.set_observation)
        self.figure.observation_moved.connect(self.move_observation)
        self.about_toggle.toggled.connect(self._on_about_toggled)
        self.about_toggle.toggled.connect(self.action_map["about"].setChecked)
        self.dock.visibilityChanged.connect(self._on_dock_visibility)
        k = self.controls
        k.start_pause_clicked.connect(c.toggle)
        k.step_clicked.connect(c.step)
        k.reset_clicked.connect(self.reset)
        k.reseed_clicked.connect(self.reseed)
        k.speed_changed.connect(c.set_speed)
        k.edited.connect(self.edit)
        k.add_run_clicked.connect(lambda: self._guarded(c.add_run))
        k.remove_run_clicked.connect(lambda i: self._guarded(c.remove_run, i))
        k.preset_chosen.connect(self.load_preset)
        k.refused.connect(lambda reason: self.messages.show_message(f"Refused: {reason}"))

    # ------------------------------------------------------------------ read-only views
    @property
    def state(self) -> str:
        """"running" or "paused": what the window last asked the session to do."""
        return self.controller.state

    @property
    def config(self) -> Config:
        """The scene as it runs, live changes included."""
        return self.controller.config

    @property
    def last_snapshot(self) -> Snapshot | None:
        return self._last_snapshot

    @property
    def presentation(self) -> bool:
        return self._presentation

    def caption_text(self) -> str:
        """The scene title, which the figure shows as its caption."""
        return self.controller.config.title

    # ------------------------------------------------------------------ requests from the UI
    def _guarded(self, change: Callable[..., Any], *args: Any) -> bool:
        """Apply a change; a refused one shows why, the controls show the scene that runs again."""
        try:
            change(*args)
        except ConfigError as e:
            self.controls.set_config(self.controller.config, self.controller.device, self.controller.preset)
            self.messages.show_error("Cannot apply this change", f"{e}\n\nThe current session keeps running.")
            return False
        return True

    @Slot(str, object)
    def edit(self, key: str, value: Any) -> bool:
        """Set one dotted config key (live keys apply at the next step; others rebuild the session)."""
        return self._guarded(self.controller.edit, key, value)

    @Slot()
    def choose_gradient_parameters(self) -> None:
        """Ask which encoder, then which decoder parameter the histograms show (from the next probe on); an
        unknown name is refused in the status bar, which lists the names there are."""
        view = self.controller.config.view
        for key, current, what in (("view.gradients_encoder", view.gradients_encoder, "Encoder"),
                                   ("view.gradients_decoder", view.gradients_decoder, "Decoder")):
            text, ok = QInputDialog.getText(self, "Histogram Parameters",
                                            f"{what} parameter, NAME or NAME[i] (empty: the default):", text=current)
            if not ok:
                return
            if text.strip() != current and not self.edit(key, text.strip()):
                return

    @Slot(str)
    def load_preset(self, name: str) -> bool:
        if self._guarded(self.controller.load_preset, name):
            return True
        return False

    @Slot(int)
    def set_observation(self, index: int) -> None:
        if 0 <= index < self.controller.config.problem.n_data:
            self.edit("problem.observation", index)

    @Slot(object)
    def move_observation(self, point: tuple[float, ...]) -> None:
        """Show a free point of x-space (the data panel's x-pad); moves are coalesced by the controller."""
        self.edit("problem.x_obs", list(point))

    @Slot()
    def ask_fast_forward(self) -> None:
        """Ask how many steps, then train them without drawing (controller.fast_forward)."""
        from PySide6.QtWidgets import QInputDialog

        n, ok = QInputDialog.getInt(self, "Train without drawing", "Steps:", 1000, 1, 10_000_000, 100)
        if ok:
            self.controller.fast_forward(n)

    def reset(self) -> None:
        self.controller.reset()
        self.figure.reset_views()
        self.messages.show_message("Reset to step 0 (same seed)")

    @Slot()
    def reseed(self, seed: int | None = None) -> None:
        """Back to step 0 with a new seed, shown in the seed box so the scene can be repeated."""
        seed = self.controller.reseed(seed)
        self.messages.show_message(f"Reseeded: seed {seed}")

    @Slot()
    def open_gif_dialog(self) -> GifDialog:
        dialog = GifDialog(self.figure.panel_names(), self.controller.config.steps, self)
        dialog.chosen.connect(self._on_gif_chosen)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    @Slot(object)
    def _on_gif_chosen(self, choice: GifChoice) -> None:
        from .dialogs import slug

        name = self.files.file_stem() + (f"-{slug(choice.panel)}" if choice.panel else "") + ".gif"
        path = self.files.ask_save_path("Record GIF", name, "GIF animation (*.gif)", "export")
        if path:
            self.record_gif(path if path.lower().endswith(".gif") else path + ".gif", frames=choice.frames,
                            every=choice.every, width=choice.width, panel=choice.panel)

    def record_gif(self, path: str, frames: int = 40, every: int | None = None, width: int | None = None,
                   panel: str | None = None) -> bool:
        return self.recording.start(path, self.figure, frames, every, width, panel, presentation=self._presentation)

    # ------------------------------------------------------------------ the controller's news
    @Slot(object)
    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self._last_snapshot = snapshot
        self.figure.update_snapshot(snapshot)
        self.messages.show_snapshot(snapshot)
        if self.controller.state != "running":
            self._set_start_text()
        self.snapshot_shown.emit(snapshot.step)

    def _set_start_text(self) -> None:
        """Paused part-way (the scene's steps reached, or the user paused): the Start button says Continue."""
        button = self.controls.start_pause
        step = self._last_snapshot.step if self._last_snapshot is not None else 0
        if self.controller.state == "running":
            return
        text = "Continue" if step > 0 else "Start"
        if button.text() != text:
            button.setText(text)

    @Slot(str)
    def _on_state(self, state: str) -> None:
        self.controls.set_state(state)
        self._set_start_text()
        if state == "running" and self.messages.message_text().startswith(("Paused:", "Story:")):
            self.messages.show_message("")
        self.state_changed.emit(state)

    @Slot(object)
    def _on_config(self, config: Config) -> None:
        self.controls.set_config(config, self.controller.device, self.controller.preset)
        for name, on in (("gradients", config.view.gradients), ("arrows", config.view.arrows),
                         ("q_star", config.view.q_star)):
            action = self.action_map[name]
            if action.isChecked() != on:
                action.blockSignals(True)
                action.setChecked(on)
                action.blockSignals(False)

    @Slot(str)
    def _on_building(self, reason: str) -> None:
        self.controls.setEnabled(False)
        self.messages.show_message(f"Building a new session ({reason})…", timeout_ms=0)

    @Slot(str, object)
    def _on_rebuilt(self, reason: str, _tag: Any) -> None:
        if not self.controller.is_building:
            self.controls.setEnabled(True)
        self._show_scene_text(self.controller.config)
        self.messages.show_device(self.controller.device)
        if reason != "opened":
            self.messages.show_message(f"New session: {reason}")
        self.session_rebuilt.emit(reason)

    @Slot(str, str, object)
    def _on_build_failed(self, title: str, message: str, _tag: Any) -> None:
        if not self.controller.is_building:
            self.controls.setEnabled(True)
        self.messages.show_error(title, f"{message}\n\nThe current session keeps running.")

    @Slot(str, str)
    def _on_failed(self, head: str, details: str) -> None:
        """Training raised: say which run and why, with the traceback in the details."""
        self.messages.show_error("Training stopped", f"{head}\n\nTraining has stopped (all runs train in "
                                 "lockstep). Press Reset (R) to start again from step 0, or change a setting.",
                                 details=details)

    @Slot(int)
    def _on_story_changed(self, index: int) -> None:
        self._update_chrome()
        self.story_changed.emit(index)

    @Slot(bool)
    def _on_recording(self, on: bool) -> None:
        self.action_map["stop_recording"].setEnabled(on)
        self.action_map["record_gif"].setEnabled(not on)

    # ------------------------------------------------------------------ scene text and modes
    def _show_scene_text(self, config: Config) -> None:
        self.setWindowTitle(f"VAE Explorer — {config.title}")
        self.description.setText(config.description)
        self._update_chrome()

    def _update_chrome(self) -> None:
        """Which parts of the window show, from presentation mode, story mode and the about toggle."""
        story_on = self.story.active
        plain = not self._presentation
        has_text = bool(self.description.text())
        self.about_toggle.setVisible(plain and has_text and not story_on)
        self.description.setVisible(plain and has_text and not story_on and self.about_toggle.isChecked())
        self.story.caption.setVisible(story_on)
        self.story.toolbar.setVisible(story_on and plain)
        self.statusBar().setVisible(plain)
        self.menuBar().setVisible(plain)

    @Slot(bool)
    def _on_about_toggled(self, shown: bool) -> None:
        self.about_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self._update_chrome()

    @Slot(bool)
    def _set_dock_shown(self, shown: bool) -> None:
        self._dock_shown = shown
        self.dock.setVisible(shown and not self._presentation)

    @Slot(bool)
    def _on_dock_visibility(self, visible: bool) -> None:
        if not self._presentation and not self.isMinimized():
            action = self.action_map["controls"]
            action.blockSignals(True)
            action.setChecked(visible)
            action.blockSignals(False)
            self._dock_shown = visible

    @Slot(bool)
    def set_presentation(self, on: bool) -> None:
        """Talk mode: large fonts and lines in the figure; controls, menus, status and description hidden.
        The figure's caption (the scene title) and, in story mode, the story caption stay; ← and → move
        between story scenes."""
        on = bool(on)
        if on != self._presentation:
            shown = self._dock_shown
            self._presentation = on
            self.dock.setVisible(not on and shown)
            self._dock_shown = shown
        self.figure.set_presentation(on)
        action = self.action_map["presentation"]
        action.blockSignals(True)
        action.setChecked(on)
        action.blockSignals(False)
        self.story.set_presentation(on)
        self._update_chrome()

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

    # ------------------------------------------------------------------ settings and closing
    def _restore_settings(self) -> None:
        store = settings.app_settings()
        geometry = store.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = store.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self.story.toolbar.setVisible(self.story.active)  # story mode is chosen per start, not restored

    def _save_settings(self) -> None:
        store = settings.app_settings()
        if not self._presentation and not self.isFullScreen():
            store.setValue("window/geometry", self.saveGeometry())
            store.setValue("window/state", self.saveState())
        self.files.remember_last_scene()
        store.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.recording.cancel("stopped")
        if not self.controller.close():
            log.warning("closing while the training thread is still running")
        self._save_settings()
        self.messages.close()
        super().closeEvent(event)


def _story_start() -> tuple[Config, BuildTag]:
    """The story's first scene and the tag that shows its caption."""
    return story.story_config(0), BuildTag(story=0, error_title="Cannot show this scene")
