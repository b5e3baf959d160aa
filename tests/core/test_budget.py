"""The resource budget (issue 18): what would exhaust memory or hang is refused before anything is built,
in one line naming the key that drives it and what fits; max_admissible agrees with the check; the SNR
probe chunks itself so that memory never depends on R; and, under a real memory cap (RLIMIT_AS in a
subprocess), the issue's configs exit 2 where they used to be killed."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from explorer.cli import main
from explorer.core import budget
from explorer.core.budget import BudgetError, check_session, estimate_session, max_admissible, parse_size
from explorer.core.config import config_from_dict, list_presets, load_preset
from explorer.core.diagnostics import ReplicateMoments, gradient_snr, summarise_snr
from explorer.core.errors import ConfigError
from explorer.core.models import make_encoder
from explorer.core.problems import make_problem

ROOT = Path(__file__).resolve().parents[2]
GB = 10**9


@pytest.fixture
def six_gb(monkeypatch):
    """The hostile tester's machine: a 6 GB budget, the default time limits."""
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "6GB")
    monkeypatch.delenv("VAE_EXPLORER_STEP_SECONDS", raising=False)
    monkeypatch.delenv("VAE_EXPLORER_MAX_HOURS", raising=False)


@pytest.fixture
def never_built(monkeypatch):
    """Refusals must come before anything big exists: building a session, running a sweep or a shot fails
    the test here instead (so a broken budget cannot make the test suite exhaust the machine's memory)."""
    import types

    import explorer.core.session as session_mod
    import explorer.core.snr_sweep as sweep_mod

    def built(*args, **kwargs):
        raise AssertionError("built although over the budget")

    monkeypatch.setattr(session_mod, "Viewer", built)
    monkeypatch.setattr(sweep_mod, "snr_sweep", built)
    monkeypatch.setitem(sys.modules, "explorer.gui.shot", types.SimpleNamespace(render_shot=built))


def _bad_input(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err + out, err
    return lines[0]


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize("text, want", [("4GB", 4 * GB), ("512MiB", 512 * 2**20), ("1.5 gb", 1.5 * GB),
                                        ("2e9", 2 * GB), ("75%", 0.75)])
def test_parse_size(text, want):
    assert parse_size(text, "X") == pytest.approx(want)


@pytest.mark.parametrize("text", ["", "lots", "-1GB", "0%", "150%", "5 parsecs", "12"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ConfigError, match="X"):
        parse_size(text, "X")


def test_the_budget_follows_the_environment(monkeypatch):
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "3GB")
    assert budget.memory_budget().bytes == 3 * GB
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "10%")
    assert budget.memory_budget().bytes == pytest.approx(0.1 * budget.available_memory(), rel=0.05)
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "much")
    with pytest.raises(ConfigError, match="VAE_EXPLORER_MEMORY_BUDGET"):
        budget.memory_budget()


def test_available_memory_sees_an_address_space_cap():
    code = ("import resource; from explorer.core import budget; "
            "print(budget.available_memory())")
    cap = 6 << 30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, preexec_fn=limit,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert 0 < int(out.stdout) < cap  # the headroom under the cap, not the machine's free memory


# --------------------------------------------------------------------------- the estimate
def test_every_preset_fits_a_modest_machine(monkeypatch):
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "3GB")
    for preset in list_presets():
        check_session(load_preset(preset["name"]))


def test_the_estimate_grows_with_each_driving_key():
    base = config_from_dict({"problem": {"name": "mixture"}, "train": {"hidden": [32]},
                             "runs": [{"objective": "dreg", "k": 8, "encoder": "flow"}]})
    totals = lambda est: (sum(p.bytes for p in est.parts), sum(p.seconds for p in est.parts))  # noqa: E731
    est0 = estimate_session(base)
    for key, value in [("runs.0.k", 64), ("train.batch_size", 256), ("train.hidden", 128), ("view.grid", 400),
                       ("view.samples", 50_000), ("problem.weights", 200), ("view.snr_replicates", 512)]:
        bigger = estimate_session(budget.with_value(base, key, value))
        assert bigger.peak >= est0.peak and bigger.seconds >= est0.seconds, key  # what is checked never falls
        assert totals(bigger)[1] > totals(est0)[1], key  # and some part grows


