"""Soak test: the main window trains a scene live (offscreen) for many steps, drawing as it goes.

``python -m benchmarks.soak [--steps 20000] [--preset mode-seeking] [--json FILE]`` (``make soak``).

Reports resident memory after a warm-up and at the end (target: growth < 50 MB). Each figure is the
median of the first / last tenth of ~50 readings taken as training goes, each after glibc's
``malloc_trim`` (see ``trim_heap``): single untrimmed readings swing by ±20 MB as the SNR probes' large
temporaries come and go, and jump by ~50 MB for good once the allocator starts keeping them; both
figures are printed. Also reported: every Qt warning
(a ``qInstallMessageHandler`` collects them; target: none; the offscreen platform's notes that the
GUI tests also ignore are counted apart), the threads left once the window has closed (target: only the
main Python thread; the OS thread count is reported too), the window's error messages (target: none)
and the training rate. Exits 1 when a target is missed, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MAX_GROWTH_MB = 50.0


def rss_mb() -> float:
    """Resident set size now (VmRSS), in MB; the peak from getrusage where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def trim_heap() -> bool:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim), so that RSS counts live memory,
    not what the allocator keeps for later. Without it the readings depend on glibc's dynamic mmap
    threshold: the SNR probes' large temporaries are returned to the OS at first, then (once the threshold
    has risen past them) kept in the heap, and RSS jumps by ~50 MB at some step and stays there, no leak
    involved. False where there is no glibc."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


