"""Sweeps on Dask (pitfalls.md's recipe: a LocalCluster of 2 one-thread worker processes in a fixture that
closes client and cluster; torch threads set inside each task; deterministic keys):

- the points of a sweep give the numbers of the same points run one by one with ``run``, bit for bit;
- a worker killed mid-sweep: its point is retried, and every point is recorded exactly once;
- a second invocation skips finished points; a failing point is recorded with its error, the others go on.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import tomli_w
import torch

from explorer.cli import main
from explorer.core.sweep import SweepFolder, expand, load_spec
from explorer.core.sweep_dask import dask_key, run_sweep

distributed = pytest.importorskip("distributed")

TINY = {"steps": 6, "device": "cpu",
        "problem": {"name": "gaussian", "n_data": 32},
        "train": {"batch_size": 8, "hidden": [8]},
        "view": {"grid": 16, "samples": 4, "snr_every": 3, "snr_replicates": 4, "log_every": 2},
        "runs": [{"objective": "iwae", "k": 2}, {"objective": "vae"}]}
SPEC = {"base": TINY, "axes": {"seed": [0, 1], "runs.0.k": [1, 4]}}  # 2 seeds × 2 K


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


def test_a_sweep_gives_the_numbers_of_run_bit_for_bit(cluster, tmp_path, capsys):
    table = run_sweep(SPEC, tmp_path / "sweep", scheduler=cluster[0].scheduler_address, progress=False)
    points = expand(load_spec(SPEC))
    assert (table.points, table.done, table.failed, table.skipped) == (4, 4, 0, 0)
    for point in points:
        scene = tmp_path / f"{point.key}.toml"
        scene.write_text(tomli_w.dumps(dict(point.config)), encoding="utf-8")
        assert main(["run", "--config", str(scene), "--out", str(tmp_path / "run" / point.key)]) == 0
        ran, swept = tmp_path / "run" / point.key, tmp_path / "sweep" / "points" / point.key
        assert (swept / "metrics.csv").read_bytes() == (ran / "metrics.csv").read_bytes()
        mine, theirs = (json.loads((d / "summary.json").read_text()) for d in (swept, ran))
        for key in ("wall_s", "steps_per_s"):  # timings differ; everything else is the same
            mine.pop(key), theirs.pop(key)
        assert mine == theirs
        assert {r["value"] for r in table.rows if r["point"] == point.key and r["metric"] == "kl_qp"} == \
               {run["final"]["kl_qp"] for run in theirs["runs"]}
    capsys.readouterr()


def test_the_default_local_cluster_runs_a_sweep_and_a_second_invocation_skips_finished_points(tmp_path, monkeypatch):
    first = run_sweep(SPEC, tmp_path, workers=2, progress=False)
    assert (first.done, first.skipped, first.failed) == (4, 0, 0)
    stamps = {p.name: (p / "result.json").stat().st_mtime_ns for p in (tmp_path / "points").iterdir()}

    def no_cluster(*args, **kwargs):
        raise AssertionError("a sweep with nothing left to run started a cluster")

    monkeypatch.setattr("explorer.core.sweep_dask._client", no_cluster)
    second = run_sweep(SPEC, tmp_path, workers=2, progress=False)
    assert (second.done, second.skipped) == (0, 4)
    assert second.rows == first.rows
    assert {p.name: (p / "result.json").stat().st_mtime_ns for p in (tmp_path / "points").iterdir()} == stamps


def test_a_killed_worker_s_point_is_retried_and_every_point_is_recorded_once(cluster, tmp_path, monkeypatch):
    local, client = cluster
    spec = {"base": {**TINY, "steps": 300}, "axes": {"seed": [0, 1], "runs.0.k": [1, 4]}}
    points = expand(load_spec(spec))
    written = Counter()
    record = SweepFolder.record

    def counting(self, point, result):
        done = record(self, point, result)
        written[point.key] += done
        return done

    monkeypatch.setattr(SweepFolder, "record", counting)
    killed: list[str] = []

    def kill_a_worker_computing_a_point() -> None:
        keys = {dask_key(p) for p in points}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for address, tasks in client.processing().items():
                if keys & set(map(str, tasks)):
                    pid = client.run(os.getpid, workers=[address])[address]
                    os.kill(pid, signal.SIGKILL)
                    killed.extend(keys & set(map(str, tasks)))
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_computing_a_point)
    killer.start()
    try:
        table = run_sweep(spec, tmp_path, scheduler=local.scheduler_address, progress=False)
    finally:
        killer.join()
    assert killed, "no worker was killed while computing a point"
    assert (table.points, table.done, table.failed) == (4, 4, 0)
    assert written == Counter({p.key: 1 for p in points})
    assert sorted({r["point"] for r in table.rows}) == sorted(p.key for p in points)
    assert len(table.rows) == len({(r["point"], r["run"], r["metric"]) for r in table.rows})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failing point asks for a CUDA GPU that is here")
def test_a_failing_point_is_recorded_with_its_error_and_runs_again_next_time(cluster, tmp_path):
    spec = {"base": TINY, "axes": {"device": ["cpu", "cuda"], "seed": [0]}}
    table = run_sweep(spec, tmp_path, scheduler=cluster[0].scheduler_address, progress=False)
    assert (table.done, table.failed) == (2, 1)
    [failed] = [r for r in table.rows if r["status"] == "failed"]
    assert failed["device"] == "cuda" and "device: 'cuda' was asked for" in failed["error"]
    assert {r["device"] for r in table.rows if r["status"] == "ok"} == {"cpu"}
    again = run_sweep(spec, tmp_path, scheduler=cluster[0].scheduler_address, progress=False)
    assert (again.done, again.skipped, again.failed) == (1, 1, 1)


def test_the_cli_writes_the_table_and_exits_1_when_a_point_failed(cluster, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(tomli_w.dumps({"base": TINY, "axes": {"seed": [0, 1]}}), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", cluster[0].scheduler_address,
                 "--set", "steps=2"]) == 0
    text = capsys.readouterr().out
    assert "2 points: 2 run now, 0 already finished, 0 failed" in text and (out / "results.csv").is_file()
    assert {json.loads((p / "summary.json").read_text())["steps"] for p in (out / "points").iterdir()} == {2}
    if not torch.cuda.is_available():
        assert main(["sweep", str(spec), "--out", str(out), "--scheduler", cluster[0].scheduler_address,
                     "--set", "steps=2", "--set", 'device="cuda"']) == 1
        assert "failed: " in capsys.readouterr().out


def test_a_scheduler_that_is_not_there_is_bad_input(tmp_path, capsys):
    assert main(["sweep", str(Path(__file__).parents[2] / "assets" / "sweeps" / "snr-vs-k.toml"), "--out",
                 str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "--scheduler: cannot connect to 'tcp://127.0.0.1:9'" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_keeps_what_finished_and_the_next_invocation_finishes(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl+C: exit 130, the finished points in the
    table, no traceback; the same command again runs only the rest."""
    import glob
    import subprocess
    import sys

    root = Path(__file__).parents[2]
    spec = tmp_path / "spec.toml"
    spec.write_text(tomli_w.dumps({"base": {**TINY, "steps": 300}, "axes": {"seed": list(range(12))}}), encoding="utf-8")
    command = [sys.executable, "main.py", "sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "2"]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not glob.glob(str(tmp_path / "out" / "points" / "*" / "result.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in out and "Traceback" not in err
    done = len(glob.glob(str(tmp_path / "out" / "points" / "*" / "result.json")))
    assert 1 <= done < 12
    assert (tmp_path / "out" / "results.csv").read_text().count("\n") > 1
    again = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"{12 - done} run now, {done} already finished" in again.stdout
