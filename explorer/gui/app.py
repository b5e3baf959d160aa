"""``run_gui(config)``: open the explorer's window, or say clearly why no window can open here.

Without a display Qt aborts the interpreter (qFatal), so the checks happen before any QApplication
exists: no DISPLAY / WAYLAND_DISPLAY on Linux, or an X11 (xcb) platform plugin that cannot load
because system libraries are missing (pitfalls.md: libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1 on
a minimal Debian). Each case prints one line on stderr and returns 2.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from explorer.core.config import Config
from explorer.core.errors import ConfigError

HEADLESS_HINT = ("the headless commands need no display (python main.py run | snr | shot ...), "
                 "or set QT_QPA_PLATFORM=offscreen to run the window off screen")
# the libraries a minimal Debian lacks most often, for when ldd is not available
_KNOWN_XCB_LIBS = ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1")


def _platform_plugin_dir() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    path = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms"
    return path if path.is_dir() else None


def debian_package(soname: str) -> str:
    """The Debian package that usually ships a shared library: libxcb-cursor.so.0 → libxcb-cursor0."""
    match = re.fullmatch(r"(lib[\w+.-]+?)\.so\.(\d+)(?:\.\d+)*", soname)
    if not match:
        return soname
    stem, version = match.groups()
    return f"{stem}{'-' if stem[-1].isdigit() else ''}{version}"


def missing_xcb_libraries() -> list[str]:
    """Shared libraries Qt's xcb platform plugin needs but cannot find (empty when it can load)."""
    plugins = _platform_plugin_dir()
    plugin = plugins / "libqxcb.so" if plugins else None
    if plugin is None or not plugin.is_file():
        return []
    ldd = shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None:
            return sorted({m.group(1) for m in re.finditer(r"^\s*(\S+)\s+=>\s+not found", out, re.M)})
    import ctypes

    missing = []
    for soname in _KNOWN_XCB_LIBS:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return missing


def _probe_platform() -> str | None:
    """Start a QGuiApplication in a subprocess (a failing platform plugin aborts its process).

    Returns Qt's complaint when it fails, else None.
    """
    code = "from PySide6.QtGui import QGuiApplication; QGuiApplication([])"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None  # slow, but not known to fail: let the real start decide
    except OSError:
        return None
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    useful = [line for line in lines if "platform" in line.lower() or "display" in line.lower()]
    return (useful or lines or [f"exit status {proc.returncode}"])[0]


def display_problem(probe: bool = True) -> str | None:
    """One line saying why no window can open here, or None when one can (as far as we can tell)."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "").strip()
    if platform and not platform.startswith("xcb"):
        return None  # offscreen, wayland, vnc ...: Qt's own choice, nothing to check
    if not platform:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            return f"no display found (DISPLAY and WAYLAND_DISPLAY are not set); {HEADLESS_HINT}."
        if os.environ.get("WAYLAND_DISPLAY"):
            return None  # Qt prefers its wayland plugin there
    missing = missing_xcb_libraries()
    if missing:
        packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
        return (f"Qt cannot load its X11 platform plugin (xcb): missing {', '.join(missing)}. "
                f"Install them (Debian/Ubuntu: sudo apt-get install {packages}); meanwhile {HEADLESS_HINT}.")
    if probe:
        complaint = _probe_platform()
        if complaint:
            return f"Qt cannot open a window here ({complaint}); {HEADLESS_HINT}."
    return None


def run_gui(config: Config, *, story: bool = False, probe: bool = True) -> int:
    """Open the explorer on ``config`` (or, with ``story``, on the story's first scene) and run until
    the window closes.

    Returns 0 after a normal close, 2 when no window can open here or the config is refused,
    1 when Qt's event loop ends with an error.
    """
    problem = display_problem(probe=probe)
    if problem:
        print(f"vae-explorer gui: {problem}", file=sys.stderr)
        return 2

    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("VAE Explorer")  # QSettings: recent files, geometry, export folder
    app.setApplicationName("vae-explorer")
    try:
        window = MainWindow(config, story=story)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    interrupted: list[bool] = []
    previous = _close_on_ctrl_c(window, interrupted)
    window.show()
    try:
        status = app.exec()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    # closeEvent stopped the training thread; free the graphics items while Qt is still up
    # (pitfalls.md: orphaned Python-owned items can abort at interpreter exit)
    window.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    del window
    if interrupted:
        return 130
    return 0 if status == 0 else 1


def _close_on_ctrl_c(window: Any, interrupted: list[bool]) -> Any:
    """Make Ctrl+C in the terminal close the window cleanly (the training thread stops).

    Qt's event loop keeps Python's signal handlers from running, so a timer wakes the interpreter
    a few times a second. Returns the previous SIGINT handler (None when not on the main thread).
    """
    from PySide6.QtCore import QTimer

    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigint(_signum: int, _frame: object) -> None:
        interrupted.append(True)
        window.close()

    previous = signal.signal(signal.SIGINT, on_sigint)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)  # GUI thread to GUI thread; running Python is the point
    timer.start(250)
    return previous
