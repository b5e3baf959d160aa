"""The compute process: a Player serving a Session in a process of its own, so training never waits for
drawing (PySide6 holds the GIL while it updates and paints: in one process every frame is taken out of
training). Qt-free; the window's side is :mod:`explorer.gui.process_engine`.

Wire protocol, over two ``multiprocessing`` pipes:

- commands, window → process: pickled ``(name, kwargs)`` tuples, as ``Player.send`` takes them;
- events, process → window: the Player's events (Snapshot, Built, Reply, ...) pickled by an
  :class:`EventWriter`, which sends each large read-only array once and then only a reference to it, so
  an array the Session hands out unchanged frame after frame (the posterior of a frozen decoder) keeps
  its identity on the other side (the panels skip redrawing what has not changed) and is not copied
  again. A reader (:class:`EventReader`) resolves the references.

The process ends when it is told to stop, when the command pipe closes (the window closed it, or the
window's process died: the operating system closes its end), or, on Linux, when its parent dies.
Snapshots that the window has not taken yet are replaced by newer ones (by wall clock only: while a
cadence is set, for a GIF, every snapshot is sent).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

SHARED_MIN_BYTES = 16 * 1024  # arrays at least this large (and read-only) are sent once, then referenced
SHARED_KEEP = 256  # how many such arrays each side remembers


class EventWriter:
    """Pickles events for the pipe, sending each large read-only numpy array only once."""

    def __init__(self, keep: int = SHARED_KEEP) -> None:
        self._ids: collections.OrderedDict[int, tuple[int, np.ndarray]] = collections.OrderedDict()
        self._next = 0
        self._keep = keep
        self._forget: list[int] = []

    def dumps(self, event: Any) -> bytes:
        buf = io.BytesIO()
        writer = self

        class _Pickler(pickle.Pickler):
            def persistent_id(self, obj: Any) -> Any:
                if type(obj) is np.ndarray and not obj.flags.writeable and obj.nbytes >= SHARED_MIN_BYTES:
                    return writer._reference(obj)
                return None

        # the event first: the references it evicts while it is pickled are in the list pickled after it
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump((event, self._forget))
        self._forget = []
        return buf.getvalue()

    def _reference(self, array: np.ndarray) -> tuple:
        known = self._ids.get(id(array))
        if known is not None and known[1] is array:
            self._ids.move_to_end(id(array))
            return ("ref", known[0])
        token, self._next = self._next, self._next + 1
        self._ids[id(array)] = (token, array)  # held, so its id cannot be reused while remembered
        while len(self._ids) > self._keep:
            _, (old, _) = self._ids.popitem(last=False)
            self._forget.append(old)
        return ("new", token, array.copy())  # the copy is what is pickled (as a plain array)


class EventReader:
    """Unpickles what an :class:`EventWriter` wrote, resolving array references."""

    def __init__(self) -> None:
        self._arrays: dict[int, np.ndarray] = {}

    def loads(self, data: bytes) -> Any:
        reader = self

        class _Unpickler(pickle.Unpickler):
            def persistent_load(self, pid: Any) -> Any:
                if pid[0] == "new":
                    _, token, array = pid
                    array.flags.writeable = False
                    reader._arrays[token] = array
                    return array
                return reader._arrays[pid[1]]

            def find_class(self, module: str, name: str) -> Any:
                if not (module.startswith(("explorer.", "numpy", "builtins", "collections", "copyreg"))
                        or module in ("_codecs",)):
                    raise pickle.UnpicklingError(f"refused to load {module}.{name} from the compute process")
                return super().find_class(module, name)

        event, forget = _Unpickler(io.BytesIO(data)).load()
        for token in forget:
            self._arrays.pop(token, None)
        return event


class _Outbox:
    """Events waiting for the pipe, in order; a snapshot not yet sent is replaced by a newer one."""

    def __init__(self) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False

    def put(self, event: Any, replaceable: bool) -> None:
        with self._cond:
            if replaceable and self._items and self._items[-1][1]:
                self._items[-1] = (event, True)
            else:
                self._items.append((event, replaceable))
            self._cond.notify()

    def get(self) -> Any:
        with self._cond:
            while not self._items and not self.closed:
                self._cond.wait()
            return self._items.popleft()[0] if self._items else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()


def _die_with_parent() -> None:
    """On Linux, ask the kernel to end this process when its parent dies (a belt to the pipe's braces:
    a step in progress would otherwise finish first)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve_process(commands: Connection, events: Connection, hz: float, parent_pid: int) -> None:
    """The compute process's main function: serve a Player until told to stop or orphaned."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the belt was on
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the window's to handle
    from .player import Player
    from .snapshot import Snapshot
    from .threads import ensure_default_threads

    ensure_default_threads()
    player = Player(hz=hz)
    outbox = _Outbox()

    def read_commands() -> None:
        while True:
            try:
                name, kwargs = commands.recv()
            except (EOFError, OSError):  # the window closed the pipe, or its process is gone
                player.send("stop")
                return
            player.send(name, **kwargs)
            if name == "stop":
                return

    def send_events() -> None:
        writer = EventWriter()
        while True:
            event = outbox.get()
            if event is None:
                return
            try:
                events.send_bytes(writer.dumps(event))
            except (BrokenPipeError, OSError):
                player.send("stop")
                return

    reader = threading.Thread(target=read_commands, name="commands", daemon=True)
    sender = threading.Thread(target=send_events, name="events", daemon=True)
    reader.start()
    sender.start()
    try:
        for event in player.serve():
            outbox.put(event, replaceable=isinstance(event, Snapshot) and player.every_steps is None)
    finally:
        outbox.close()
        sender.join(timeout=0.2)  # what is left for a window that stopped reading is dropped
    # skip the interpreter's teardown (torch's takes ~0.5 s): the window waits for this exit
    os._exit(0)
