"""The command line's reaction time: from Ctrl+C (SIGINT) to the exit of a headless ``run``, with its
summary.json and metrics.csv written. (The test suite asserts the behaviour, that the run stops after
the step the signal arrives in; the time it takes belongs here.)
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Options, Row

ROOT = Path(__file__).resolve().parent.parent

# `run`, with a marker file written at its first training step: the signal handlers are installed by then
_RUN_WITH_MARKER = r"""
import sys
import explorer.core.session as session_mod
_step = session_mod.Session.step
def step(self, n=1):
    open(sys.argv[1], "a").close()
    return _step(self, n)
session_mod.Session.step = step
from explorer.cli import main
sys.exit(main(sys.argv[2:]))
"""


def stop_seconds(folder: Path, steps_before: float = 0.3) -> float:
    """Seconds from SIGINT to the exit of ``run --preset mode-seeking`` a moment into training."""
    marker, out = folder / "training", folder / "out"
    marker.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_WITH_MARKER, str(marker), "run", "--preset", "mode-seeking",
         "--steps", "1000000", "--set", "view.grid=64", "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not marker.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the run exited with {proc.returncode} before training")
            time.sleep(0.02)
        time.sleep(steps_before)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
        seconds = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 130:
        raise RuntimeError(f"the interrupted run exited with {code}, not 130")
    return seconds


def row_stop_latency(opts: Options) -> list[Row]:
    n = opts.reps(5, 3)
    with tempfile.TemporaryDirectory() as folder:
        times = [stop_seconds(Path(folder)) for _ in range(n)]
    med = statistics.median(times)
    return [Row("run: Ctrl+C to exit, summary and metrics written", "absolute", med, min(times), max(times), "s",
                "≤ 2 s", med <= 2.0, n, "mode-seeking, view.grid=64, interrupted 0.3 s into training")]


ROWS = [row_stop_latency]
