"""GUI tests never touch the user's settings: the window's QSettings go to a temporary INI file."""
import pytest


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
        with qtbot.waitSignal(window.snapshot_shown, timeout=10_000):
            window.show()
        return window

    yield make
    for window in windows:
        window.close()
        assert window.controller.engine is None
        window.deleteLater()
    QApplication.processEvents()
