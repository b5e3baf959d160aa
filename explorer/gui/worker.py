"""The Session on a background thread: superqt's generator worker around ``Session.iterate()``.

The worker thread trains and yields frozen Snapshots (the session throttles them to ~30 Hz by wall
clock); the GUI sends commands back through ``Session.send``, which is thread-safe. Yielded snapshots
reach ``SessionWorker._on_yielded``, a method of a QObject that lives in the GUI thread, so the
connection is queued and drawing happens in the GUI thread (pitfalls.md: never connect a
cross-thread signal to a lambda). If the GUI falls behind, only the newest snapshot is drawn.

The worker runs on its own ``QThreadPool`` so that ``stop()`` can wait for exactly this thread and
leaves no thread behind (``QThreadPool.waitForDone`` joins the pool's threads).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Iterator, Protocol

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal, Slot
from superqt.utils import GeneratorWorker

log = logging.getLogger(__name__)


class SessionLike(Protocol):
    """What the worker needs from ``explorer.core.session.Session`` (tests pass a fake)."""

    def iterate(self, hz: float = 30.0, every_steps: int | None = None,
                max_steps: int | None = None) -> Iterator[Any]: ...

    def send(self, name: str, **kwargs: Any) -> None: ...


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread yield the CPU to the GUI thread when both want it (Linux only).

    Training is CPU-bound; on a busy machine a training thread at the GUI's priority starves the
    event loop and clicks wait. A positive nice value costs training nothing while the GUI is idle.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):
        pass


def _snapshots(session: SessionLike, hz: float, every_steps: int | None, max_steps: int | None,
               nice: int, failures: list[BaseException]) -> Iterator[Any]:
    lower_thread_priority(nice)
    try:
        yield from session.iterate(hz=hz, every_steps=every_steps, max_steps=max_steps)
    except Exception as e:  # noqa: BLE001
        # superqt takes any RuntimeError from the generator for "the worker was deleted" and only
        # warns; a RunFailure and most torch errors are RuntimeErrors. Keep it for _on_finished.
        failures.append(e)


class SessionWorker(QObject):
    """Runs one Session on a background thread and hands its snapshots to the GUI thread.

    Create it in the GUI thread, connect ``snapshot_ready`` and call ``start()``. Commands go through
    ``send(name, **kwargs)``; ``stop()`` ends the session and waits for the thread.

    Signals (all emitted in the GUI thread)
    ---------------------------------------
    snapshot_ready(Snapshot)
        the newest snapshot; older ones that arrived while the GUI was busy are skipped.
    yielded(Snapshot)
        every snapshot, in order, none skipped (a GIF recording needs each frame).
    failed(str)
        the session raised; the message names the exception.
    errored(BaseException)
        the same failure as the exception itself, with its traceback (for a details box).
    finished()
        the session's generator ended (after ``stop`` or on its own).
    """

    snapshot_ready = Signal(object)
    yielded = Signal(object)
    failed = Signal(str)
    errored = Signal(object)
    finished = Signal()

    def __init__(self, session: SessionLike, hz: float = 30.0, every_steps: int | None = None,
                 max_steps: int | None = None, nice: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._hz = hz
        self.every_steps = every_steps  # None: snapshots by wall clock; N: exactly at every N-th step
        self._max_steps = max_steps
        self._nice = nice
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: GeneratorWorker | None = None
        self._pending: Any = None
        self._failures: list[BaseException] = []  # appended by the worker thread before it finishes
        self._stopped = False
        self._running = False
        self.received = 0  # snapshots that reached the GUI thread
        self.delivered = 0  # snapshots handed on through snapshot_ready
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._flush)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("this SessionWorker was already started")
        worker = GeneratorWorker(_snapshots, self.session, self._hz, self.every_steps, self._max_steps,
                                 self._nice, self._failures)
        worker.setAutoDelete(False)  # we keep the Python wrapper; the pool must not delete it
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._running = True
        self._pool.start(worker)

    @property
    def is_running(self) -> bool:
        """True from ``start()`` until the thread has ended."""
        return self._running and self._pool.activeThreadCount() > 0

    def send(self, name: str, **kwargs: Any) -> None:
        """Queue a command for the session (thread-safe; applied between training steps)."""
        if not self._stopped:
            self.session.send(name, **kwargs)

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Ask the session to stop, drop pending snapshots and wait for the thread.

        Returns True when the thread ended within ``timeout_s``.
        """
        self._stopped = True
        self._pending = None
        self._flush_timer.stop()
        if self._worker is None:
            return True
        # "stop" ends Session.iterate in the worker thread, so its generator finishes there
        self.session.send("stop")
        done = self._pool.waitForDone(max(1, int(timeout_s * 1000)))
        if not done:  # a step or snapshot that takes too long: also end superqt's loop at its next yield
            self._worker.quit()
            done = self._pool.waitForDone(200)
            log.warning("the training thread did not stop within %.1f s%s", timeout_s,
                        "" if done else " and is still running")
        else:
            self._running = False
        return done

    # ------------------------------------------------------------------ slots (GUI thread)
    @Slot(object)
    def _on_yielded(self, snapshot: Any) -> None:
        if self._stopped:
            return
        self.received += 1
        self.yielded.emit(snapshot)
        self._pending = snapshot
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _flush(self) -> None:
        snapshot, self._pending = self._pending, None
        if snapshot is None or self._stopped:
            return
        self.delivered += 1
        self.snapshot_ready.emit(snapshot)

    @Slot(object)
    def _on_errored(self, exc: BaseException) -> None:
        log.error("the session failed", exc_info=exc)
        if not self._stopped:
            self.failed.emit(f"{exc.__class__.__name__}: {exc}")
            self.errored.emit(exc)

    @Slot()
    def _on_finished(self) -> None:
        self._running = False
        if not self._stopped:
            self._flush()  # the last snapshot before the end
            for exc in self._failures:
                self._on_errored(exc)
        self.finished.emit()


class SessionBuilder(QObject):
    """Builds Sessions off the GUI thread: a new model, data set and grid take 0.1 s to seconds.

    ``build(factory, config)`` returns a token; ``built(session, token)`` or ``failed(exception,
    token)`` follows in the GUI thread. ``wait()`` joins the build threads.
    """

    built = Signal(object, int)
    failed = Signal(object, int)
    _done = Signal(int, object, object)  # emitted from a build thread: token, session, exception

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._token = 0
        self._threads: dict[int, threading.Thread] = {}
        self._done.connect(self._on_done)  # receiver in the GUI thread: a queued connection

    @property
    def busy(self) -> bool:
        return bool(self._threads)

    def build(self, factory: Any, config: Any) -> int:
        self._token += 1
        token = self._token
        thread = threading.Thread(target=self._run, args=(token, factory, config),
                                  name=f"session-builder-{token}")
        self._threads[token] = thread
        thread.start()
        return token

    def _run(self, token: int, factory: Any, config: Any) -> None:
        try:
            session, error = factory(config), None
        except Exception as e:  # reported in the GUI thread
            session, error = None, e
        self._done.emit(token, session, error)

    @Slot(int, object, object)
    def _on_done(self, token: int, session: Any, error: Any) -> None:
        thread = self._threads.pop(token, None)
        if thread is not None:
            thread.join()
        if error is not None:
            self.failed.emit(error, token)
        else:
            self.built.emit(session, token)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Join every build thread (results still arrive as signals). True when none is left."""
        for thread in list(self._threads.values()):
            thread.join(timeout_s)
        return not any(t.is_alive() for t in self._threads.values())
