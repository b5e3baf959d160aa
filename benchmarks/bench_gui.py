"""The app-level rows of the performance issue: the live window, one frame, the paper's sweep, start-up
and the GPU. (Rows 1 and 4 of the issue, Session ÷ bare loop and the vmapped probe, are in bench_core.)

(2) training steps/s with the main window open and drawing live (offscreen) ÷ the same scene headless,
    measured side by side (window, headless, window, headless ...), each for a few seconds of wall time.
    Target ≥ 0.90. A second row does the same with 10 snapshots a second instead of the window's 30.
(3) the cost of one frame of the mode-seeking scene (3 runs, 200² grid, 1000 q samples, K = 64): the
    snapshot built in the worker (its views evaluated afresh, as at a step that logs nothing) plus
    ``Figure.update_snapshot`` feeding every panel; median and p95 over a few dozen frames, per repeat.
    Targets ≤ 15 ms median, ≤ 30 ms p95. The paint that follows (Qt's raster engine, offscreen) is a
    separate row.
(5) the paper's sweep as ``python main.py snr --estimators iwae,dreg --k 1,3,10,30,100,300,1000
    --replicates 10000`` runs it (gaussian, dim 2, one torch thread). Target ≤ 20 s.
(6) ``python main.py shot --preset mode-seeking --steps 0`` in a subprocess: from its start to the PNG
    written, and separately the import time of the modules it needs. Target ≤ 3 s.
(7) steps/s on CUDA ÷ on the CPU at K = 1024, batch 256 (IWAE, bimodal); "no CUDA device" without one.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from benchmarks import Options, Row
from benchmarks.bench_core import absolute_row, interleaved, ratio_row
from explorer.core.config import config_from_dict, load_preset

ROOT = Path(__file__).resolve().parent.parent
SCENE = "mode-seeking"
PAPER_KS = (1, 3, 10, 30, 100, 300, 1000)
FIGURE_SIZE = (1600, 1000)
WINDOW_SIZE = (1500, 950)  # what the window asks for on a large screen


# --------------------------------------------------------------------------- Qt plumbing
# notes of the offscreen platform that carry no information (as pyproject.toml's qt_log_ignore)
QT_NOISE = ("QStandardPaths: XDG_RUNTIME_DIR", "propagateSizeHints", "This plugin does not support")


def _qt_message(_kind, _context, message: str) -> None:
    if not any(noise in message for noise in QT_NOISE):
        print(message, file=sys.stderr)


def application():
    """The QApplication (offscreen unless a platform was chosen). The offscreen platform's notes are
    dropped, every other Qt message goes to stderr."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        qInstallMessageHandler(_qt_message)
        app = QApplication([sys.argv[0] if sys.argv else "benchmarks"])
    return app


