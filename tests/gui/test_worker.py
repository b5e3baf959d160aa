"""The training worker: thousands of cross-thread snapshots, commands, and a clean stop.

A fast fake session stands in for the real one (the Orange3 habit): it honours the same command
protocol as ``Session.iterate`` (starts paused, blocks on its queue while paused, ends on "stop").
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import pytest
from PySide6.QtCore import QObject, QThreadPool, Slot

from explorer.gui.worker import SessionWorker


@dataclass(frozen=True)
class FakeSnapshot:
    step: int
    paused: bool
    thread: str


class FakeSession:
    """Yields a snapshot after every step (or after each view-changing command while paused)."""

    def __init__(self, paused: bool = True, step_time: float = 0.0) -> None:
        self.paused = paused
        self.step_count = 0
        self.step_time = step_time
        self.commands: queue.Queue = queue.Queue()
        self.applied: list[tuple[str, dict]] = []

    def send(self, name: str, **kwargs) -> None:
        self.commands.put((name, kwargs))

    def _snapshot(self) -> FakeSnapshot:
        return FakeSnapshot(self.step_count, self.paused, threading.current_thread().name)

    def iterate(self, hz=30.0, every_steps=None, max_steps=None):
        yield self._snapshot()
        while max_steps is None or self.step_count < max_steps:
            changed = False
            try:
                while True:
                    name, kwargs = self.commands.get(timeout=0.02 if self.paused else 0)
                    self.applied.append((name, kwargs))
                    if name == "stop":
                        return
                    if name == "pause":
                        self.paused = True
                    elif name == "resume":
                        self.paused = False
                    elif name == "step":
                        self.step_count += kwargs.get("n", 1)
                        changed = True
                    if self.commands.empty():
                        break
            except queue.Empty:
                pass
            if self.paused:
                if changed:
                    yield self._snapshot()
                continue
            if self.step_time:
                time.sleep(self.step_time)
            self.step_count += 1
            yield self._snapshot()


def _live_threads() -> set[threading.Thread]:
    """Non-daemon Python threads (a Qt pool thread that ran Python shows up as a daemon dummy)."""
    return {t for t in threading.enumerate() if t.is_alive() and not t.daemon}


class Receiver(QObject):
    """Lives in the GUI thread; records which thread its slot ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.threads: set[str] = set()

    @Slot(object)
    def on_snapshot(self, snapshot) -> None:
        self.steps.append(snapshot.step)
        self.threads.add(threading.current_thread().name)


def test_3000_snapshots_cross_threads_without_crashing(qtbot):
    session = FakeSession(paused=False)
    worker = SessionWorker(session, hz=1e9, max_steps=3000)
    receiver = Receiver()
    worker.snapshot_ready.connect(receiver.on_snapshot)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    assert worker.received == 3001  # the first snapshot, then one per step
    assert receiver.steps and receiver.steps[-1] == 3000
    assert receiver.steps == sorted(receiver.steps)
    assert receiver.threads == {threading.main_thread().name}
    assert worker.stop()
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def test_commands_reach_the_session_and_stop_leaves_no_thread(qtbot):
    session = FakeSession(paused=True)
    worker = SessionWorker(session, hz=1e9)
    threads_before = _live_threads()
    with qtbot.waitSignal(worker.snapshot_ready, timeout=5000) as first:
        worker.start()
    assert first.args[0].step == 0 and first.args[0].paused

    with qtbot.waitSignal(worker.snapshot_ready, timeout=5000,
                          check_params_cb=lambda s: s.step == 3) as stepped:
        worker.send("step", n=3)
    assert stepped.args[0].paused

    with qtbot.waitSignal(worker.snapshot_ready, timeout=5000,
                          check_params_cb=lambda s: s.step > 50):
        worker.send("resume")
    assert worker.is_running

    started = time.perf_counter()
    assert worker.stop(timeout_s=1.0)
    assert time.perf_counter() - started < 1.0
    assert not worker.is_running
    assert ("stop", {}) in session.applied
    assert _live_threads() <= threads_before
    assert worker._pool.activeThreadCount() == 0


def test_no_snapshot_is_delivered_after_stop(qtbot):
    session = FakeSession(paused=False)
    worker = SessionWorker(session, hz=1e9)
    receiver = Receiver()
    worker.snapshot_ready.connect(receiver.on_snapshot)
    with qtbot.waitSignal(worker.snapshot_ready, timeout=5000):
        worker.start()
    assert worker.stop()
    seen = len(receiver.steps)
    qtbot.wait(50)  # let any queued cross-thread events arrive; they must be dropped
    assert len(receiver.steps) == seen


class RunBroke(RuntimeError):
    """Like Session's RunFailure: a RuntimeError, which superqt alone would only warn about."""


@pytest.mark.parametrize("error", [FloatingPointError("loss is NaN"), RunBroke("loss is NaN")])
def test_an_error_in_the_session_is_reported_not_raised(qtbot, error):
    class Broken(FakeSession):
        def iterate(self, hz=30.0, every_steps=None, max_steps=None):
            yield self._snapshot()
            raise error

    worker = SessionWorker(Broken(paused=False), hz=1e9)
    messages: list[str] = []
    errors: list[BaseException] = []
    worker.failed.connect(messages.append)  # emitted in the GUI thread
    worker.errored.connect(errors.append)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert messages == [f"{type(error).__name__}: loss is NaN"]
    # the exception itself, traceback included, for the window's details box
    assert errors == [error]
    assert errors[0].__traceback__ is not None
    assert worker.stop()


def test_yielded_carries_every_snapshot_in_order(qtbot):
    """snapshot_ready may skip snapshots the GUI had no time for; yielded never does (GIF frames)."""
    session = FakeSession(paused=False)
    worker = SessionWorker(session, hz=1e9, every_steps=1, max_steps=500)
    everything, drawn = Receiver(), Receiver()
    worker.yielded.connect(everything.on_snapshot)
    worker.snapshot_ready.connect(drawn.on_snapshot)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        worker.start()
    assert everything.steps == list(range(501))
    assert everything.threads == {threading.main_thread().name}
    assert drawn.steps[-1] == 500 and len(drawn.steps) <= len(everything.steps)
    assert worker.stop()


@pytest.mark.parametrize("paused", [True, False])
def test_stop_is_fast_whether_paused_or_running(qtbot, paused):
    worker = SessionWorker(FakeSession(paused=paused, step_time=0.005), hz=30.0)
    with qtbot.waitSignal(worker.snapshot_ready, timeout=5000):
        worker.start()
    started = time.perf_counter()
    assert worker.stop(timeout_s=1.0)
    assert time.perf_counter() - started < 0.5
