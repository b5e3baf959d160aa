"""Sweeps and the Python API (issue 15):

- sweep throughput: the same points run by ``run_sweep`` on a LocalCluster of 2 worker processes against a
  serial loop of ``run_point`` in this process, as serial time ÷ sweep time; once with the cluster's
  start-up and close counted (what a user waits for), once on a cluster already running (the points alone);
- the README's API example against the CLI doing the same work (both in fresh processes, imports included).
"""
from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import Options, Row

ROOT = Path(__file__).resolve().parent.parent

BASE = {"steps": 3000, "device": "cpu", "problem": {"name": "gaussian", "learn_decoder": True},
        "train": {"batch_size": 64, "lr": 0.001, "encoder": "linear"},
        "view": {"grid": 64, "samples": 100, "snr_every": 250, "snr_replicates": 64, "log_every": 50},
        "runs": [{"objective": "iwae"}]}

API = """
from explorer import Session, load_preset
session = Session(load_preset("mode-seeking", ["view.grid=100"]))
session.step(300)
for run in session.snapshot().runs:
    m = run.metrics
"""


def _spec(n_points: int) -> dict:
    return {"base": BASE, "axes": {"seed": list(range(n_points // 2)), "runs.0.k": [4, 16]}}


def _serial(spec: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of the points run one by one in this process."""
    from explorer.core.sweep import expand, load_spec, run_point

    t0, c0 = time.perf_counter(), time.process_time()
    for point in expand(load_spec(spec)):
        assert run_point(point.config)["status"] == "ok"
    return time.perf_counter() - t0, time.process_time() - c0


def _swept(spec: dict, scheduler: str | None, client=None) -> tuple[float, float]:
    """(wall, CPU of the workers) seconds of a sweep; the CPU only on a running cluster (``client``)."""
    from explorer.core.sweep_dask import run_sweep

    cpu = (lambda: sum(client.run(time.process_time).values())) if client is not None else (lambda: math.nan)
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), cpu()
        table = run_sweep(spec, out, workers=None if scheduler else 2, scheduler=scheduler, progress=False)
        seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    assert table.failed == 0 and table.done == table.points
    return seconds, cpu_seconds


def row_sweep_throughput(opts: Options) -> list[Row]:
    from distributed import Client

    from explorer.core.sweep_dask import local_cluster

    n_points, repeats = (4, 1) if opts.quick else (8, opts.reps(3, 1))
    spec = _spec(n_points)
    with_start, running, cpu = [], [], []
    cluster = local_cluster(2)
    client = Client(cluster)
    try:
        _swept(spec, cluster.scheduler_address)  # warm the workers' imports
        for _ in range(repeats):  # A, B, C interleaved
            serial, serial_cpu = _serial(spec)
            with_start.append((serial, _swept(spec, None)[0]))
            wall, workers_cpu = _swept(spec, cluster.scheduler_address, client)
            running.append((serial, wall))
            cpu.append((workers_cpu, serial_cpu))
    finally:
        client.close()
        cluster.close()
    load = os.getloadavg()[0]
    rows = []
    for name, pairs in (("cluster start-up and close included", with_start), ("on a running cluster", running)):
        ratios = [s / p for s, p in pairs]
        med = statistics.median(ratios)
        note = (f"{n_points} points of ~{statistics.median(s for s, _ in pairs) / n_points:.1f} s serial; "
                f"{os.cpu_count()} CPUs, load {load:.1f}")
        rows.append(Row(f"sweep, 2 workers ÷ serial loop ({name})", "ratio", med, min(ratios), max(ratios), "×",
                        "≥ 1.7", med >= 1.7, len(ratios), note))
    ratios = [w / s for w, s in cpu]
    rows.append(Row("sweep: CPU time of the points, workers ÷ serial", "ratio", statistics.median(ratios), min(ratios),
                    max(ratios), "×", "≤ 1.1", statistics.median(ratios) <= 1.1, len(ratios),
                    "≈ 1: no Dask overhead per point, so the speed-up is the CPU the machine gives the two workers"))
    return rows


def _seconds(args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("VAE_EXPLORER_THREADS", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def row_api_against_cli(opts: Options) -> list[Row]:
    """The README's API example ÷ ``run`` of the same scene and steps (the library sets torch's threads)."""
    n = opts.reps(5, 1)
    cli = ["main.py", "run", "--preset", "mode-seeking", "--set", "view.grid=100", "--steps", "300"]
    ratios = [_seconds(["-c", API]) / _seconds(cli) for _ in range(n)]
    med = statistics.median(ratios)
    return [Row("README API example ÷ CLI run (300 steps, mode-seeking)", "ratio", med, min(ratios), max(ratios), "×",
                "≤ 1.5", med <= 1.5, n, f"fresh processes, imports included; load {os.getloadavg()[0]:.1f}")]


ROWS = [row_sweep_throughput, row_api_against_cli]