def os_threads() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class QtMessages:
    """Collects Qt's warnings (and worse) through qInstallMessageHandler."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.ignored: list[str] = []
        self._previous = None

    def install(self) -> None:
        from PySide6.QtCore import qInstallMessageHandler

        self._previous = qInstallMessageHandler(self._handle)

    def uninstall(self) -> None:
        from PySide6.QtCore import qInstallMessageHandler

        qInstallMessageHandler(self._previous)

    def _handle(self, kind, _context, message: str) -> None:
        from PySide6.QtCore import QtMsgType

        if kind in (QtMsgType.QtDebugMsg, QtMsgType.QtInfoMsg):
            return
        text = f"{kind.name}: {message}"
        from benchmarks.bench_gui import QT_NOISE

        (self.ignored if any(p in message for p in QT_NOISE) else self.warnings).append(text)


def soak(steps: int, preset: str, timeout_s: float, warmup: int) -> dict:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from benchmarks.bench_gui import private_settings
    from explorer.core.threads import set_threads
    from explorer.core.config import load_preset

    set_threads()
    messages = QtMessages()
    messages.install()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from explorer.gui.main_window import MainWindow

    def wait(ms: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(ms), loop.quit)
        loop.exec()

    def run_until(condition, limit_s: float) -> bool:
        deadline = time.perf_counter() + limit_s
        while not condition():
            if time.perf_counter() > deadline:
                return False
            wait(100)
        return True

    frames: list[int] = []
    errors: list[str] = []
    report: dict = {"preset": preset, "steps_asked": steps}
    python_threads_before = {t for t in threading.enumerate() if t.is_alive()}
    with private_settings():
        # the window pauses at a scene's steps: give it room past ours, so that it is still running at the end
        window = MainWindow(load_preset(preset, [f"steps={2 * steps}"]))
        window.snapshot_shown.connect(frames.append)
        window.error_shown.connect(errors.append)
        window.resize(1500, 950)
        window.show()
        report["rss_window_mb"] = rss_mb()
        if not run_until(lambda: bool(frames), 60.0):
            errors.append("the window drew no snapshot within 60 s")
        t_start = time.perf_counter()
        window.controller.start()
        warm = run_until(lambda: window.last_snapshot.step >= warmup, timeout_s)
        report["rss_start_raw_mb"] = rss_mb()
        report["heap_trimmed"] = trim_heap()
        report["rss_start_mb"] = rss_mb()
        report["threads_start"] = os_threads()
        step0, frames0, t0 = window.last_snapshot.step, len(frames), time.perf_counter()
        # (step, MB as the process stands, MB after trimming the heap), every ~2 % of the steps
        trace: list[tuple[int, float, float]] = [(step0, report["rss_start_raw_mb"], report["rss_start_mb"])]
        every = max(1, (steps - step0) // 50)

        def finished() -> bool:
            step = window.last_snapshot.step
            if step >= trace[-1][0] + every:
                raw = rss_mb()
                trim_heap()
                trace.append((step, raw, rss_mb()))
            return step >= steps

        done = warm and run_until(finished, timeout_s - (t0 - t_start))
        report["rss_trace"] = trace
        t1 = time.perf_counter()
        report["steps"] = window.last_snapshot.step
        report["rss_end_raw_mb"] = rss_mb()
        trim_heap()
        report["rss_end_mb"] = rss_mb()
        report["threads_running"] = os_threads()
        report["state_at_end"] = window.state
        report["wall_s"] = t1 - t_start
        report["steps_per_s"] = (report["steps"] - step0) / max(t1 - t0, 1e-9)
        report["frames_per_s"] = (len(frames) - frames0) / max(t1 - t0, 1e-9)
        report["frames"] = len(frames)
        report["diverged"] = [r.name for r in (window.last_snapshot.runs if window.last_snapshot else ())
                              if r.diverged_step is not None]
        if not done:
            errors.append(f"stopped at step {report['steps']} of {steps}: timed out after {timeout_s:.0f} s")
        window.close()
        window.deleteLater()
        app.processEvents()
        wait(200)
    leaked = [t.name for t in threading.enumerate()
              if t.is_alive() and not t.daemon and t not in python_threads_before]
    report["threads_end"] = os_threads()
    report["python_threads_end"] = [t.name for t in threading.enumerate() if t.is_alive()]
    report["leaked_threads"] = leaked
    report["rss_after_close_mb"] = rss_mb()
    # the figures are the medians of the first and the last tenth of the readings (after trimming the
    # heap), not single readings: the SNR probes' large temporaries come and go
    trace = report.get("rss_trace") or [(0, report["rss_start_raw_mb"], report["rss_start_mb"]),
                                        (0, report["rss_end_raw_mb"], report["rss_end_mb"])]
    tenth = max(1, len(trace) // 10)
    report["rss_start_median_mb"] = statistics.median(t[2] for t in trace[:tenth])
    report["rss_end_median_mb"] = statistics.median(t[2] for t in trace[-tenth:])
    report["growth_mb"] = report["rss_end_median_mb"] - report["rss_start_median_mb"]
    report["raw_growth_mb"] = (statistics.median(t[1] for t in trace[-tenth:])
                               - statistics.median(t[1] for t in trace[:tenth]))
    report["qt_warnings"] = messages.warnings
    report["qt_ignored"] = len(messages.ignored)
    report["errors"] = errors
    messages.uninstall()
    return report


def verdict(report: dict, max_growth_mb: float) -> list[str]:
    """The targets missed (empty: all met)."""
    missed = []
    if report["growth_mb"] >= max_growth_mb:
        missed.append(f"memory grew {report['growth_mb']:.1f} MB (target < {max_growth_mb:g} MB)")
    if report["qt_warnings"]:
        missed.append(f"{len(report['qt_warnings'])} Qt warning(s)")
    if report["leaked_threads"]:
        missed.append(f"threads left running: {report['leaked_threads']}")
    if report["errors"]:
        missed.append(f"errors: {report['errors']}")
    if report["steps"] < report["steps_asked"]:
        missed.append(f"trained {report['steps']} of {report['steps_asked']} steps")
    return missed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000, help="training steps (default 20000)")
    p.add_argument("--preset", default="mode-seeking", help="the scene (default: mode-seeking)")
    p.add_argument("--warmup", type=int, help="steps before the start figures (default: steps/20, 50…500)")
    p.add_argument("--max-growth-mb", type=float, default=MAX_GROWTH_MB)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before giving up")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    warmup = args.warmup if args.warmup is not None else max(50, min(500, args.steps // 20))
    report = soak(args.steps, args.preset, args.timeout, min(warmup, args.steps))
    missed = verdict(report, args.max_growth_mb)
    report["ok"] = not missed
    report["missed"] = missed
    print(f"soak: {report['preset']}, {report['steps']} steps in {report['wall_s']:.0f} s "
          f"({report['steps_per_s']:.0f} steps/s, {report['frames_per_s']:.1f} frames/s drawn, "
          f"{report['frames']} frames)")
    trimmed = "heap trimmed before each reading" if report["heap_trimmed"] else "no glibc: heap not trimmed"
    print(f"  resident memory: {report['rss_start_median_mb']:.1f} MB at the start (after {warmup} steps) -> "
          f"{report['rss_end_median_mb']:.1f} MB at the end: {report['growth_mb']:+.1f} MB (target < "
          f"{args.max_growth_mb:g} MB; {trimmed}; medians of the first and last tenth of "
          f"{len(report['rss_trace'])} readings)")
    print(f"  untrimmed readings: {report['raw_growth_mb']:+.1f} MB ({report['rss_start_raw_mb']:.1f} -> "
          f"{report['rss_end_raw_mb']:.1f} MB); {report['rss_window_mb']:.1f} MB when the window showed, "
          f"{report['rss_after_close_mb']:.1f} MB after closing it")
    print("  trace (step: MB untrimmed / trimmed): "
          + ", ".join(f"{step}: {raw:.0f}/{mb:.0f}" for step, raw, mb in report["rss_trace"]))
    print(f"  Qt warnings: {len(report['qt_warnings'])} (target 0); offscreen-platform notes ignored: "
          f"{report['qt_ignored']}")
    for w in report["qt_warnings"][:20]:
        print(f"    {w}")
    print(f"  threads: {report['threads_running']} OS threads while training, {report['threads_end']} after "
          f"closing; Python threads left: {report['python_threads_end']} (leaked: {report['leaked_threads'] or 'none'})")
    if report["diverged"]:
        print(f"  diverged runs (reported, not a failure): {report['diverged']}")
    if report["errors"]:
        print(f"  errors: {report['errors']}")
    print("soak: OK" if not missed else "soak: FAILED: " + "; ".join(missed))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
