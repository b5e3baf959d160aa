"""Where the Session runs for the window: an *engine* serves a :class:`~explorer.core.player.Player`
and hands its events to the GUI thread as Qt signals.

``ThreadEngine`` runs the Player on a worker thread (superqt's generator worker, on a private
``QThreadPool`` so that ``stop()`` can join exactly this thread). The Session lives in that thread
only: it is built there (a ``build`` command), trained there and saved there; the GUI sends commands
and receives data. Yielded events reach ``_on_yielded``, a method of a QObject that lives in the GUI
thread, so the connection is queued and drawing happens in the GUI thread (pitfalls.md: never connect
a cross-thread signal to a lambda). If the GUI falls behind, only the newest snapshot is drawn.

An engine's interface (what :class:`~explorer.gui.controller.SessionController` uses): ``start()``,
``send(name, **kwargs)``, ``stop(timeout_s)``, ``is_running``, and the signals ``snapshot_ready``
(newest snapshot), ``frame`` (every snapshot, in order), ``event`` (every other event) and
``finished``.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Callable, Iterator

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal, Slot
from superqt.utils import GeneratorWorker

from explorer.core.player import Failed, Player, failure
from explorer.core.snapshot import Snapshot

log = logging.getLogger(__name__)

#: (pool, worker) of training threads that outlived their engine's ``stop()``: kept here until the thread
#: ends, because destroying a busy QThreadPool (its engine's deleteLater) waits for the thread while holding
#: the GIL that the thread needs to finish: the window hung for good (found by benchmarks/monkey.py)
_OUTLIVING: list[tuple[QThreadPool, GeneratorWorker]] = []


def threads_outliving() -> int:
    """How many training threads are still ending after their engine stopped (forgets the ended ones)."""
    _OUTLIVING[:] = [(pool, worker) for pool, worker in _OUTLIVING if pool.activeThreadCount() > 0]
    return len(_OUTLIVING)


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


def _serve(player: Player, nice: int) -> Iterator[Any]:
    lower_thread_priority(nice)
    try:
        yield from player.serve()
    except Exception as e:  # noqa: BLE001
        # superqt takes any RuntimeError from the generator for "the worker was deleted" and only warns:
        # report every failure as an event instead; the engine then ends (the controller restarts it)
        yield failure(e)


class ThreadEngine(QObject):
    """Serves a Player on a background thread; see the module docstring for the interface."""

    snapshot_ready = Signal(object)
    frame = Signal(object)
    event = Signal(object)
    finished = Signal()

    def __init__(self, hz: float = 30.0, build_session: Callable[..., Any] | None = None, nice: int = 5,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        kwargs = {"build_session": build_session} if build_session is not None else {}
        self.player = Player(hz=hz, **kwargs)
        self._nice = nice
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: GeneratorWorker | None = None
        self._pending: Snapshot | None = None
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
            raise RuntimeError("this engine was already started")
        worker = GeneratorWorker(_serve, self.player, self._nice)
        worker.setAutoDelete(False)  # we keep the Python wrapper; the pool must not delete it
        worker.yielded.connect(self._on_yielded)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._running = True
        self._pool.start(worker)

    @property
    def is_running(self) -> bool:
        """True from ``start()`` until the thread has ended."""
        return self._running and self._pool.activeThreadCount() > 0

    def send(self, name: str, **kwargs: Any) -> None:
        """Queue a command for the Player (thread-safe; applied between training steps)."""
        if not self._stopped:
            self.player.send(name, **kwargs)

    def stop(self, timeout_s: float = 1.0) -> bool:
        """End the Player's loop, drop pending snapshots and wait for the thread.

        Returns True when the thread ended within ``timeout_s`` (a step in progress finishes first).
        """
        self._stopped = True
        self._pending = None
        self._flush_timer.stop()
        if self._worker is None:
            return True
        self.player.send("stop")
        done = self._pool.waitForDone(max(1, int(timeout_s * 1000)))
        if not done:  # a step or snapshot that takes too long: also end superqt's loop at its next yield
            self._worker.quit()
            done = self._pool.waitForDone(200)
            log.warning("the training thread did not stop within %.1f s%s", timeout_s,
                        "" if done else "; it ends after its current work")
        if done:
            self._running = False
        else:  # the engine may be deleted now; its pool and worker may not, until the thread has ended
            threads_outliving()
            self._pool.setParent(None)
            _OUTLIVING.append((self._pool, self._worker))
        return done

    # ------------------------------------------------------------------ slots (GUI thread)
    @Slot(object)
    def _on_yielded(self, event: Any) -> None:
        if self._stopped:
            return
        if not isinstance(event, Snapshot):
            if isinstance(event, Failed):
                log.error("the session failed: %s\n%s", event.head, event.details)
            self._flush()  # the snapshot before an event is drawn before the event is handled
            self.event.emit(event)
            return
        self.received += 1
        self.frame.emit(event)
        self._pending = event
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _flush(self) -> None:
        snapshot, self._pending = self._pending, None
        if snapshot is None or self._stopped:
            return
        self.delivered += 1
        self.snapshot_ready.emit(snapshot)

    @Slot()
    def _on_finished(self) -> None:
        self._running = False
        if not self._stopped:
            self._flush()  # the last snapshot before the end
        self.finished.emit()
