"""The thread engine: thousands of cross-thread snapshots, commands, events and a clean stop.

A fast fake session stands in for the real one (the Orange3 habit) under a real Player: it honours the
Session interface the Player uses (``step``, ``apply``, ``snapshot``, ``config``), and its snapshots
are real (tiny) Snapshots so the engine tells them from other events.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QObject, Slot

from explorer.core.player import Built, Failed, Reply
from explorer.core.snapshot import Snapshot
from explorer.gui.engine import ThreadEngine

_EMPTY = np.zeros(0, np.float32)
BASE = Snapshot(step=0, title="fake", description="", problem="fake", device="cpu", box=(0, 1, 0, 1),
                z1=_EMPTY, z2=_EMPTY, data=np.zeros((1, 2), np.float32), observation=0, runs=())


class FakeSession:
    """Steps instantly (or in ``step_time`` seconds); records the thread each call ran in."""

    def __init__(self, config=None, step_time: float = 0.0, fail_at: int | None = None) -> None:
        self.config = SimpleNamespace(steps=10**9, view=SimpleNamespace(log_every=1))
        self.device = "cpu"
        self.step_count = 0
        self.step_time, self.fail_at = step_time, fail_at
        self.threads: set[str] = set()
        self.applied: list[str] = []

    def step(self, n: int = 1) -> None:
        self.threads.add(threading.current_thread().name)
        for _ in range(n):
            if self.fail_at is not None and self.step_count == self.fail_at:
                raise RuntimeError("loss is NaN")  # superqt alone would only warn about a RuntimeError
            if self.step_time:
                time.sleep(self.step_time)
            self.step_count += 1

    def apply(self, name: str, **kwargs) -> bool:
        self.applied.append(name)
        if name == "step":
            self.step(kwargs.get("n", 1))
        return True

    def snapshot(self) -> Snapshot:
        return dataclasses.replace(BASE, step=self.step_count)

    def metric_rows(self) -> list:
        return [{"run": "fake", "step": self.step_count}]

    def background_pending(self) -> bool:
        return False


def engine_with(session: FakeSession, hz: float = 1e9) -> ThreadEngine:
    engine = ThreadEngine(hz=hz, build_session=lambda _config: session)
    engine.send("build", config=None, reason="test", tag=None)
    return engine


class Receiver(QObject):
    """Lives in the GUI thread; records what arrives and in which thread its slot ran."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.events: list = []
        self.threads: set[str] = set()

    @Slot(object)
    def on_snapshot(self, snapshot) -> None:
        self.steps.append(snapshot.step)
        self.threads.add(threading.current_thread().name)

    @Slot(object)
    def on_event(self, event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)


def test_3000_snapshots_cross_threads_in_order_without_crashing(qtbot):
    session = FakeSession()
    engine = engine_with(session)
    drawn, every = Receiver(), Receiver()
    engine.snapshot_ready.connect(drawn.on_snapshot)
    engine.frame.connect(every.on_snapshot)
    engine.send("set_cadence", every_steps=1)
    engine.send("resume")
    engine.start()
    qtbot.waitUntil(lambda: bool(every.steps) and every.steps[-1] >= 3000, timeout=60_000)
    assert engine.stop()
    assert every.steps[:3001] == list(range(3001))  # every snapshot, in order (GIF frames)
    assert drawn.steps == sorted(drawn.steps) and len(drawn.steps) <= len(every.steps)
    assert drawn.threads == every.threads == {threading.main_thread().name}
    assert session.threads and threading.main_thread().name not in session.threads


def test_commands_and_requests_reach_the_session_and_stop_leaves_no_thread(qtbot):
    session = FakeSession()
    engine = engine_with(session)
    receiver = Receiver()
    engine.event.connect(receiver.on_event)
    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000) as first:
        engine.start()
    assert first.args[0].step == 0 and first.args[0].paused
    assert isinstance(receiver.events[0], Built)

    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000, check_params_cb=lambda s: s.step == 3) as stepped:
        engine.send("step", n=3)
    assert stepped.args[0].paused
    with qtbot.waitSignal(engine.event, timeout=30_000, check_params_cb=lambda e: isinstance(e, Reply)) as replied:
        engine.send("metric_rows", request_id=4)
    assert replied.args[0].request_id == 4 and replied.args[0].value == [{"run": "fake", "step": 3}]

    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000, check_params_cb=lambda s: s.step > 50):
        engine.send("resume")
    assert engine.is_running
    assert engine.stop(timeout_s=1.0)
    assert not engine.is_running and engine._pool.activeThreadCount() == 0


def test_no_snapshot_is_delivered_after_stop(qtbot):
    engine = engine_with(FakeSession())
    receiver = Receiver()
    engine.snapshot_ready.connect(receiver.on_snapshot)
    engine.send("resume")
    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000):
        engine.start()
    assert engine.stop()
    seen = len(receiver.steps)
    qtbot.wait(50)  # let any queued cross-thread events arrive; they must be dropped
    assert len(receiver.steps) == seen


def test_a_failing_step_is_an_event_and_the_engine_serves_on(qtbot):
    session = FakeSession(fail_at=5)
    engine = engine_with(session)
    receiver = Receiver()
    engine.event.connect(receiver.on_event)
    engine.send("resume")
    with qtbot.waitSignal(engine.event, timeout=30_000, check_params_cb=lambda e: isinstance(e, Failed)) as failed:
        engine.start()
    assert "RuntimeError: loss is NaN" in failed.args[0].head and "Traceback" in failed.args[0].details
    assert engine.is_running  # paused, still serving: a Reset can follow
    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000, check_params_cb=lambda s: s.step == 5):
        engine.send("metric_rows", request_id=1)
        engine.send("pause")
    assert engine.stop()


def test_an_exception_in_the_views_is_a_failed_event_and_the_engine_serves_on(qtbot):
    session = FakeSession()
    session.snapshot = lambda: (_ for _ in ()).throw(RuntimeError("cannot draw"))
    engine = engine_with(session)
    with qtbot.waitSignal(engine.event, timeout=30_000, check_params_cb=lambda e: isinstance(e, Failed)) as failed:
        engine.start()
    assert "cannot draw" in failed.args[0].head
    assert engine.is_running
    assert engine.stop()


def test_an_unexpected_error_in_the_loop_ends_the_engine_with_a_failed_event(qtbot):
    session = FakeSession()
    engine = engine_with(session)
    receiver = Receiver()
    engine.event.connect(receiver.on_event)
    session.apply = lambda name, **kwargs: (_ for _ in ()).throw(RuntimeError("broken command"))
    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000):
        engine.start()
    with qtbot.waitSignal(engine.finished, timeout=30_000):
        engine.send("reset")
    failed = [e for e in receiver.events if isinstance(e, Failed)]
    assert len(failed) == 1 and "broken command" in failed[0].head
    assert engine.stop() and not engine.is_running


@pytest.mark.parametrize("paused", [True, False])
def test_stop_ends_the_thread_whether_paused_or_running(qtbot, paused):
    engine = engine_with(FakeSession(step_time=0.005), hz=30.0)
    if not paused:
        engine.send("resume")
    with qtbot.waitSignal(engine.snapshot_ready, timeout=30_000):
        engine.start()
    assert engine.stop(timeout_s=5.0)
    assert not engine.is_running