@pytest.mark.parametrize("key", ["runs.1.k", "runs[1].k", "train.batch_size", "view.grid", "view.snr_replicates",
                                 "train.hidden", "runs.1.hidden"])
def test_max_admissible_is_the_edge_of_what_check_session_accepts(six_gb, key):
    cfg = load_preset("mode-seeking")
    best = max_admissible(cfg, key)
    assert best is not None
    lo, hi = budget._range(key)
    check_session(budget.with_value(cfg, key, best))
    if best < hi:
        with pytest.raises(BudgetError):
            check_session(budget.with_value(cfg, key, best + 1))


def test_max_admissible_none_when_nothing_fits_and_refuses_unknown_keys(six_gb):
    huge = config_from_dict({"train": {"hidden": [4096] * 32}, "runs": [{"objective": "vae"}] * 8})
    assert max_admissible(huge, "runs.0.k") is None
    with pytest.raises(ConfigError, match="seed"):
        max_admissible(huge, "seed")
    with pytest.raises(ConfigError):
        max_admissible(huge, "runs.9.k")


@pytest.mark.parametrize("sets, key", [
    (["runs.1.objective=iwae", "runs.1.k=1000000"], "runs[1].k"),
    (["runs.1.encoder=flow", "runs.1.k=100000"], "runs[1].k"),
    (["runs.2.objective=miwae", "runs.2.m=100000", "runs.2.k=1000000"], "runs[2].k"),
    (["train.hidden=" + str([4096] * 32)], "train.hidden"),
    (["view.grid=1000", "train.hidden=[4096, 4096]"], "train.hidden"),
    (["view.snr_replicates=100000"], "view.snr_replicates"),
    (["@mixture", "problem.weights=" + str([1.0] * 10_000)], "problem.weights"),
    (["@ring", "runs.1.k=256"], "view.snr_replicates"),
    (["runs.1.objective=dreg", "runs.1.k=2000", "view.snr_replicates=256"], "view.snr_replicates"),
    (["runs.1.k=200000", "view.snr_every=0"], "runs[1].k"),
])
def test_the_issues_configs_exit_2_naming_the_key_and_what_fits(six_gb, never_built, capsys, sets, key):
    preset = sets[0][1:] if sets[0].startswith("@") else "mode-seeking"
    argv = ["run", "--preset", preset, "--steps", "1"]
    for s in sets:
        if not s.startswith("@"):
            argv += ["--set", s]
    line = _bad_input(capsys, argv)
    assert line.startswith(f"error: {key} = "), line
    assert "fits" in line and ("GB" in line or " s " in line or "min" in line), line


