"""What the app remembers between runs, in QSettings ("VAE Explorer", "vae-explorer"): recent scene and
session files, the last scene at exit (as TOML), the folders files and exports went to, and the window's
geometry. ``$VAE_EXPLORER_SETTINGS`` (an INI file path) replaces the user's store: tests point it at a
temporary file so they never touch real settings.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

SETTINGS_ENV = "VAE_EXPLORER_SETTINGS"
RECENT_MAX = 8
_RECENT = "recent/files"
_LAST_SCENE = "recent/last_scene"
_FOLDERS = {"export": "export/folder", "files": "files/folder"}


def app_settings() -> QSettings:
    """The app's QSettings; ``$VAE_EXPLORER_SETTINGS`` (an INI file path) replaces the user's store."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("VAE Explorer", "vae-explorer")


def recent_files() -> list[str]:
    """Scene and session files opened or saved lately, newest first (absolute paths)."""
    value = app_settings().value(_RECENT, [])
    if isinstance(value, str):  # an INI file gives a one-element list back as a plain string
        value = [value]
    return [str(v) for v in (value or [])]


def remember_file(path: str | os.PathLike) -> None:
    """Put ``path`` first in the recent files; its folder becomes the one file dialogs open in."""
    resolved = str(Path(path).resolve())
    app_settings().setValue(_RECENT, [resolved, *(p for p in recent_files() if p != resolved)][:RECENT_MAX])
    remember_folder("files", resolved)


def forget_file(path: str) -> None:
    app_settings().setValue(_RECENT, [p for p in recent_files() if p != path])


def clear_recent_files() -> None:
    app_settings().remove(_RECENT)


def folder(kind: str) -> Path:
    """The folder "export" (figures, CSV, GIFs) or "files" (scenes, sessions) dialogs start in."""
    value = str(app_settings().value(_FOLDERS[kind], "") or "")
    return Path(value) if value and Path(value).is_dir() else Path.cwd()


def remember_folder(kind: str, path: str | os.PathLike) -> None:
    """Remember the folder of the file at ``path`` for the next dialog of this kind."""
    app_settings().setValue(_FOLDERS[kind], str(Path(path).resolve().parent))


def last_scene() -> str:
    """The TOML of the scene shown when the window last closed ("" when none)."""
    return str(app_settings().value(_LAST_SCENE, "") or "")


def remember_last_scene(toml: str) -> None:
    app_settings().setValue(_LAST_SCENE, toml)