def wait(ms: float) -> None:
    """Run the event loop for ``ms`` milliseconds."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            return False
        wait(10)
    return True


@contextlib.contextmanager
def private_settings() -> Iterator[None]:
    """The window's QSettings go to a temporary INI file, never to the user's."""
    old = os.environ.get("VAE_EXPLORER_SETTINGS")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["VAE_EXPLORER_SETTINGS"] = os.path.join(folder, "settings.ini")
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("VAE_EXPLORER_SETTINGS", None)
            else:
                os.environ["VAE_EXPLORER_SETTINGS"] = old


def close_widget(widget: Any) -> None:
    """Close ``widget`` and delete it now, with everything it holds.

    ``deleteLater`` alone waits for control to return to an event loop, and a benchmark closes its last
    window outside any: ``processEvents`` does not run deferred deletes. The window then lived on until
    the interpreter's teardown, which freed its graphics items in no particular order and crashed the
    process after the table was printed (exit 139; pitfalls.md, "orphaned graphics items at exit")."""
    from PySide6.QtCore import QCoreApplication, QEvent

    app = application()
    widget.close()
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()


def scene_config(overrides: tuple[str, ...] = ()):
    return load_preset(SCENE, ['device="cpu"', *overrides])


# --------------------------------------------------------------------------- (2) live ÷ headless
@contextlib.contextmanager
def training_window(cfg, warmup_s: float = 0.7, **kwargs: Any) -> Iterator[tuple[Any, list[int]]]:
    """The main window (offscreen) training ``cfg`` live, past a warm-up: (window, the steps of the frames
    drawn so far). Closed and deleted on exit."""
    from explorer.gui.main_window import MainWindow

    app = application()
    frames: list[int] = []
    with private_settings():
        window = MainWindow(cfg, **kwargs)
        try:
            window.resize(*WINDOW_SIZE)
            window.show()
            window.snapshot_shown.connect(frames.append)
            if not wait_until(lambda: bool(frames), 30.0):
                raise RuntimeError("the window drew no snapshot within 30 s")
            window.controller.start()
            wait(warmup_s * 1000)
            yield window, frames
        finally:
            close_widget(window)
            app.processEvents()


def live_rate(cfg, seconds: float, hz: float | None = None) -> tuple[float, float]:
    """(steps/s, frames drawn/s) of ``cfg`` training in the main window (offscreen), over ``seconds``."""
    with training_window(cfg, **({"hz": hz} if hz else {})) as (window, frames):
        s0, f0, t0 = window.last_snapshot.step, len(frames), time.perf_counter()
        wait(seconds * 1000)
        s1, f1, t1 = window.last_snapshot.step, len(frames), time.perf_counter()
    return (s1 - s0) / (t1 - t0), (f1 - f0) / (t1 - t0)


def headless_rate(cfg, seconds: float, warmup_steps: int = 10) -> float:
    """steps/s of the same scene with ``Session.step`` (what ``run`` does), over ``seconds``."""
    from explorer.core.session import Session

    session = Session(cfg)
    session.step(warmup_steps)
    n0, t0 = session.step_count, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.step(1)
    return (session.step_count - n0) / (time.perf_counter() - t0)


def _live_row(opts: Options, hz: float | None) -> Row:
    cfg = scene_config()
    seconds = 1.5 if opts.quick else 4.0
    live_stats: list[tuple[float, float]] = []

    def a() -> float:  # the "time" of one live step, so that ratio_row(invert=True) gives live ÷ headless
        steps_per_s, fps = live_rate(cfg, seconds, hz)
        live_stats.append((steps_per_s, fps))
        return 1.0 / steps_per_s

    def b() -> float:
        return 1.0 / headless_rate(cfg, seconds)

    pairs = interleaved(a, b, opts.reps(5, 3))
    live_stats = live_stats[1:]  # the warm-up pair
    steps = statistics.median(s for s, _ in live_stats)
    fps = statistics.median(f for _, f in live_stats)
    headless = statistics.median(1.0 / tb for _, tb in pairs)
    name = f"{SCENE} steps/s, window drawing live ÷ headless" + (f", snapshots at {hz:g} Hz" if hz else "")
    return ratio_row(name, pairs, invert=True, target=None if hz else 0.90,
                     note=f"live {steps:.0f} steps/s at {fps:.0f} frames/s, headless {headless:.0f} steps/s; "
                          f"{seconds:g} s each" + ("" if hz else " (the window's default, 30 Hz)"),
                     live_steps_per_s=steps, frames_per_s=fps, headless_steps_per_s=headless)


def row_live_window(opts: Options) -> list[Row]:
    return [_live_row(opts, None)]


def row_live_window_10hz(opts: Options) -> list[Row]:
    """The same at 10 snapshots a second (MainWindow's hz): what a lower frame rate buys."""
    return [_live_row(opts, 10.0)]


# --------------------------------------------------------------------------- (2b) responsiveness
def event_latency(engine: str, seconds: float, tick_ms: float = 20.0) -> tuple[list[float], float]:
    """How late a 20 ms QTimer fires in the window's event loop (ms, one reading per tick) while the
    default scene trains live with ``engine`` (process or thread); also the steps/s it trained at."""
    from PySide6.QtCore import Qt, QTimer

    from explorer.gui.controller import ENGINE_ENV, default_engine

    old = os.environ.get(ENGINE_ENV)
    os.environ[ENGINE_ENV] = engine
    late: list[float] = []
    try:
        with training_window(scene_config(), engine_factory=default_engine()) as (window, _):
            last = [time.perf_counter()]

            def tick() -> None:
                now = time.perf_counter()
                late.append(max(0.0, (now - last[0]) * 1000.0 - tick_ms))
                last[0] = now

            timer = QTimer()
            timer.setTimerType(Qt.TimerType.PreciseTimer)
            timer.timeout.connect(tick)
            s0, t0 = window.last_snapshot.step, time.perf_counter()
            timer.start(int(tick_ms))
            wait(seconds * 1000)
            timer.stop()
            rate = (window.last_snapshot.step - s0) / (time.perf_counter() - t0)
    finally:
        if old is None:
            os.environ.pop(ENGINE_ENV, None)
        else:
            os.environ[ENGINE_ENV] = old
    return late[1:], rate


def row_event_latency(opts: Options) -> list[Row]:
    """p95 of the event loop's lateness while training live: the compute process against a thread."""
    seconds = 2.0 if opts.quick else 5.0
    rows = []
    for engine in ("process", "thread"):
        runs = [event_latency(engine, seconds) for _ in range(opts.reps(3, 2))]
        p95s = [float(np.percentile(late, 95)) for late, _ in runs]
        p50 = statistics.median(float(np.percentile(late, 50)) for late, _ in runs)
        rate = statistics.median(r for _, r in runs)
        rows.append(absolute_row(f"event latency p95 while training live, {engine} engine", p95s, "ms",
                                 f"a 20 ms timer's lateness; median p50 {p50:.1f} ms; training {rate:.0f} steps/s"))
    return rows


# --------------------------------------------------------------------------- (3) one frame
class FrameBench:
    """The mode-seeking scene (1000 q samples) with a shown Figure: measures snapshot, update and paint."""

    def __init__(self, cfg=None, warm_steps: int = 200, size: tuple[int, int] = FIGURE_SIZE):
        from explorer.core.session import Session
        from explorer.gui.figure import Figure

        self.app = application()
        self.session = Session(cfg if cfg is not None else scene_config(("view.samples=1000",)))
        self.session.paused = False  # frames of a running window (a paused frame re-fits the posterior views)
        self.session.step(warm_steps)
        self.figure = Figure()
        self.figure.resize(*size)
        self.figure.update_snapshot(self.session.snapshot())
        self.figure.show()
        self.app.processEvents()

    def close(self) -> None:
        close_widget(self.figure)

    def frame(self) -> tuple[float, float, float]:
        """One frame: (snapshot s, update s, paint s). Steps to a step that logs nothing, so the snapshot
        evaluates its views afresh (the worst case: a logged step shares them with the metric log)."""
        log_every = self.session.config.view.log_every
        self.session.step(1)
        while log_every > 1 and self.session.step_count % log_every == 0:
            self.session.step(1)
        t0 = time.perf_counter()
        snap = self.session.snapshot()
        t1 = time.perf_counter()
        self.figure.update_snapshot(snap)
        t2 = time.perf_counter()
        self.app.processEvents()  # the paint Qt schedules after the update, as in the window
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    def frames(self, n: int) -> np.ndarray:
        """[n, 3] seconds: snapshot, update, paint."""
        return np.array([self.frame() for _ in range(n)])


def row_frame_cost(opts: Options) -> list[Row]:
    bench = FrameBench()
    n = 15 if opts.quick else 40
    try:
        bench.frames(5)
        runs = [bench.frames(n) for _ in range(opts.reps(5, 5))]
    finally:
        bench.close()
    ms = [1e3 * r for r in runs]
    work = [r[:, 0] + r[:, 1] for r in ms]  # snapshot + update, per frame
    med = [float(np.median(w)) for w in work]
    p95 = [float(np.percentile(w, 95)) for w in work]
    snap = statistics.median(float(np.median(r[:, 0])) for r in ms)
    upd = statistics.median(float(np.median(r[:, 1])) for r in ms)
    paint_med = [float(np.median(r[:, 2])) for r in ms]
    whole = [float(np.median(r.sum(axis=1))) for r in ms]
    what = f"{SCENE}: 3 runs, 200² grid, 1000 q samples, K=64; {n} frames per repeat"
    return [
        Row("one frame: snapshot + update every panel, median", "absolute", statistics.median(med), min(med),
            max(med), "ms", "≤ 15 ms", statistics.median(med) <= 15.0, len(med),
            f"{what}; snapshot {snap:.1f} ms + update {upd:.1f} ms"),
        Row("one frame: snapshot + update every panel, p95", "absolute", statistics.median(p95), min(p95),
            max(p95), "ms", "≤ 30 ms", statistics.median(p95) <= 30.0, len(p95), "p95 of each repeat's frames"),
        absolute_row("one frame: the paint that follows (offscreen)", paint_med, "ms",
                     f"{FIGURE_SIZE[0]}×{FIGURE_SIZE[1]} figure, Qt raster; median per repeat"),
        absolute_row("one frame: snapshot + update + paint", whole, "ms", "median per repeat"),
    ]


# --------------------------------------------------------------------------- (5) the paper's sweep
def row_paper_sweep(opts: Options) -> list[Row]:
    from explorer.core.snr_sweep import snr_sweep

    ks = (1, 10, 100) if opts.quick else PAPER_KS
    replicates = 1000 if opts.quick else 10_000
    times = []
    for _ in range(opts.reps(5, 5)):
        t0 = time.perf_counter()
        snr_sweep(2, ("iwae", "dreg"), ks, (1,), replicates, 0.1, 0)
        times.append(time.perf_counter() - t0)
    label = "paper sweep (quick subset)" if opts.quick else "paper sweep: snr, iwae+dreg, K=1…1000, R=10000"
    return [Row(f"{label}, wall time", "absolute", statistics.median(times), min(times), max(times), "s",
                "≤ 20 s", statistics.median(times) <= 20.0, len(times),
                f"gaussian dim 2, K={','.join(map(str, ks))}, R={replicates}, "
                f"{torch.get_num_threads()} torch thread(s) (the CLI's default)")]


# --------------------------------------------------------------------------- (6) start-up
IMPORTS = "import explorer.cli, explorer.core.session, explorer.gui.shot, explorer.gui.figure"


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def shot_startup(out: Path) -> tuple[float, float]:
    """(seconds from launch to the PNG written, seconds to the process's exit) of a ``shot --steps 0``."""
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "main.py"), "shot", "--preset", SCENE, "--steps", "0", "--out", str(out)]
    t_wall, t0 = time.time(), time.perf_counter()
    subprocess.run(cmd, env=_subprocess_env(), check=True, capture_output=True)
    exit_s = time.perf_counter() - t0
    return out.stat().st_mtime_ns / 1e9 - t_wall, exit_s


