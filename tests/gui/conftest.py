"""GUI tests never touch the user's settings (the window's QSettings go to a temporary INI file), and
leave no widget for the interpreter's teardown to destroy.
"""
import pytest


@pytest.fixture(autouse=True)
def delete_deferred(qapp):
    """After each test, run the deletes that ``deleteLater()`` queued. ``processEvents()`` alone never
    runs them outside an event loop, so closed windows stayed alive until the interpreter's teardown,
    which destroyed their graphics items in no set order and crashed the test process (exit 139 after
    every test had passed)."""
    yield
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


@pytest.fixture(autouse=True)
def thread_engine(monkeypatch):
    """Window tests run the session on a thread of the test's process (fast to start, and a test may
    patch the Session); test_process_engine.py runs the compute process itself."""
    monkeypatch.setenv("VAE_EXPLORER_ENGINE", "thread")


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("VAE_EXPLORER_SETTINGS", str(path))  # explorer.gui.settings.SETTINGS_ENV
    return path


@pytest.fixture
def open_window(qtbot):
    """Build, show and (at the end) close windows; wait for their first snapshot.

    ``open_window(config=None, **kwargs)``: ``config`` defaults to the tiny scene; kwargs go to
    MainWindow.
    """
    from PySide6.QtWidgets import QApplication

    from explorer.core.config import config_from_dict
    from explorer.gui.main_window import MainWindow
    from window_helpers import TINY

    windows = []

    def make(config=None, **kwargs):
        window = MainWindow(config or config_from_dict(TINY), **kwargs)
        windows.append(window)
        with qtbot.waitSignal(window.snapshot_shown, timeout=60_000):
            window.show()
        return window

    yield make
    for window in windows:
        window.close()
        assert window.controller.engine is None
        window.deleteLater()
    QApplication.processEvents()


@pytest.fixture
def figure(qtbot):
    """A bare Figure at 1400×900 (a module may define its own, e.g. one already showing a snapshot)."""
    from explorer.gui.figure import Figure

    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1400, 900)
    yield fig
    fig.close()
