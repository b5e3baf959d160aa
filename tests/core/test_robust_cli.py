"""Nothing lost, nothing misleading (issue 18): `run`'s outputs are one unit whatever signal arrives and
whenever; a signal at any moment is one line and 128 + its number; a second run into a folder is refused;
a full disk is a failure at run time (exit 1) leaving nothing half-written; `shot` never leaves a
temporary file or swallows a signal; a run whose numbers contradict each other is marked suspect.

In-process tests send the signal to this process at a chosen point (the handlers run in the main thread
at the next bytecode); subprocess tests cover start-up and real OS failures (RLIMIT_FSIZE)."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from explorer import cli_runtime
from explorer.cli import main
from explorer.cli_runtime import RunFolder
from explorer.core import files
from explorer.core.sanity import assess_run

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "view.grid=32", "--set", "view.samples=20", "--set", "view.snr_replicates=8",
        "--set", "view.snr_every=10", "--set", "runs.1.k=8", "--set", "runs.2.k=8"]
RUN = ["run", "--preset", "mode-seeking", "--steps", "5", *TINY]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
ENV.pop("VAE_EXPLORER_DEBUG", None)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _check_unit(folder: Path) -> dict:
    """Both outputs, nothing else, and the summary's manifest matches the metrics file byte for byte."""
    assert _files(folder) == ["metrics.csv", "summary.json"]
    summary = _summary(folder)
    data = (folder / "metrics.csv").read_bytes()
    assert summary["outputs"]["metrics.csv"] == files.file_digest(data)
    return summary


