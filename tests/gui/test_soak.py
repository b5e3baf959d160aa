"""The soak test, short: 2 000 steps of the default scene in the offscreen window, drawing live
(``python -m benchmarks.soak --steps 2000`` in a subprocess, as ``make soak`` runs the 20 000-step one)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_soak_2000_steps_keeps_memory_flat_with_no_qt_warning_and_no_thread_left(tmp_path):
    report_path = tmp_path / "soak.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VAE_EXPLORER_SETTINGS=str(tmp_path / "settings.ini"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--steps", "2000", "--json", str(report_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "soak: OK" in proc.stdout
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["ok"] and report["missed"] == []
    assert report["steps"] >= 2000 and report["frames"] > 10  # it trained and drew
    assert report["growth_mb"] < 50.0
    assert report["qt_warnings"] == [] and report["errors"] == []
    assert report["leaked_threads"] == [] and report["python_threads_end"] == ["MainThread"]
    assert report["state_at_end"] == "running"
