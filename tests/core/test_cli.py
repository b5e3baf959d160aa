"""The command line contracts of design.md: ``list``, ``run`` (summary.json / metrics.csv), ``snr --json``,
exit codes (0 / 2 with one line on stderr / 130 and 143 on SIGINT and SIGTERM).

Commands run in-process through ``explorer.cli.main`` with capsys; only the signal tests start a
subprocess (a thin wrapper around the same ``main`` that drops a "ready" file once training has begun,
so the signal lands inside the training loop rather than during start-up).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import torch

from explorer.cli import main
from explorer.core.config import list_presets, load_preset
from explorer.core.models import ENCODERS
from explorer.core.objectives import OBJECTIVES
from explorer.core.problems import PROBLEMS
from explorer.core.snapshot import METRICS

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "view.grid=32", "--set", "view.samples=20", "--set", "view.snr_replicates=8",
        "--set", "view.snr_every=10"]
FINAL_KEYS = ("log_px", "elbo", "bound", "kl_qp", "kl_pq", "ess_frac", "snr_encoder", "snr_decoder", "diverged")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _nulls(value, path=""):
    """Every path in a JSON document whose value is null."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]")]
    return []


def _numbers(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _bad_input(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    return lines[0]


# --------------------------------------------------------------------------- list
def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    reg = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in reg["problems"]} == set(PROBLEMS)
    assert {e["name"] for e in reg["encoders"]} == set(ENCODERS)
    assert {o["name"] for o in reg["objectives"]} == set(OBJECTIVES)
    assert {p["name"] for p in reg["presets"]} == {p["name"] for p in list_presets()}
    assert "mode-seeking" in {p["name"] for p in reg["presets"]}


def test_list_plain(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in (*PROBLEMS, *OBJECTIVES, "mode-seeking"))


# --------------------------------------------------------------------------- run
@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    """One short run of the mode-seeking preset, shared by the contract tests below."""
    out = tmp_path_factory.mktemp("run") / "out"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["run", "--preset", "mode-seeking", "--steps", "20", *TINY, "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    return out


def test_run_writes_the_summary_contract(run_out):
    summary = json.loads((run_out / "summary.json").read_text(encoding="utf-8"))
    for key in ("config", "seed", "device", "steps", "wall_s", "steps_per_s", "runs"):
        assert key in summary, key
    assert summary["steps"] == 20 and summary["seed"] == 0
    assert summary["device"] == "cpu" or summary["device"].startswith(("cuda", "mps"))
    assert summary["wall_s"] > 0 and summary["steps_per_s"] > 0
    assert summary.get("interrupted") is False

    cfg = summary["config"]  # fully resolved: defaults filled in, overrides applied
    assert cfg["view"]["grid"] == 32 and cfg["view"]["snr_every"] == 10
    preset = load_preset("mode-seeking")
    assert cfg["train"]["lr"] == preset.train.lr and cfg["problem"]["name"] == preset.problem.name
    assert {"log_every", "samples", "snr_replicates"} <= set(cfg["view"])

    runs = summary["runs"]
    assert [r["objective"] for r in runs] == ["vae", "iwae", "rws"]
    assert [r["k"] for r in runs] == [1, 64, 64]
    for run in runs:
        for key in ("name", "objective", "k", "m", "x_obs", "final"):
            assert key in run, key
        x0 = [float(v) for v in preset.problem.options["x0"]]
        assert run["m"] == 1 and run["x_obs"] == pytest.approx(x0)  # data[0] is the problem's showcase x0
        final = run["final"]
        for key in FINAL_KEYS:
            assert key in final, key
        assert final["diverged"] is False
        assert final["snr_decoder"] is None  # the decoder is frozen (learn_decoder = false): no θ-gradient
        for key in FINAL_KEYS:
            if key not in ("diverged", "snr_decoder"):
                assert isinstance(final[key], float) and math.isfinite(final[key]), (run["name"], key)
        assert 0 < final["ess_frac"] <= 1 + 1e-9
        assert final["kl_qp"] >= -1e-6 and final["kl_pq"] >= -1e-6
        assert final["bound"] >= final["elbo"] - 1e-6  # L_K ≥ ELBO on the same samples
    assert runs[0]["final"]["log_px"] == pytest.approx(runs[1]["final"]["log_px"])  # same frozen model

    # snr_decoder (and snr_decoder_param, the histograms' one decoder parameter) are the only contract values
    # that are null (diverged_step and suspect are null for a run that did not diverge and whose numbers agree;
    # interrupted_by/_in for a run that was not interrupted)
    allowed = {f"runs[{i}].final.{k}" for i in range(len(runs))
               for k in ("snr_decoder", "snr_decoder_param", "diverged_step", "suspect")}
    allowed |= {"interrupted_by", "interrupted_in"}
    # the split of L_K at q* (core/amortisation.py) exists only for K-particle runs
    allowed |= {f"runs[{i}].final.{k}" for i, run in enumerate(runs) if run["k"] == 1 or run["objective"] == "vae"
                for k in ("approximation_gap_k", "amortisation_gap_k", "approximation_gap_k_err", "amortisation_gap_k_err")}
    assert set(_nulls(summary)) <= allowed
    assert all(math.isfinite(n) for n in _numbers(summary))


def test_run_writes_metrics_csv(run_out):
    text = (run_out / "metrics.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    header = next(csv.reader(io.StringIO(text)))
    assert header[:2] == ["run", "step"]
    assert set(METRICS) <= set(header)
    names = [r["name"] for r in json.loads((run_out / "summary.json").read_text())["runs"]]
    assert {r["run"] for r in rows} == set(names)
    for name in names:
        steps = [int(r["step"]) for r in rows if r["run"] == name]
        assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 20
    for row in rows:
        for name in METRICS:
            cell = row[name]
            if name == "snr_decoder":
                assert cell == ""  # frozen decoder
            elif name in ("snr_encoder",) or cell:
                assert math.isfinite(float(cell)), (row["run"], row["step"], name)
        assert row["log_px"] and row["kl_qp"] and row["elbo"]


def test_run_leaves_no_temporary_files(run_out):
    assert sorted(p.name for p in run_out.iterdir()) == ["metrics.csv", "summary.json"]


def test_run_prints_a_table(capsys, tmp_path):
    assert main(["run", "--preset", "mode-seeking", "--steps", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "VAE K=1" in out and "IWAE K=64" in out and "RWS K=64" in out


def test_run_with_a_learnt_decoder_reports_decoder_snr(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--preset", "mode-seeking", "--steps", "10", *TINY, "--set", "problem.learn_decoder=true",
                 "--set", "runs.1.k=8", "--set", "runs.2.k=8", "--out", str(out)])
    assert code == 0
    for run in json.loads((out / "summary.json").read_text())["runs"]:
        snr = run["final"]["snr_decoder"]
        assert isinstance(snr, float) and math.isfinite(snr) and snr > 0


def test_run_from_a_config_file_with_seed_and_steps(tmp_path, capsys):
    cfg = tmp_path / "scene.toml"
    cfg.write_text('[problem]\nname = "gaussian"\n[train]\nhidden = [8]\n[view]\ngrid = 32\nsamples = 0\n'
                   'snr_every = 0\n[[runs]]\nobjective = "dreg"\nk = 4\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", "--config", str(cfg), "--steps", "5", "--seed", "3", "--device", "cpu", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["steps"] == 5 and summary["device"] == "cpu"
    assert summary["runs"][0]["objective"] == "dreg" and summary["runs"][0]["k"] == 4


def test_run_is_reproducible(tmp_path, capsys):
    args = ["run", "--preset", "mode-seeking", "--steps", "5", *TINY, "--set", "runs.1.k=8", "--set", "runs.2.k=8"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()


def test_a_diverging_run_is_reported_not_a_crash(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--preset", "mode-seeking", "--steps", "20", *TINY, "--set", "runs.0.lr=10000.0",
                 "--set", "runs.1.k=8", "--set", "runs.2.k=8", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"][0]["final"]["diverged"] is True
    assert [r["final"]["diverged"] for r in summary["runs"][1:]] == [False, False]
    assert all(math.isfinite(n) for n in _numbers(summary))
    assert "nan" not in (out / "metrics.csv").read_text().lower()


def test_run_output_files_follow_the_umask(run_out):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("summary.json", "metrics.csv"):
        assert (run_out / name).stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------- bad input: exit 2, one line
@pytest.mark.parametrize("argv, needle", [
    (["run", "--preset", "nope"], "nope"),
    (["run", "--preset", "mode-seeking", "--set", "problem.name=nope"], "problem.name"),
    (["run", "--preset", "mode-seeking", "--set", "runs.0.objective=nope"], "objective"),
    (["run", "--preset", "mode-seeking", "--set", "train.encoder=nope"], "train.encoder"),
    (["run", "--preset", "mode-seeking", "--set", "runs.1.k=0"], "k"),
    (["run", "--preset", "mode-seeking", "--set", "train.lr=-1"], "train.lr"),
    (["run", "--preset", "mode-seeking", "--set", "view.grid=8"], "view.grid"),
    (["run", "--preset", "mode-seeking", "--set", "view.bogus=1"], "view.bogus"),
    (["run", "--preset", "mode-seeking", "--set", "bogus.key=1"], "bogus"),
    (["run", "--preset", "mode-seeking", "--set", "noequals"], "noequals"),
    (["run", "--preset", "mode-seeking", "--steps", "-1"], "steps"),
    (["run"], "--preset"),
    (["snr", "--k", "1,a"], "--k"),
    (["snr", "--k", "0,10"], "--k"),
    (["snr", "--m", "x"], "--m"),
    (["snr", "--estimators", "iwae,nope"], "nope"),
    (["snr", "--replicates", "1"], "--replicates"),
    (["snr", "--dim", "0"], "--dim"),
    (["snr", "--replicates", "many"], "replicates"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    assert needle in _bad_input(capsys, argv)


def test_malformed_toml_exits_2(capsys, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\nlr = 0.01\n", encoding="utf-8")
    line = _bad_input(capsys, ["run", "--config", str(broken)])
    assert "broken.toml" in line


def test_missing_config_file_exits_2(capsys, tmp_path):
    assert "absent.toml" in _bad_input(capsys, ["run", "--config", str(tmp_path / "absent.toml")])


def test_out_under_a_regular_file_exits_2(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = _bad_input(capsys, ["run", "--preset", "mode-seeking", "--steps", "1", *TINY,
                               "--out", str(blocker / "sub")])
    assert "--out" in line
    line = _bad_input(capsys, ["run", "--preset", "mode-seeking", "--steps", "1", *TINY, "--out", str(blocker)])
    assert "--out" in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_out_in_a_read_only_folder_exits_2(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _bad_input(capsys, ["run", "--preset", "mode-seeking", "--steps", "1", *TINY, "--out", str(locked)])
        assert "--out" in line
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_run_on_cuda_without_a_gpu_exits_2(capsys):
    assert "cuda" in _bad_input(capsys, ["run", "--preset", "mode-seeking", "--steps", "1", "--device", "cuda"])


def test_snr_json_under_a_regular_file_exits_2(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _bad_input(capsys, ["snr", "--k", "1", "--replicates", "10", "--json", str(blocker / "x.json")])


def test_snr_json_error_names_the_json_option(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _bad_input(capsys, ["snr", "--k", "1", "--replicates", "10", "--json", str(blocker / "x.json")])
    assert "--json" in line


# --------------------------------------------------------------------------- snr
def test_snr_json_contract(capsys, tmp_path):
    path = tmp_path / "snr.json"
    assert main(["snr", "--k", "1,10", "--replicates", "200", "--estimators", "iwae,dreg", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "iwae" in out and "dreg" in out
    data = json.loads(path.read_text())
    for key in ("problem", "dim", "replicates", "perturb", "seed", "results"):
        assert key in data, key
    assert (data["problem"], data["dim"], data["replicates"], data["seed"]) == ("gaussian", 2, 200, 0)
    assert data["perturb"] == pytest.approx(0.1)
    got = {(r["estimator"], r["m"], r["k"]) for r in data["results"]}
    assert got == {("iwae", 1, 1), ("iwae", 1, 10), ("dreg", 1, 1), ("dreg", 1, 10)}
    for r in data["results"]:
        assert set(r) >= {"estimator", "m", "k", "snr_encoder", "snr_decoder"}
        for part in ("snr_encoder", "snr_decoder"):
            assert isinstance(r[part], float) and math.isfinite(r[part]) and r[part] > 0
    # θ's gradient is L_K's for both estimators: the decoder SNRs agree at equal K
    by = {(r["estimator"], r["k"]): r for r in data["results"]}
    assert by[("iwae", 10)]["snr_decoder"] == pytest.approx(by[("dreg", 10)]["snr_decoder"], rel=1e-6)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_snr_m_values_apply_to_m_estimators_only(tmp_path, capsys):
    path = tmp_path / "snr.json"
    assert main(["snr", "--k", "2", "--m", "1,3", "--replicates", "50", "--estimators", "iwae,miwae",
                 "--json", str(path)]) == 0
    got = {(r["estimator"], r["m"]) for r in json.loads(path.read_text())["results"]}
    assert got == {("iwae", 1), ("miwae", 1), ("miwae", 3)}


def _slope(results, estimator, part):
    pts = [(math.log(r["k"]), math.log(r[f"snr_{part}"])) for r in results if r["estimator"] == estimator]
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


@pytest.mark.slow
def test_snr_sweep_reproduces_the_paper(tmp_path, capsys):
    path = tmp_path / "snr.json"
    assert main(["snr", "--k", "1,10,100", "--replicates", "2000", "--estimators", "iwae,dreg",
                 "--json", str(path)]) == 0
    results = json.loads(path.read_text())["results"]
    for estimator in ("iwae", "dreg"):
        assert _slope(results, estimator, "decoder") == pytest.approx(0.5, abs=0.15)
    enc = {(r["estimator"], r["k"]): r["snr_encoder"] for r in results}
    assert enc[("iwae", 1)] > enc[("iwae", 10)] > enc[("iwae", 100)]  # IWAE's encoder SNR falls with K
    assert enc[("dreg", 1)] < enc[("dreg", 10)] < enc[("dreg", 100)]  # DReG's rises


# --------------------------------------------------------------------------- signals
_WRAPPER = r"""
import sys
import explorer.cli as cli
import explorer.cli_runtime as runtime
import explorer.core.session as session_mod
_step, _handle = session_mod.Session.step, runtime.Signals._handle
training = []
def step(self, n=1):
    if not training:
        training.append(self)
        open(sys.argv[1], "w").close()  # training has begun: the signal handlers are installed
    return _step(self, n)
def handle(self, signum, frame):
    with open(sys.argv[2], "w") as f:
        f.write(str(training[0].step_count))  # the steps finished when the signal arrived
    _handle(self, signum, frame)
session_mod.Session.step = step
runtime.Signals._handle = handle
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_a_run_cleanly(tmp_path, sig, code):
    """The signal is seen after the step it arrives in (at most one more step), the summary and the
    metrics are written, marked interrupted, and nothing else is left in --out."""
    ready, at_signal, out = tmp_path / "ready", tmp_path / "at_signal", tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("VAE_EXPLORER_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, str(ready), str(at_signal), "run", "--preset", "mode-seeking",
         "--steps", "1000000", "--set", "view.grid=64", "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        hung = time.monotonic() + 300  # a guard against a hang, not a speed limit
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < hung, "the run never started training"
            time.sleep(0.02)
        time.sleep(0.3)  # a few steps in
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert 0 < summary["steps"] <= int(at_signal.read_text()) + 1
    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    assert rows and max(int(r["step"]) for r in rows) == summary["steps"]
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert leftovers == []
    assert signal.Signals(sig).name in stdout
