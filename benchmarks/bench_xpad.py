"""Dragging x (issue 13): how many frames a second show a new observation while the user drags it.

The default scene (mode-seeking: 3 runs, 200² grid, K up to 64) in the main window (offscreen) with the
real compute-process engine, as a user runs it. A 60 Hz timer moves the observation along a loop through
x-space, through the same slot the data panel's drag calls (``MainWindow.move_observation``: the
controller coalesces the moves, one in flight). A *drag frame* is a drawn snapshot whose x_obs differs from
the one drawn before it. Measured paused and while training. Target ≥ 15 frames/s.
"""
from __future__ import annotations

import math
import statistics
import time

from benchmarks import Options, Row
from benchmarks.bench_core import absolute_row
from benchmarks.bench_gui import WINDOW_SIZE, application, close_widget, private_settings, scene_config, wait, wait_until

MOVE_HZ = 60.0  # a mouse drag's move events, about
TARGET_FPS = 15.0


def drag_loop(t: float) -> tuple[float, float]:
    """The point of x-space the drag is at ``t`` seconds in: a loop around the bimodal data (x₁ from 0 to 4,
    x₂ from −2 to 3), once every 4 s, so every move is a new x."""
    a = 2.0 * math.pi * t / 4.0
    return 2.0 + 2.0 * math.cos(a), 0.5 + 2.5 * math.sin(a)


def drag_rate(seconds: float, training: bool, warmup_s: float = 1.0) -> tuple[float, float]:
    """(drag frames/s, training steps/s) of the default scene while a drag moves x for ``seconds``."""
    import os

    from PySide6.QtCore import QTimer

    from explorer.gui.controller import ENGINE_ENV
    from explorer.gui.main_window import MainWindow

    app = application()
    shown: list[tuple[float, ...]] = []
    old_engine = os.environ.pop(ENGINE_ENV, None)  # the default: the compute process
    try:
        with private_settings():
            window = MainWindow(scene_config())
            try:
                window.resize(*WINDOW_SIZE)
                window.show()

                def on_frame(_step: int) -> None:
                    x = tuple(float(v) for v in window.last_snapshot.x_obs)
                    if not shown or x != shown[-1]:
                        shown.append(x)

                window.snapshot_shown.connect(on_frame)
                if not wait_until(lambda: bool(shown), 60.0):
                    raise RuntimeError("the window drew no snapshot within 60 s")
                if training:
                    window.controller.start()
                t_start = time.perf_counter()
                timer = QTimer()
                timer.setInterval(int(1000 / MOVE_HZ))
                timer.timeout.connect(lambda: window.move_observation(drag_loop(time.perf_counter() - t_start)))
                timer.start()
                wait(warmup_s * 1000)
                f0, s0, t0 = len(shown), window.last_snapshot.step, time.perf_counter()
                wait(seconds * 1000)
                f1, s1, t1 = len(shown), window.last_snapshot.step, time.perf_counter()
                timer.stop()
            finally:
                close_widget(window)
                app.processEvents()
    finally:
        if old_engine is not None:
            os.environ[ENGINE_ENV] = old_engine
    return (f1 - f0) / (t1 - t0), (s1 - s0) / (t1 - t0)


def row_drag(opts: Options) -> list[Row]:
    seconds = 3.0 if opts.quick else 6.0
    rows = []
    for training in (False, True):
        runs = [drag_rate(seconds, training) for _ in range(opts.reps(3, 2))]
        fps = [f for f, _ in runs]
        steps = statistics.median(s for _, s in runs)
        state = "training" if training else "paused"
        row = absolute_row(f"mode-seeking drag x: new-x frames/s, {state}, process engine", fps, "frames/s",
                           f"moves at {MOVE_HZ:g} Hz, coalesced; {seconds:g} s each"
                           + (f"; training {steps:.0f} steps/s meanwhile" if training else ""))
        median = statistics.median(fps)
        rows.append(Row(row.name, row.kind, row.median, row.lo, row.hi, row.unit, f"≥ {TARGET_FPS:g}",
                        median >= TARGET_FPS, row.repeats, row.note, row.extra))
    return rows


ROWS = [row_drag]
