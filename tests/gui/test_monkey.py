"""The monkey at CI size: seeded random GUI actions against the window, on each engine, in child
processes (``python -m benchmarks.monkey``, each run in a fresh ``python -X faulthandler``), so that an
abort (exit 134) or a segfault (139) fails the test with the Python stack where it happened and the last
actions done. ``make soak`` runs the long one (thousands of actions, more seeds).

Each run must end with: exit 0, no Qt warning, no exception in a Qt callback, no error box that no
action should cause (training that raised, a compute process that died), no thread or process left
once the window has closed (a training thread that was still in a step or a build gets a minute to end),
and the session alive (a snapshot of a later step after a final Start).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (0, 1)
ACTIONS = 100  # asked per run; bursts make it ~110-130 done


def _describe(run: dict) -> str:
    lines = [f"seed {run.get('seed')}, {run.get('engine')} engine: {run.get('problems')}"]
    for key in ("unexpected_errors", "exceptions", "qt_warnings", "leaked_threads", "leaked_processes",
                "widgets_left", "log_warnings"):
        lines += [f"  {key}: {item}" for item in run.get(key, [])[:5]]
    lines.append(f"  training threads left: {run.get('training_threads_left')}")
    lines += [f"  last action: {a}" for a in run.get("last_actions", [])]
    if run.get("stderr_tail"):
        lines.append(run["stderr_tail"])
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["process", "thread"])
def test_random_gui_actions_never_crash_warn_or_leak_and_the_session_lives(tmp_path, engine):
    report_path = tmp_path / "monkey.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.monkey", "--seeds", ",".join(map(str, SEEDS)),
                           "--actions", str(ACTIONS), "--engines", engine, "--jobs", str(len(SEEDS)),
                           "--json", str(report_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert report_path.is_file(), proc.stdout + proc.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    runs = report["runs"]
    assert [r["seed"] for r in runs] == list(SEEDS)
    assert all(not r["problems"] for r in runs), "\n\n".join(_describe(r) for r in runs if r["problems"])
    assert proc.returncode == 0 and report["ok"], proc.stdout + proc.stderr
    for run in runs:
        assert run["returncode"] == 0 and run["alive"] and run["state_at_end"] == "running"
        assert run["actions_done"] >= ACTIONS  # a burst counts each of its actions
        assert run["step_at_end"] > run["step_before_final_start"]
        # it did what a user would: trained, rebuilt, met bad files and unwritable folders
        assert run["builds"] >= 5 and run["errors_shown"] >= 5
        assert {"spin box", "preset", "open file", "write file", "gif", "story"} <= set(run["counts"])


def test_a_report_fails_on_a_crash_a_warning_a_leak_or_a_dead_session():
    from benchmarks.monkey import problems

    clean = {"returncode": 0, "alive": True, "qt_warnings": [], "exceptions": [], "unexpected_errors": [],
             "leaked_threads": [], "leaked_processes": [], "widgets_left": [], "log_warnings": []}
    assert problems(clean) == []
    assert problems({**clean, "returncode": -6}) == ["exit code -6 (SIGABRT)"]
    assert problems({**clean, "returncode": -11}) == ["exit code -11 (SIGSEGV)"]
    assert problems({**clean, "alive": False}) == ["the session was not alive at the end"]
    for key in ("qt_warnings", "exceptions", "unexpected_errors", "leaked_threads", "leaked_processes",
                "widgets_left"):
        assert problems({**clean, key: ["something"]}) == [f"1 {key.replace('_', ' ')}"]
    assert problems({**clean, "training_threads_left": 1}) == [
        "1 training thread(s) still running 60 s after the window closed"]
    assert problems({**clean, "log_warnings": ["explorer.gui.engine: the training thread did not stop within "
                                               "0.9 s; it ends after its current work"]}) == []
