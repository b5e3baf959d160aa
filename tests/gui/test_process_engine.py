"""The window with its session in a compute process (the default engine): it trains, applies live and
structural changes, answers requests (a saved session), reports a failed build and keeps its session,
and closing the window ends the process. A window process killed outright leaves no orphan behind.

Waits are on signals or bounded polls of the process table; nothing asserts a duration.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from window_helpers import TINY, wait_snapshot

from explorer.core.config import config_from_dict
from explorer.gui.process_engine import ProcessEngine

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def test_the_window_trains_in_a_compute_process(open_window, qtbot, tmp_path):
    window = open_window(engine_factory=ProcessEngine)
    engine = window.controller.engine
    pid = engine.pid
    assert isinstance(engine, ProcessEngine) and pid != os.getpid() and _alive(pid)
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step > 20 and not s.paused)

    builds = window.controller.builds
    window.edit("runs.1.k", 16)  # live: the process applies it, no new session
    wait_snapshot(qtbot, window, lambda s: s.runs[1].k == 16)
    assert window.controller.builds == builds

    with qtbot.waitSignal(window.files.session_saved, timeout=60_000):  # written by the process
        window.files.save_session(tmp_path / "s.vaesession")
    assert (tmp_path / "s.vaesession").stat().st_size > 0

    with qtbot.waitSignal(window.session_rebuilt, timeout=30_000):  # structural: built in the process
        window.edit("problem.name", "ring")
    wait_snapshot(qtbot, window, lambda s: s.problem == "ring")
    assert window.controller.engine.pid == pid  # the same process built it

    window.close()
    assert window.controller.engine is None and not _alive(pid)


def test_a_failed_build_in_the_process_keeps_the_session(open_window, qtbot, tmp_path):
    window = open_window(engine_factory=ProcessEngine)
    window.controller.start()
    wait_snapshot(qtbot, window, lambda s: s.step > 5)
    broken = tmp_path / "broken.vaesession"
    broken.write_bytes(b"not a session")
    builds = window.controller.builds
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as error:
        window.files.open_session(broken)
    assert "not a VAE Explorer session file" in error.args[0]
    assert window.controller.builds == builds and window.controller.engine.is_running
    window.controller.start()
    step = window.last_snapshot.step
    wait_snapshot(qtbot, window, lambda s: s.step > step)


def test_a_killed_window_process_leaves_no_compute_process_behind(tmp_path):
    script = tmp_path / "window.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtWidgets import QApplication
        from PySide6.QtCore import QTimer
        from explorer.core.config import config_from_dict
        from explorer.gui.process_engine import ProcessEngine

        def main():
            app = QApplication([])
            engine = ProcessEngine()
            engine.start()
            engine.send("build", config=config_from_dict({TINY!r}), reason="test", tag=None)
            engine.send("resume")

            def first(_snapshot):
                print(engine.pid, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind

            engine.snapshot_ready.connect(first)
            app.exec()

        if __name__ == "__main__":
            main()
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == -9, proc.stderr
    child = int(proc.stdout.split()[0])
    deadline = 200  # bounded poll (up to ~20 s on a busy machine): the child notices and exits
    while _alive(child) and deadline:
        subprocess.run(["sleep", "0.1"])
        deadline -= 1
    assert not _alive(child)


def test_stop_ends_the_process_while_it_trains(qtbot):
    engine = ProcessEngine()
    engine.start()
    engine.send("build", config=config_from_dict(TINY), reason="test", tag=None)
    engine.send("resume")
    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000):
        pass
    pid = engine.pid
    engine.stop(timeout_s=5.0)
    assert not engine.is_running and not _alive(pid)
