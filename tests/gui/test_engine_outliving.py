"""A training thread that outlives ``ThreadEngine.stop()`` must not hang the window when the engine is
deleted (found by benchmarks/monkey.py under load: a slow reset, the window closed, and the engine's
deleteLater destroyed its busy QThreadPool, which waits for the thread while holding the GIL that the
thread needs to finish: the process hung for good).

Run in a subprocess: the bug is a hang, which the subprocess's timeout turns into a failure.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import threading
    from PySide6.QtCore import QCoreApplication, QEvent
    from explorer.gui.engine import ThreadEngine, threads_outliving

    app = QCoreApplication([])
    entered, release = threading.Event(), threading.Event()

    def slow_build(_config):  # a build that takes longer than the stop's timeout
        entered.set()
        release.wait()
        raise RuntimeError("built too late")

    engine = ThreadEngine(build_session=slow_build)
    engine.start()
    engine.send("build", config=None, tag=None)
    assert entered.wait(60)
    assert not engine.stop(timeout_s=0.05)  # the thread is still in the build
    engine.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # hung here before the fix
    del engine
    assert threads_outliving() == 1
    release.set()
    for _ in range(3000):
        if threads_outliving() == 0:
            break
        threading.Event().wait(0.01)
    print("outliving at the end:", threads_outliving())
""")


def test_deleting_an_engine_whose_thread_is_still_busy_does_not_hang():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "outliving at the end: 0" in proc.stdout, proc.stdout + proc.stderr