@pytest.mark.parametrize("argv, flag", [
    (["snr", "--replicates", "1000000000"], "--replicates"),
    (["snr", "--k", "10000000"], "--k"),
    (["snr", "--dim", "1000", "--k", "1000"], "--dim"),
    (["snr", "--m", "1000000", "--estimators", "miwae"], "--m"),
    (["shot", "--preset", "mode-seeking", "--steps", "10", "--out", "{tmp}/x.gif", "--frames", "1000000",
      "--every", "1"], "--frames"),
    (["shot", "--preset", "mode-seeking", "--steps", "10", "--out", "{tmp}/x.png", "--width", "16384",
      "--set", "runs.1.k=6000"], "--width"),
])
def test_other_commands_are_guarded_too(monkeypatch, never_built, capsys, tmp_path, argv, flag):
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "3GB")
    line = _bad_input(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert line.startswith(f"error: {flag} = "), line
    assert not list(tmp_path.iterdir())


def test_a_session_over_the_budget_is_refused_before_it_is_built(six_gb, never_built):
    cfg = load_preset("mode-seeking")
    from explorer.core.session import Session

    with pytest.raises(BudgetError, match=r"runs\[1\]\.k"):
        Session(budget.with_value(cfg, "runs.1.k", 1_000_000))


# --------------------------------------------------------------------------- the probe chunks itself
def _probe_setup():
    torch.manual_seed(0)
    prob = make_problem("bimodal")
    dec = prob.decoder(learn=True)
    enc = make_encoder("gaussian", 2, 2, [16])
    x = prob.sample_data(8, torch.Generator().manual_seed(1))
    return dec, enc, x


def test_streamed_moments_equal_the_whole_matrix():
    g = torch.randn(37, 11, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3 + 1
    g[:, 4] = 2.0  # a constant column is left out in both
    moments = ReplicateMoments()
    for part in torch.split(g, [1, 5, 13, 2, 16]):
        moments.add(part)
    whole = summarise_snr(g)
    assert moments.summary() == pytest.approx(whole, rel=1e-12)
    direct = (g.mean(0).abs() / g.std(0))[[i for i in range(11) if i != 4]]  # an independent reference
    assert whole[0] == pytest.approx(float(direct.mean()), rel=1e-12)


def test_a_chunked_probe_gives_the_same_snr_with_far_less_memory():
    dec, enc, x = _probe_setup()
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    whole = gradient_snr(dec, enc, "iwae", x, 4, 1, 12, gen(), max_bytes=1e9)
    # just enough for the noise to be drawn whole (the same numbers) but a chunk of a few replicates
    chunked = gradient_snr(dec, enc, "iwae", x, 4, 1, 12, gen(), max_bytes=30_000)
    assert whole.chunk == 12 and 1 <= chunked.chunk < 12 and chunked.replicates == 12
    assert chunked.encoder_mean == pytest.approx(whole.encoder_mean, rel=1e-9)
    assert chunked.decoder_median == pytest.approx(whole.decoder_median, rel=1e-9)


def test_a_time_limit_lowers_r_and_says_so():
    dec, enc, x = _probe_setup()
    res = gradient_snr(dec, enc, "iwae", x, 4, 1, 100_000, torch.Generator().manual_seed(5), max_seconds=0.05)
    assert 2 <= res.replicates < 100_000
    assert res.floor == pytest.approx(0.8 / res.replicates**0.5)


_PROBE_UNDER_A_CAP = r"""
import resource, sys, torch
torch.set_num_threads(1)
from explorer.core.diagnostics import gradient_snr
from explorer.core.models import make_encoder
from explorer.core.problems import make_problem
torch.manual_seed(0)
prob = make_problem("bimodal")
dec, enc = prob.decoder(learn=True), make_encoder("gaussian", 2, 2, [16])
x = prob.sample_data(64, torch.Generator().manual_seed(1))
# R·K·batch = 2000 · 256 · 64 = 33M particle-replicates: ~6 GB of activations and noise held at once,
# far over this process's 2.5 GB of address space, unless the probe chunks itself
res = gradient_snr(dec, enc, "iwae", x, 256, 1, 2000, torch.Generator().manual_seed(2), max_particles=1 << 30)
print(res.replicates, res.chunk, res.encoder_mean)
"""


def test_the_probe_fits_under_a_memory_cap_whatever_r_is():
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (5 << 30, 5 << 30))

    out = subprocess.run([sys.executable, "-c", _PROBE_UNDER_A_CAP], cwd=ROOT, capture_output=True, text=True,
                         preexec_fn=cap, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    replicates, chunk, snr = out.stdout.split()
    assert int(replicates) == 2000 and int(chunk) < 2000 and float(snr) > 0


# --------------------------------------------------------------------------- under a real memory cap
_CAPPED = ["run", "--preset", "mode-seeking", "--steps", "1", "--set", "runs.1.objective=iwae"]


@pytest.mark.parametrize("sets, needle", [
    (["runs.1.k=1000000"], "runs[1].k"),
    (["train.hidden=" + str([4096] * 32)], "train.hidden"),
    (["train.hidden=" + str([4096] * 40)], "train.hidden: at most 32 hidden layers"),
    (["view.grid=1000", "runs.1.encoder=flow", "train.hidden=[4096, 4096]"], ""),
])
def test_under_an_address_space_cap_the_issues_configs_exit_2_not_killed(sets, needle):
    """The tester's ~6 GB cap: RLIMIT_AS in the child. Before, these were killed (137) or died with a raw
    allocator error (1); now the budget reads the cap and refuses them up front."""
    cap = 6 << 30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    argv = list(_CAPPED)
    for s in sets:
        argv += ["--set", s]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("VAE_EXPLORER_MEMORY_BUDGET", None)
    out = subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, capture_output=True, text=True,
                         preexec_fn=limit, env=env, timeout=300)
    assert out.returncode == 2, (out.returncode, out.stderr[-1000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and needle in lines[0], out.stderr