# --------------------------------------------------------------------------- signals at chosen moments
def _signal_on(monkeypatch, target, name, sig, after_calls=1):
    """Make ``target.name`` send ``sig`` to this process on its n-th call, then carry on."""
    original = getattr(target, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == after_calls:
            os.kill(os.getpid(), sig)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_while_writing_still_gives_the_whole_unit_marked_interrupted(monkeypatch, capsys, tmp_path,
                                                                               sig, code):
    _signal_on(monkeypatch, cli_runtime, "_write_synced", sig)  # lands inside the first file's write
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == code
    summary = _check_unit(out)
    assert summary["steps"] == 5 and summary["interrupted"] is True
    assert summary["interrupted_in"] == "writing the outputs"
    assert summary["interrupted_by"] == signal.Signals(sig).name
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and signal.Signals(sig).name in err[0]


def test_a_signal_between_the_two_renames_loses_nothing(monkeypatch, capsys, tmp_path):
    _signal_on(monkeypatch, cli_runtime.os, "replace", signal.SIGINT)  # after metrics.csv, before summary.json
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == 130
    summary = _check_unit(out)
    assert summary["interrupted"] is True and summary["steps"] == 5


def test_a_signal_during_the_build_writes_a_summary_marked_interrupted(monkeypatch, capsys, tmp_path):
    import explorer.core.session as session_mod

    _signal_on(monkeypatch, session_mod, "Viewer", signal.SIGTERM)  # inside Session(...)
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == 143
    summary = _check_unit(out)
    assert summary["interrupted"] is True and summary["interrupted_in"] == "start-up"
    assert summary["steps"] == 0 and summary["runs"] == []
    assert summary["config"]["problem"]["name"] == "bimodal"


def test_a_signal_after_the_loop_still_writes_everything(monkeypatch, capsys, tmp_path):
    import explorer.core.session as session_mod

    _signal_on(monkeypatch, session_mod.Session, "summary", signal.SIGINT)  # the issue: this lost everything
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == 130
    summary = _check_unit(out)
    assert summary["interrupted"] is True and summary["steps"] == 5


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_during_start_up_is_one_line_never_a_traceback(tmp_path, sig, code):
    """Sent 0.3 s after launch: the interpreter is importing torch (about 1-2 s here), or, on a fast
    machine, a little later; wherever it lands the answer is the same."""
    proc = subprocess.Popen([sys.executable, "main.py", "run", "--preset", "mode-seeking", "--steps", "1000000",
                             "--out", str(tmp_path / "out")], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr and signal.Signals(sig).name in lines[0], stderr
    if (tmp_path / "out").exists():  # the folder was claimed: the unit is there, marked interrupted
        assert _check_unit(tmp_path / "out")["interrupted"] is True


# --------------------------------------------------------------------------- one folder, one run
def test_a_second_run_into_the_same_folder_is_refused_and_the_first_is_kept(capsys, tmp_path):
    out = tmp_path / "out"
    assert main([*RUN, "--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in _files(out)}
    assert main([*RUN, "--seed", "7", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and len(err.strip().splitlines()) == 1
    assert {name: (out / name).read_bytes() for name in _files(out)} == before


def test_a_folder_claimed_by_a_live_run_is_refused_a_dead_ones_lock_is_taken_over(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / RunFolder.LOCK).write_text(f"{os.getppid()}\n")  # a live process
    assert main([*RUN, "--out", str(out)]) == 2
    assert "another run" in capsys.readouterr().err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / RunFolder.LOCK).write_text(f"{dead.pid}\n")
    assert main([*RUN, "--out", str(out)]) == 0
    _check_unit(out)


def test_a_full_disk_is_exit_1_and_leaves_no_half_unit(tmp_path):
    """RLIMIT_FSIZE makes the metrics file's write fail (EFBIG) as a full disk would: the results are
    printed, nothing stays in the folder, and the exit code says failure at run time, not bad input."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "main.py", *RUN, "--steps", "60", "--out", str(out)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the outputs" in lines[0] and "Traceback" not in proc.stderr
    assert "VAE K=1" in proc.stdout  # the numbers were shown before the write failed
    assert _files(out) == []


# --------------------------------------------------------------------------- shot
_SHOT = r"""
import os, signal, sys
import explorer.gui.export as export
original = export.atomic_write
def atomic_write(path, write):
    def interrupted_write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"GIF89a partial")
        os.kill(os.getpid(), int(sys.argv[1]))  # a signal while the .part file exists
        write(tmp)
    return original(path, interrupted_write)
export.atomic_write = atomic_write
from explorer.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("name", ["x.gif", "x.png"])
def test_an_interrupted_shot_leaves_nothing_and_says_so(tmp_path, sig, code, name):
    env = dict(ENV, QT_QPA_PLATFORM="offscreen")
    args = ["shot", "--preset", "mode-seeking", "--steps", "4", *TINY, "--out", str(tmp_path / name),
            "--frames", "3", "--width", "200"]
    proc = subprocess.run([sys.executable, "-c", _SHOT, str(int(sig)), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert signal.Signals(sig).name in proc.stderr.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # no .part, no private file, no output


# --------------------------------------------------------------------------- suspect runs
def test_the_issues_lr_1_numbers_are_suspect():
    # summary.json of `run --preset mode-seeking --set train.lr=1.0` before this change
    vae = {"log_px": -2.626, "elbo": -1734.58, "elbo_exact": -2.626, "kl_qp": 0.0, "q_mass": 0.0}
    rws = {"log_px": -2.626, "elbo": -2514632.25, "elbo_exact": -2.626, "kl_qp": 2.75e-05, "q_mass": 4.8e-07}
    for final in (vae, rws):
        reason = assess_run(final)
        assert reason and "mass" in reason and "disagree" in reason


def test_healthy_numbers_are_not_suspect_and_an_exploding_loss_is():
    healthy = {"log_px": -3.1, "elbo": -4.0, "elbo_exact": -3.9, "kl_qp": 0.8, "q_mass": 0.999}
    rising = np.array([[0, -40.0], [10, -9.0], [20, -4.1], [30, -4.0]])
    assert assess_run(healthy, {"elbo": rising}) is None
    exploded = np.array([[0, -40.0], [10, -4.0], [20, -900.0]])
    assert "exploded" in assess_run(healthy, {"elbo": exploded})


def test_a_run_at_lr_1_is_marked_suspect_in_the_summary_and_the_table(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--preset", "mode-seeking", "--steps", "150", "--set", "train.lr=1.0", "--set",
                 "view.grid=64", "--set", "view.snr_every=0", "--out", str(out)]) == 0
    runs = _check_unit(out)["runs"]
    suspects = [r["name"] for r in runs if r["final"]["suspect"]]
    assert suspects, [r["final"] for r in runs]
    stdout = capsys.readouterr().out
    for name in suspects:
        assert f"{name} *" in stdout and f"* {name}: suspect:" in stdout


def test_a_healthy_run_is_not_suspect(capsys, tmp_path):
    out = tmp_path / "out"
    assert main([*RUN, "--steps", "40", "--out", str(out)]) == 0
    assert [r["final"]["suspect"] for r in _check_unit(out)["runs"]] == [None, None, None]
    assert "suspect" not in capsys.readouterr().out