def import_time() -> float:
    """Seconds for a fresh interpreter to start and import what ``shot`` needs."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], env=_subprocess_env(), check=True, capture_output=True)
    return time.perf_counter() - t0


def row_startup(opts: Options) -> list[Row]:
    n = opts.reps(5, 5)
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "shot.png"
        shot_startup(png)  # warm the file cache
        shots, imports = [], []
        for _ in range(n):  # interleaved, so both see the same load
            shots.append(shot_startup(png))
            imports.append(import_time())
    to_png = [a for a, _ in shots]
    to_exit = [b for _, b in shots]
    return [
        Row("shot --steps 0: launch to PNG written", "absolute", statistics.median(to_png), min(to_png),
            max(to_png), "s", "≤ 3 s", statistics.median(to_png) <= 3.0, n,
            f"subprocess; process exit after {statistics.median(to_exit):.2f} s"),
        absolute_row("shot --steps 0: interpreter start + imports", imports, "s",
                     "python -c 'import explorer.cli, explorer.core.session, explorer.gui.shot, "
                     "explorer.gui.figure'"),
    ]


# --------------------------------------------------------------------------- (7) the GPU
GPU_SCENE = {"problem": {"name": "bimodal"}, "train": {"encoder": "gaussian", "batch_size": 256},
             "view": {"snr_every": 0, "log_every": 10**9}, "runs": [{"objective": "iwae", "k": 1024}]}


def row_cuda(opts: Options) -> list[Row]:
    name = "steps/s on CUDA ÷ CPU, IWAE K=1024 B=256"
    if not torch.cuda.is_available():
        nan = float("nan")
        return [Row(name, "ratio", nan, nan, nan, "×", "", None, 0, "no CUDA device")]
    from explorer.core.session import Session

    cfg = config_from_dict(GPU_SCENE)
    gpu, cpu = Session(cfg, device="cuda"), Session(cfg, device="cpu")
    n = 10 if opts.quick else 30

    def timed(session) -> float:
        session.step(1)
        if session.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        session.step(n)
        if session.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / n

    pairs = interleaved(lambda: timed(gpu), lambda: timed(cpu), opts.reps(5, 3))
    gpu_rate = statistics.median(1.0 / ta for ta, _ in pairs)
    cpu_rate = statistics.median(1.0 / tb for _, tb in pairs)
    return [ratio_row(name, pairs, invert=True, target=None,
                      note=f"{torch.cuda.get_device_name(0)}: {gpu_rate:.0f} steps/s, cpu {cpu_rate:.1f} steps/s")]


ROWS: list[Callable[[Options], list[Row]]] = [row_live_window, row_live_window_10hz, row_event_latency,
                                              row_frame_cost,
                                              row_paper_sweep, row_startup, row_cuda]
