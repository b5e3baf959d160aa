"""The window's actions (with their shortcuts) and its menus: File, Training, View and Story.

Every action is added to the window itself too, so its shortcut works with the menu bar hidden
(presentation mode). ``build_actions`` returns them by name; ``build_menus`` lays them out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    slot: Callable[..., Any]
    shortcut: str | None = None
    tip: str = ""
    checkable: bool = False


def build_actions(window: QMainWindow, specs: list[ActionSpec]) -> dict[str, QAction]:
    actions: dict[str, QAction] = {}
    for spec in specs:
        action = QAction(spec.text, window)
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if spec.tip:
            action.setStatusTip(spec.tip)
            action.setToolTip(spec.tip)
        action.setCheckable(spec.checkable)
        if spec.checkable:
            action.toggled.connect(spec.slot)
        else:  # triggered(bool) would land in the slot's first parameter (step(n), reseed(seed))
            action.triggered.connect(lambda _checked=False, slot=spec.slot: slot())
        window.addAction(action)
        actions[spec.name] = action
    return actions


def build_menus(window: QMainWindow, actions: dict[str, QAction], recent: QMenu,
                fill_story: Callable[[QMenu], None]) -> dict[str, QMenu]:
    bar = window.menuBar()
    menus: dict[str, QMenu] = {}

    def add(menu: QMenu, names: tuple[str, ...]) -> None:
        for name in names:
            menu.addSeparator() if name == "-" else menu.addAction(actions[name])

    file_menu = menus["file"] = bar.addMenu("&File")
    add(file_menu, ("open_scene", "save_scene"))
    file_menu.addMenu(recent)
    add(file_menu, ("-", "open_session", "save_session", "-", "export_figure", "copy_figure", "export_metrics",
                    "record_gif", "stop_recording", "-", "quit"))
    add(bar.addMenu("&Training"), ("start_pause", "step", "step_slowly", "fast_forward", "reset", "reseed"))
    view = menus["view"] = bar.addMenu("&View")
    add(view, ("presentation", "fullscreen", "leave_modes", "-", "reset_views", "-", "gradients",
               "gradient_parameters", "freeze_gradients", "arrows", "q_star", "-", "controls", "about"))
    menus["training"] = bar.actions()[1].menu()
    story = menus["story"] = bar.addMenu("&Story")
    fill_story(story)
    return menus
