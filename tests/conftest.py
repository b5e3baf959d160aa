"""Test set-up: Qt offscreen, and no test may leave a thread running."""
import contextlib
import os
import sys
import threading
import weakref
from typing import Any, Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # as the app does: tiny models are fastest on one intra-op thread

GRACE_MS = 1000  # how long a finishing thread may take to end after its test
STOP_MS = 2000  # how long a leaked thread gets to stop once asked, so that the next test starts clean


class _QtStarts:
    """The QThreadPools and QThreads started while watching, found by wrapping their ``start``.

    A thread of a Qt pool that runs Python code shows up in ``threading.enumerate()`` only as a daemon
    dummy thread, so a Python-level check cannot see a leaked worker (napari's ``_dangling_qthread_pool``
    fixture watches the pools the same way)."""

    def __init__(self, qtcore: Any) -> None:
        self.pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pool -> runnables it ran
        self.threads: weakref.WeakSet = weakref.WeakSet()
        self._patched: list[tuple[type, str, Any]] = []
        self._wrap(qtcore.QThreadPool, "start", self._record_pool)
        self._wrap(qtcore.QThreadPool, "tryStart", self._record_pool)
        self._wrap(qtcore.QThread, "start", lambda thread, *args: self.threads.add(thread))

    def _record_pool(self, pool: Any, runnable: Any = None, *args: Any) -> None:
        self.pools.setdefault(pool, []).append(runnable)

    def _wrap(self, cls: type, name: str, record: Any) -> None:
        original = getattr(cls, name)

        def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
            record(obj, *args)
            return original(obj, *args, **kwargs)

        self._patched.append((cls, name, original))
        setattr(cls, name, wrapper)

    def restore(self) -> None:
        for cls, name, original in self._patched:
            setattr(cls, name, original)

    def leaked(self) -> list[str]:
        """What is still running after the grace time; each is asked to stop before it is reported."""
        found = []
        for pool, runnables in list(self.pools.items()):
            with contextlib.suppress(RuntimeError):  # its C++ object is gone: a deleted pool joined its threads
                if not pool.waitForDone(GRACE_MS):
                    found.append(f"a QThreadPool running {pool.activeThreadCount()} thread(s) "
                                 f"({', '.join(type(r).__name__ for r in runnables)})")
                    # ask the pool's owner (a SessionWorker's stop() ends its session) and the runnables
                    # (superqt's workers quit at their next yield) to stop, so no later test inherits them
                    for stoppable in (pool.parent(), *runnables):
                        stop = getattr(stoppable, "stop", None) or getattr(stoppable, "quit", None)
                        if callable(stop):
                            stop()
                    pool.waitForDone(STOP_MS)
        for thread in list(self.threads):
            with contextlib.suppress(RuntimeError):
                if not thread.wait(GRACE_MS):
                    found.append(f"a running QThread ({type(thread).__name__} {thread.objectName()!r})")
                    thread.quit()
                    thread.wait(STOP_MS)
        return found


def _python_threads_left(before: set[threading.Thread]) -> list[str]:
    """Non-daemon Python threads started since ``before`` that are still alive after the grace time."""
    pause = threading.Event()
    for _ in range(GRACE_MS // 20):
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        if not leaked:
            return []
        pause.wait(0.02)
    return [f"the Python thread {t.name!r}" for t in leaked]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running: a Python thread, a QThread, or a Qt thread pool (a
    worker that was started and never stopped). Qt is watched only once something has imported it
    (pytest-qt does, at start-up): core tests need no Qt."""
    before = set(threading.enumerate())
    qtcore = sys.modules.get("PySide6.QtCore")
    starts = _QtStarts(qtcore) if qtcore is not None else None
    try:
        yield
    finally:
        if starts is not None:
            starts.restore()
    leaked = _python_threads_left(before) + (starts.leaked() if starts is not None else [])
    if leaked:
        pytest.fail(f"test left threads running: {'; '.join(leaked)}")
