"""Story mode in the window: the paper's argument scene by scene (``explorer.core.story``), each a new
session paused at step 0 with its caption above the figure. Page Down / Page Up (what presentation
clickers send) move between scenes; in presentation mode → / ← too.

``StoryMode`` owns the caption, the story toolbar and the Story menu's actions; it asks the controller
for each scene's session and follows the controller's ``rebuilt`` / ``build_failed`` to keep the
caption on the scene that actually runs.
"""
from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QSizePolicy, QToolBar, QWidget

from explorer.core import story
from explorer.core.errors import ConfigError

from . import theme
from .controller import BuildTag, SessionController
from .status import Messages


class StoryMode(QObject):
    """Signals: ``changed(index)`` when the scene shown changes (-1 when leaving the story)."""

    changed = Signal(int)

    def __init__(self, controller: SessionController, messages: Messages, window: QWidget) -> None:
        super().__init__(window)
        self._controller = controller
        self._messages = messages
        self._presentation = False
        self.index: int | None = None  # the scene whose caption shows
        self._running: int | None = None  # the scene the running session was built from
        self.scenes = story.STORY

        self.caption = QLabel()
        self.caption.setObjectName("storyCaption")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        self.caption.setVisible(False)
        self._style_caption()

        self.toggle_action = self._action(window, "Story Mode", "Step through the paper's argument, one scene at a time")
        self.toggle_action.setCheckable(True)
        self.toggle_action.toggled.connect(self._on_toggled)
        self.next_action = self._action(window, "Next Scene", "The next scene of the story")
        self.next_action.triggered.connect(self.next)
        self.next_action.setIconText("Next ▶")
        self.previous_action = self._action(window, "Previous Scene", "The previous scene of the story")
        self.previous_action.triggered.connect(self.previous)
        self.previous_action.setIconText("◀ Previous")
        self._group = QActionGroup(self)
        self.scene_actions: list[QAction] = []
        for i, scene in enumerate(self.scenes):
            numbered = scene.title.startswith(str(i + 1))  # the story's titles carry their number
            action = QAction(scene.title if numbered else f"{i + 1}. {scene.title}", window)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, i=i: self.show_scene(i))
            self._group.addAction(action)
            self.scene_actions.append(action)

        self.toolbar = QToolBar("Story", window)
        self.toolbar.setObjectName("story")
        self.toolbar.setMovable(False)
        self.toolbar.addAction(self.previous_action)
        self.label = QLabel()
        self.label.setContentsMargins(10, 0, 10, 0)
        self.toolbar.addWidget(self.label)
        self.toolbar.addAction(self.next_action)
        self.toolbar.addSeparator()
        leave = QAction("Leave Story", window)
        leave.triggered.connect(self.leave)
        self.toolbar.addAction(leave)
        self.toolbar.setVisible(False)
        self._update_keys()

        controller.rebuilt.connect(self._on_rebuilt)
        controller.build_failed.connect(self._on_build_failed)

    @staticmethod
    def _action(window: QWidget, text: str, tip: str) -> QAction:
        action = QAction(text, window)
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        window.addAction(action)  # its shortcut works with the menu bar hidden (presentation mode)
        return action

    def fill_menu(self, menu: QMenu) -> None:
        for action in (self.toggle_action, self.next_action, self.previous_action):
            menu.addAction(action)
        menu.addSeparator()
        for action in self.scene_actions:
            menu.addAction(action)

    @property
    def active(self) -> bool:
        return self.index is not None

    def caption_text(self) -> str:
        return self.caption.text()

    # ------------------------------------------------------------------ moving between scenes
    @Slot()
    def start(self) -> bool:
        return self.show_scene(self.index or 0)

    @Slot(int)
    def show_scene(self, index: int) -> bool:
        """Load scene ``index``: a new session from its config, paused at step 0, its caption shown.
        Returns False when there is no such scene or its config is refused."""
        if not 0 <= index < len(self.scenes):
            return False
        try:
            config = story.story_config(index)
        except ConfigError as e:
            self._messages.show_error("Cannot show this scene", str(e))
            return False
        self._enter(index)  # the caption changes at once; the session follows
        # preset None: a scene is a preset with overrides, so the preset box says "(custom)"
        self._controller.rebuild(config, f"story scene {index + 1}: {self.scenes[index].title}",
                                 BuildTag(story=index, error_title="Cannot show this scene"), paused=True)
        return True

    @Slot()
    def next(self) -> bool:
        return self.index is not None and self.show_scene(self.index + 1)

    @Slot()
    def previous(self) -> bool:
        return self.index is not None and self.show_scene(self.index - 1)

    @Slot()
    def leave(self) -> None:
        """Back to the explorer: the scene shown stays, its caption goes."""
        if self.index is None:
            return
        self._running = None
        self._leave()

    def show_caption(self, index: int) -> None:
        """Show scene ``index``'s caption now (its session is being built)."""
        self._running = index
        self._enter(index)

    # ------------------------------------------------------------------ following the controller
    @Slot(str, object)
    def _on_rebuilt(self, _reason: str, tag: Any) -> None:
        self._running = tag.story
        if tag.story is None and self.index is not None:
            self._leave()
        elif tag.story is not None:
            self._enter(tag.story)

    @Slot(str, str, object)
    def _on_build_failed(self, _title: str, _message: str, _tag: Any) -> None:
        if self.index != self._running:  # the caption of the scene still running
            self._leave() if self._running is None else self._enter(self._running)

    @Slot(bool)
    def _on_toggled(self, on: bool) -> None:
        if on and self.index is None:
            if not self.start():
                self._check(False)
        elif not on and self.index is not None:
            self.leave()

    def _check(self, on: bool) -> None:
        self.toggle_action.blockSignals(True)
        self.toggle_action.setChecked(on)
        self.toggle_action.blockSignals(False)

    def _enter(self, index: int) -> None:
        scene, n = self.scenes[index], len(self.scenes)
        changed = index != self.index
        self.index = index
        # the figure's own caption carries the scene title; this box says where we are and why
        self.caption.setText(
            f"<div style='color:{theme.MUTED}; font-size:small;'>Story · scene {index + 1} of {n}</div>"
            f"<div style='margin-top:3px;'>{html.escape(scene.caption)}</div>")
        self.label.setText(f"Scene {index + 1} of {n}")
        self.previous_action.setEnabled(index > 0)
        self.next_action.setEnabled(index < n - 1)
        self.scene_actions[index].setChecked(True)
        self._check(True)
        if changed:
            self.changed.emit(index)

    def _leave(self) -> None:
        self.index = None
        checked = self._group.checkedAction()
        if checked is not None:
            self._group.setExclusive(False)
            checked.setChecked(False)
            self._group.setExclusive(True)
        self.previous_action.setEnabled(False)
        self.next_action.setEnabled(False)
        self._check(False)
        self.changed.emit(-1)

    # ------------------------------------------------------------------ presentation
    def set_presentation(self, on: bool) -> None:
        self._presentation = on
        self._style_caption()
        self._update_keys()

    def _style_caption(self) -> None:
        size = 22 if self._presentation else 15
        self.caption.setStyleSheet(
            f"QLabel#storyCaption {{ background: #F3F6FA; color: {theme.FOREGROUND}; "
            f"border-left: 6px solid {theme.run_color(0)}; padding: 8px 14px; font-size: {size}px; }}")

    def _update_keys(self) -> None:
        """Page Down / Page Up always; → / ← in presentation mode, where no control needs them."""
        nxt, prev = self.next_action, self.previous_action
        if self._presentation:
            nxt.setShortcuts([QKeySequence(Qt.Key.Key_Right), QKeySequence(Qt.Key.Key_PageDown)])
            prev.setShortcuts([QKeySequence(Qt.Key.Key_Left), QKeySequence(Qt.Key.Key_PageUp)])
        else:
            nxt.setShortcuts([QKeySequence(Qt.Key.Key_PageDown)])
            prev.setShortcuts([QKeySequence(Qt.Key.Key_PageUp)])
        if self.index is None:
            nxt.setEnabled(False)
            prev.setEnabled(False)
