"""The compute process, from the window's side: the same interface as
:class:`~explorer.gui.engine.ThreadEngine` (``start``, ``send``, ``stop``, ``is_running``; signals
``snapshot_ready``, ``frame``, ``event``, ``finished``), with the Player in a process of its own
(:mod:`explorer.core.compute`, started with ``spawn`` so that CUDA works in it).

The window reads the event pipe in the GUI thread when it has data (a ``QSocketNotifier``: no thread of
its own, no cross-thread signal). Of the snapshots read in one go only the newest is drawn; ``frame``
still carries each of them, in order.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal, Slot

from explorer.core.compute import EventReader, serve_process
from explorer.core.player import Failed
from explorer.core.snapshot import Snapshot

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")


class ProcessEngine(QObject):
    snapshot_ready = Signal(object)
    frame = Signal(object)
    event = Signal(object)
    finished = Signal()

    def __init__(self, hz: float = 30.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._hz = hz
        self._process: Any = None
        self._commands: Any = None
        self._events: Any = None
        self._notifier: QSocketNotifier | None = None
        self._reader = EventReader()
        self._stopped = False
        self._ended = False
        self.received = 0  # snapshots read from the pipe
        self.delivered = 0  # snapshots handed on through snapshot_ready

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("this engine was already started")
        command_out, command_in = SPAWN.Pipe(duplex=False)  # (receiving end, sending end)
        event_out, event_in = SPAWN.Pipe(duplex=False)
        self._process = SPAWN.Process(target=serve_process, args=(command_out, event_in, self._hz, os.getpid()),
                                      name="vae-explorer-compute", daemon=True)
        self._process.start()
        command_out.close()  # the child's ends: closing ours lets each side see the other go
        event_in.close()
        self._commands, self._events = command_in, event_out
        self._notifier = QSocketNotifier(event_out.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._on_readable)

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.is_alive() and not self._ended

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def send(self, name: str, **kwargs: Any) -> None:
        """Send a command to the Player in the compute process (applied between training steps)."""
        if self._stopped or self._commands is None:
            return
        try:
            self._commands.send((name, kwargs))
        except (BrokenPipeError, OSError):  # the process is gone; _on_readable reports the end
            pass

    def stop(self, timeout_s: float = 1.0) -> bool:
        """End the compute process: ask it to stop, wait ``timeout_s``, then terminate it. True when it
        ended by itself within the time."""
        self._stopped = True
        if self._notifier is not None:
            self._notifier.setEnabled(False)
        process = self._process
        if process is None:
            return True
        try:
            self._commands.send(("stop", {}))
        except (BrokenPipeError, OSError):
            pass
        self._commands.close()  # EOF: the process stops even if it missed the command
        process.join(timeout_s)
        clean = not process.is_alive()
        if not clean:
            log.warning("the compute process did not stop within %.1f s; terminating it", timeout_s)
            process.terminate()
            process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)
        self._events.close()
        self._ended = True
        return clean

    # ------------------------------------------------------------------ events in (GUI thread)
    @Slot()
    def _on_readable(self) -> None:
        newest: Snapshot | None = None
        try:
            while self._events.poll():
                event = self._reader.loads(self._events.recv_bytes())
                if isinstance(event, Snapshot):
                    self.received += 1
                    self.frame.emit(event)
                    newest = event
                    continue
                if newest is not None:  # the snapshot before an event is drawn before the event is handled
                    self._deliver(newest)
                    newest = None
                if isinstance(event, Failed):
                    log.error("the session failed: %s\n%s", event.head, event.details)
                self.event.emit(event)
        except (EOFError, OSError):
            self._on_ended()
        if newest is not None:
            self._deliver(newest)

    def _deliver(self, snapshot: Snapshot) -> None:
        if not self._stopped:
            self.delivered += 1
            self.snapshot_ready.emit(snapshot)

    def _on_ended(self) -> None:
        """The pipe closed: the process ended (told to, or it died)."""
        if self._notifier is not None:
            self._notifier.setEnabled(False)
        if self._ended:
            return
        self._ended = True
        if not self._stopped:
            code = self._process.exitcode if self._process is not None else None
            self._process.join(0.5)
            code = self._process.exitcode
            self.event.emit(Failed(f"The compute process ended unexpectedly (exit code {code})",
                                   "The process that trains the session is gone; a new one is started "
                                   "from the current scene."))
            QTimer.singleShot(0, self.finished.emit)
